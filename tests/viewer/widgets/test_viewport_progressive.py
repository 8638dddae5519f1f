"""Compressed series in the viewport: the GUI thread paints, the decode queue decodes.

JPEG 2000 shows a reduced-resolution image first and then the full one; scrolling finds the next
slices already decoded by the look-ahead, in the direction of the scroll.
"""

from __future__ import annotations

import pytest
from pydicom import uid
from pydicom.encaps import encapsulate, get_frame  # noqa: E402

from tests.support.compressed_samples import compressed_dataset, smooth_pixels, write_compressed_series
from viewer.io.image import load_image  # noqa: E402
from viewer.io.refs import SeriesRef  # noqa: E402
from viewer.io.writer import save  # noqa: E402
from viewer.widgets.viewport import Viewport  # noqa: E402


@pytest.fixture
def viewport(qtbot):
    w = Viewport()
    qtbot.addWidget(w)
    w.resize(128, 128)
    w.show()
    qtbot.waitExposed(w)
    return w


def test_jpeg2000_paints_a_preview_first_and_never_decodes_on_the_gui_thread(qtbot, viewport, tmp_path):
    series = write_compressed_series(tmp_path / "j2k", uid.JPEG2000Lossless, n=1, size=1024)
    shown: list[tuple[str, int]] = []
    viewport.imageShown.connect(lambda q: shown.append((q, viewport._render_img.width())))
    viewport.set_series(series)
    image = viewport.current_image()
    assert not image.frame_cached(0)
    viewport.grab()  # a paint: it queues the decode and returns at once
    assert viewport.is_loading() and viewport.message() in ("Loading…", "")
    qtbot.waitUntil(lambda: any(q == "full" for q, _ in shown), timeout=60_000)
    # 1024 px on a 128 px viewport: the level for a 64 px viewport, the one for 128, then full (a paint
    # may take in both previews at once)
    assert shown[0][0] == "preview" and shown[-1] == ("full", 128)
    assert shown[:-1] in ([("preview", 32), ("preview", 64)], [("preview", 32)], [("preview", 64)])
    assert image.frame_cached(0) and not viewport.is_loading() and viewport.message() == ""
    assert viewport.overlay_lines()  # corner texts with the (automatic) window once pixels are in


def test_a_large_image_is_prepared_coarse_first_then_at_the_preview_level_then_in_full(tmp_path):
    series = write_compressed_series(tmp_path / "ht", uid.HTJ2KLossless, n=1, size=1024)
    image = load_image(series.paths[0])
    stages: list[tuple[int, ...]] = []
    Viewport._prepare(image, 0, None, 128, on_preview=lambda: stages.append(image.cached_preview(0).shape))
    assert stages == [(32, 32), (64, 64)] and image.frame_cached(0) and image.cached_preview(0) is None
    small = load_image(write_compressed_series(tmp_path / "small", uid.HTJ2KLossless, n=1, size=200).paths[0])
    stages.clear()
    Viewport._prepare(small, 0, None, 128, on_preview=lambda: stages.append(small.cached_preview(0).shape))
    assert stages == [(100, 100)]  # not twice the viewport: one preview only


def test_scrolling_finds_the_next_slices_decoded_ahead_in_the_scroll_direction(qtbot, viewport, tmp_path):
    series = write_compressed_series(tmp_path / "ht", uid.HTJ2KLossless, n=6, size=256)
    viewport.set_series(series, start=3)
    viewport.grab()
    qtbot.waitUntil(lambda: not viewport.is_loading(), timeout=30_000)
    stack = viewport._stack
    qtbot.waitUntil(lambda: all(stack.cached(i) is not None and stack.cached(i).frame_cached(0) for i in (4, 5)),
                    timeout=30_000)
    viewport.step(1)
    viewport.grab()
    assert not viewport.is_loading() and viewport.message() == ""  # shown from the look-ahead, no wait
    viewport.step(-1)
    viewport.step(-1)  # now scrolling up: the look-ahead turns round
    assert stack.direction == -1
    qtbot.waitUntil(lambda: all(stack.cached(i) is not None and stack.cached(i).frame_cached(0) for i in (0, 1)),
                    timeout=30_000)


def test_a_damaged_compressed_file_says_why_in_the_viewport(qtbot, viewport, tmp_path):
    ds = compressed_dataset(smooth_pixels(128), uid.HTJ2KLossless)
    stream = bytes(get_frame(ds.PixelData, 0, number_of_frames=1))
    ds.PixelData = encapsulate([stream[:-400]])  # a transfer cut short: the codestream's end is gone
    path = save(ds, tmp_path / "bad.dcm")
    viewport.set_series(SeriesRef("1.2.3", "CT", "damaged", 1, (path,)))
    viewport.grab()
    qtbot.waitUntil(lambda: not viewport.is_loading(), timeout=30_000)
    viewport.grab()
    assert viewport.message().startswith("Cannot display:")
    assert "truncated" in viewport.message()


def test_thumbnail_of_a_jpeg2000_series_needs_no_full_decode(tmp_path):
    from viewer.widgets.thumbnails import thumbnail_array

    series = write_compressed_series(tmp_path / "thumb", uid.HTJ2KLossless, n=1, size=512)
    icon = thumbnail_array(series, size=96)
    assert icon.shape == (96, 96) and icon.dtype.name == "uint8" and icon.std() > 5
