"""The decode worker tells the viewport directly (a queued signal, no polling timer), holds it only
weakly, and a viewport closed or deleted while its decode runs, or after the decode finished but
before the news reached the GUI thread, is skipped without a crash.

The decode itself is real; the tests only hold it at a gate so the teardown happens at a known moment.
"""

from __future__ import annotations

import gc
import weakref

import pytest
import shiboken6
from pydicom import uid
from PySide6.QtCore import Qt

from tests.support.compressed_samples import write_compressed_series
from tests.support.decode_gate import DecodeGate
from viewer.widgets import decode_notice
from viewer.widgets.viewport import Viewport


class _Deliveries:
    """Records what the relay delivered on the GUI thread (connected after the viewport's own slot)."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        decode_notice._relay().arrived.connect(self._record, Qt.ConnectionType.QueuedConnection)

    def _record(self, _ref, _job, what: str) -> None:  # noqa: ANN001
        self.seen.append(what)

    def close(self) -> None:
        decode_notice._relay().arrived.disconnect(self._record)


@pytest.fixture
def deliveries():
    d = _Deliveries()
    yield d
    d.close()


def _loading_viewport(tmp_path, size: int = 512) -> tuple[Viewport, object]:
    series = write_compressed_series(tmp_path / "j2k", uid.JPEG2000Lossless, n=1, size=size)
    vp = Viewport()
    vp.resize(128, 128)
    vp.set_series(series)
    vp.grab()  # a paint: queues the decode
    assert vp.is_loading()
    return vp, vp._job


def test_first_image_arrives_without_a_polling_timer(qtbot, tmp_path):
    series = write_compressed_series(tmp_path / "ht", uid.HTJ2KLossless, n=1, size=1024)
    vp = Viewport()
    qtbot.addWidget(vp)
    vp.resize(128, 128)
    vp.show()
    qtbot.waitExposed(vp)
    shown: list[str] = []
    vp.imageShown.connect(shown.append)
    vp.set_series(series)
    vp.grab()
    qtbot.waitUntil(lambda: "full" in shown, timeout=60_000)
    assert shown[0] == "preview" and shown[-1] == "full"
    assert not any(t.isActive() for t in vp.findChildren(type(vp._cine)) if t is not vp._cine)


def test_the_decode_queue_holds_the_viewport_only_weakly(qtbot, tmp_path, monkeypatch, deliveries):
    gate = DecodeGate(monkeypatch)
    vp, job = _loading_viewport(tmp_path)
    assert gate.started.wait(30)
    ref = weakref.ref(vp)
    vp.close()
    del vp
    gc.collect()
    assert ref() is None  # nothing on the worker side kept the widget alive
    gate.release.set()
    qtbot.waitUntil(job.done, timeout=30_000)
    qtbot.waitUntil(lambda: "done" in deliveries.seen, timeout=10_000)  # delivered to nobody, no crash
    assert job.exception() is None


def test_viewport_deleted_while_its_decode_is_in_flight(qtbot, tmp_path, monkeypatch, deliveries):
    gate = DecodeGate(monkeypatch)
    vp, job = _loading_viewport(tmp_path)
    assert gate.started.wait(30)
    vp.close()
    vp.deleteLater()  # the C++ widget goes; the Python wrapper stays referenced here
    with qtbot.waitSignal(vp.destroyed, timeout=10_000):
        pass
    assert not shiboken6.isValid(vp)
    gate.release.set()
    qtbot.waitUntil(job.done, timeout=30_000)
    qtbot.waitUntil(lambda: "done" in deliveries.seen, timeout=10_000)
    assert job.exception() is None


def test_viewport_deleted_after_its_decode_finished_but_before_the_news_arrived(qtbot, tmp_path, deliveries):
    vp, job = _loading_viewport(tmp_path)
    job.result(timeout=60)  # finished on the worker; the GUI thread has not processed its events yet
    assert deliveries.seen == [] and vp.is_loading()
    shiboken6.delete(vp)  # gone before the queued notification is delivered
    qtbot.waitUntil(lambda: "done" in deliveries.seen, timeout=10_000)
    assert not shiboken6.isValid(vp)


def test_a_closed_viewport_still_gets_its_image_when_shown_again(qtbot, tmp_path):
    vp, job = _loading_viewport(tmp_path)
    qtbot.addWidget(vp)
    vp.close()
    qtbot.waitUntil(job.done, timeout=30_000)
    qtbot.waitUntil(lambda: not vp.is_loading(), timeout=10_000)  # the news reached the closed widget
    vp.show()
    qtbot.waitExposed(vp)
    vp.grab()
    assert vp.message() == "" and vp.current_image().frame_cached(0)
