"""The first image of a series just set is read on the decode queue even when it is a small uncompressed
frame (a study switch used to read its pixels and window statistics in paint, on the GUI thread); the
viewport says "Loading…" meanwhile, and a viewport deleted while that read is in flight is skipped.
Later images of the series (scrolling) are still read directly when small and uncompressed."""

from __future__ import annotations

import shiboken6
from PySide6.QtCore import Qt

from tests.support.decode_gate import DecodeGate
from tests.support.synthetic_dicom import SyntheticStudy, write_series
from viewer.io.refs import SeriesRef
from viewer.widgets import decode_notice
from viewer.widgets.viewport import Viewport


def _series(tmp_path) -> SeriesRef:  # noqa: ANN001
    paths = write_series(tmp_path / "plain", SyntheticStudy("FIRST^IMAGE", "FI1"), 3)
    return SeriesRef(series_uid="1.2.3", modality="CT", paths=tuple(paths))


def test_first_image_of_an_uncompressed_series_is_read_in_the_background(qtbot, tmp_path):
    vp = Viewport()
    qtbot.addWidget(vp)
    vp.resize(128, 128)
    shown: list[str] = []
    vp.imageShown.connect(shown.append)
    vp.set_series(_series(tmp_path))
    image = vp.current_image()
    assert image.decode_is_cheap(0) and not image.frame_cached(0)  # small and uncompressed: it was read in paint
    vp.grab()  # a paint: queues the read instead of doing it
    assert vp.is_loading() and vp.message() == "Loading…"
    qtbot.waitUntil(lambda: not vp.is_loading(), timeout=30_000)
    vp.grab()
    assert image.frame_cached(0) and vp.message() == "" and shown and shown[-1] == "full"
    assert vp.current_window() is not None
    qtbot.keyClick(vp, Qt.Key.Key_Down)
    second = vp.current_image()
    assert second is not image
    vp.grab()  # scrolling: a small uncompressed frame is read at once, no background job
    assert not vp.is_loading() and second.frame_cached(0) and vp.message() == ""
    qtbot.waitUntil(lambda: vp._queue.pending() == 0, timeout=30_000)  # the look-ahead reads have run


def test_viewport_deleted_while_its_first_image_is_read(qtbot, tmp_path, monkeypatch):
    seen: list[str] = []

    def record(_ref, _job, what: str) -> None:  # noqa: ANN001
        seen.append(what)

    decode_notice._relay().arrived.connect(record, Qt.ConnectionType.QueuedConnection)
    try:
        gate = DecodeGate(monkeypatch)
        vp = Viewport()
        vp.resize(128, 128)
        vp.set_series(_series(tmp_path))
        vp.grab()
        job = vp._job
        assert job is not None and gate.started.wait(30)
        vp.close()
        vp.deleteLater()
        with qtbot.waitSignal(vp.destroyed, timeout=10_000):
            pass
        assert not shiboken6.isValid(vp)
        gate.release.set()
        qtbot.waitUntil(job.done, timeout=30_000)
        qtbot.waitUntil(lambda: "done" in seen, timeout=10_000)  # delivered to nobody, no crash
        assert job.exception() is None
    finally:
        decode_notice._relay().arrived.disconnect(record)


def test_other_frames_of_the_first_image_are_read_directly_once_it_is_in(qtbot, us_series):
    """Cine on a multi-frame first image: only its first read goes to the queue, then frames are direct."""
    vp = Viewport()
    qtbot.addWidget(vp)
    vp.resize(128, 128)
    vp.set_series(us_series)
    image = vp.current_image()
    assert image.n_frames > 1 and image.decode_is_cheap(1) and not image.frame_cached(1)
    vp.grab()
    qtbot.waitUntil(lambda: not vp.is_loading(), timeout=30_000)
    vp.state.frame_index = 1
    vp.grab()
    assert not vp.is_loading() and image.frame_cached(1) and vp.message() == ""
    qtbot.waitUntil(lambda: vp._queue.pending() == 0, timeout=30_000)


def test_a_shown_viewport_is_loading_from_the_moment_a_series_is_set(qtbot, tmp_path):
    """The read is queued when the image is set, not at the first paint, so "not loading" means the image is on
    screen (a caller waiting for it must not see a gap before the first paint); a hidden viewport reads
    nothing until it is painted."""
    vp = Viewport()
    qtbot.addWidget(vp)
    vp.resize(128, 128)
    vp.show()
    vp.set_series(_series(tmp_path))
    assert vp.is_loading()  # no event processed, no paint yet: the news of the decode cannot have arrived
    qtbot.waitUntil(lambda: not vp.is_loading(), timeout=30_000)
    assert vp.current_image().frame_cached(0)

    hidden = Viewport()
    qtbot.addWidget(hidden)
    hidden.set_series(_series(tmp_path / "hidden"))
    assert not hidden.is_loading() and not hidden.current_image().frame_cached(0)
