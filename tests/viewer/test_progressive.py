"""Reduced-resolution first decodes of JPEG 2000 / HTJ2K frames."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pydicom import uid
from pydicom.encaps import encapsulate, get_frame

from tests.support.compressed_samples import compressed_dataset, smooth_pixels
from viewer.io import progressive
from viewer.io.image import DicomImage, DicomReadError, resample

REDUCIBLE = [uid.JPEG2000Lossless, uid.HTJ2KLossless, uid.HTJ2K]


def test_level_keeps_at_least_half_the_viewport():
    assert progressive.level_for(3000, 3000, 1024, 5) == 2  # 750 px on a 1024 viewport
    assert progressive.level_for(3000, 2000, 4000, 5) == 0
    assert progressive.level_for(512, 512, 300, 5) == 1
    assert progressive.level_for(8000, 8000, 256, 3) == 3  # never more than the codestream has


@pytest.mark.parametrize("syntax", REDUCIBLE, ids=lambda s: s.keyword)
@pytest.mark.parametrize("signed", [False, True], ids=["unsigned", "signed"])
def test_reduced_decode_is_the_block_mean_at_the_level_that_fits(syntax, signed):
    pixels = smooth_pixels(200, signed=signed)
    ds = compressed_dataset(pixels, syntax)
    stream = bytes(get_frame(ds.PixelData, 0, number_of_frames=1))
    assert progressive.decomposition_levels(stream) >= 2
    arr, level = progressive.decode_reduced(ds, 0, 1, target=100)
    assert level == 2
    assert arr.shape == (math.ceil(200 / 4), math.ceil(200 / 4))
    assert arr.dtype == pixels.dtype
    reference = resample(pixels, arr.shape).astype(np.float64)
    # the wavelet low-pass is a smoothed 4x4 mean: close to the block mean, far from wrong-sign data
    assert np.abs(arr - reference).mean() < 40


def test_image_preview_then_full_frame_supersedes_it():
    pixels = smooth_pixels(256)
    image = DicomImage.from_dataset(compressed_dataset(pixels, uid.HTJ2KLossless))
    assert image.can_preview and not image.frame_cached(0) and not image.window_ready
    preview = image.preview(0, 64)
    assert preview.shape == (32, 32) and image.cached_preview(0) is preview
    window = image.default_window  # from the preview: no full decode needed for a first image
    assert not image.frame_cached(0) and window.name == "auto"
    np.testing.assert_array_equal(image.frame(0), pixels)
    assert image.cached_preview(0) is None and image.preview(0, 64) is None


def test_a_coarse_preview_is_replaced_by_a_finer_one_never_the_other_way():
    image = DicomImage.from_dataset(compressed_dataset(smooth_pixels(256), uid.HTJ2KLossless))
    coarse = image.preview(0, 32)  # the first stage of a large image: a viewport half the size
    assert coarse.shape == (16, 16) and image.cached_preview(0) is coarse
    fine = image.preview(0, 64)
    assert fine.shape == (32, 32) and image.cached_preview(0) is fine
    assert image.preview(0, 32) is fine  # a finer preview than asked for serves the smaller viewport


def test_uncompressed_and_colour_images_do_not_preview(gray_dataset):
    image = DicomImage.from_dataset(gray_dataset(np.zeros((32, 32), np.uint16)))
    assert not image.can_preview and image.preview(0, 8) is None and image.decode_is_cheap(0)


def test_a_corrupt_codestream_falls_back_to_the_full_decode_error():
    ds = compressed_dataset(smooth_pixels(128), uid.HTJ2KLossless)
    stream = bytes(get_frame(ds.PixelData, 0, number_of_frames=1))
    ds.PixelData = encapsulate([stream[:200] + b"\x00" * 300])
    image = DicomImage.from_dataset(ds)
    assert image.preview(0, 32) is None  # no preview, no exception: the full decode says why
    with pytest.raises(DicomReadError, match="(?s)cannot decode frame 0.*truncated"):
        image.frame(0)


@pytest.mark.parametrize("syntax", [uid.HTJ2KLossless, uid.JPEG2000Lossless], ids=lambda s: s.keyword)
def test_a_frame_still_on_disk_is_decoded_from_the_mapped_file_with_the_same_pixels(tmp_path, syntax):
    import pydicom

    from viewer.io.writer import save

    path = save(compressed_dataset(smooth_pixels(256, signed=True), syntax), tmp_path / "one.dcm")
    on_disk = pydicom.dcmread(path, defer_size=64)  # Pixel Data left in the file
    arr, level = progressive.decode_reduced(on_disk, 0, 1, target=64)
    assert on_disk.get_item(0x7FE00010, keep_deferred=True).value is None  # read from the map, not copied
    in_memory = pydicom.dcmread(path)
    expected, expected_level = progressive.decode_reduced(in_memory, 0, 1, target=64)
    assert level == expected_level == 3 and arr.dtype == expected.dtype  # 32 px for a 64 px viewport
    np.testing.assert_array_equal(arr, expected)


@pytest.mark.filterwarnings("ignore:End of file reached")
def test_several_fragments_or_a_cut_file_take_pydicoms_reader(tmp_path):
    import pydicom

    from viewer.io.writer import save

    ds = compressed_dataset(smooth_pixels(256), uid.HTJ2KLossless)
    stream = bytes(get_frame(ds.PixelData, 0, number_of_frames=1))
    expected, _ = progressive.decode_reduced(ds, 0, 1, target=64)
    ds.PixelData = encapsulate([stream], fragments_per_frame=3)
    path = save(ds, tmp_path / "fragments.dcm")
    arr, _ = progressive.decode_reduced(pydicom.dcmread(path, defer_size=64), 0, 1, target=64)
    np.testing.assert_array_equal(arr, expected)
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(path.read_bytes()[:-500])  # the file ends inside the codestream
    with pytest.raises(progressive.ReducedDecodeError):
        progressive.decode_reduced(pydicom.dcmread(cut, defer_size=64), 0, 1, target=64)
