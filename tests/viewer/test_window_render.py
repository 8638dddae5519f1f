"""Window maths, presets and the LUT renderer checked against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from viewer.imaging.render import apply_window, render_array, render_frame
from viewer.imaging.window import HEADER_DEFAULT_KEY, PRESET_KEYS, PRESETS, WindowLevel, window_from_drag
from viewer.io.image import DicomImage


def test_linear_window_hand_values() -> None:
    # C.11.2.1.2.1 with c=40, w=400: below -160 -> 0, above 239 -> max, linear in between
    y = apply_window(np.array([-1000, -160, -159, 40, 239, 240, 3000]), WindowLevel(40, 400))
    expected = [0.0, 0.0, (-159 - 39.5) / 399 + 0.5, (40 - 39.5) / 399 + 0.5, 1.0, 1.0, 1.0]
    np.testing.assert_allclose(y, expected, atol=1e-6)
    assert y[4] == pytest.approx(1.0)  # 239 > 39.5 + 199.5 is false; (239-39.5)/399+0.5 = 1.0


def test_linear_exact_and_sigmoid() -> None:
    exact = apply_window(np.array([-1, 0, 5, 10, 11]), WindowLevel(5, 10, function="LINEAR_EXACT"))
    np.testing.assert_allclose(exact, [0, 0, 0.5, 1.0, 1.0], atol=1e-6)
    sig = apply_window(np.array([5.0, 15.0]), WindowLevel(5, 10, function="SIGMOID"))
    np.testing.assert_allclose(sig, [0.5, 1 / (1 + np.exp(-4.0))], atol=1e-6)


def test_window_validation() -> None:
    with pytest.raises(ValueError):
        WindowLevel(0, 1, function="LOG")


def test_presets_and_keys() -> None:
    assert {"lung", "mediastinum", "bone", "brain", "abdomen"} <= set(PRESETS)
    assert PRESETS["lung"] == WindowLevel(-600, 1500, "lung")
    assert HEADER_DEFAULT_KEY == 1 and 1 not in PRESET_KEYS
    assert set(PRESET_KEYS) == set(range(2, 10))
    assert all(name in PRESETS for name in PRESET_KEYS.values())


def test_window_from_drag() -> None:
    start = WindowLevel(40, 400, "mediastinum")
    moved = window_from_drag(start, dx=10, dy=-5, value_range=512)  # 1 unit per pixel
    assert (moved.center, moved.width) == (35, 410)
    narrow = window_from_drag(start, dx=-10_000, dy=0, value_range=512)
    assert narrow.width == 1.0  # never below 1


def _image(gray_dataset, pixels, **attrs) -> DicomImage:
    return DicomImage.from_dataset(gray_dataset(pixels, **attrs))


def test_render_ct_with_rescale(gray_dataset) -> None:
    stored = np.array([[0, 864], [1064, 4000]], dtype=np.uint16)  # HU = stored - 1024
    image = _image(gray_dataset, stored, RescaleSlope=1, RescaleIntercept=-1024, BitsStored=12)
    np.testing.assert_allclose(image.modality_frame(), stored.astype(np.float32) - 1024)
    out = render_frame(image, 0, WindowLevel(40, 400))
    # HU -1024 -> 0; HU -160 -> 0; HU 40 -> round(((40-39.5)/399+0.5)*255) = 128; 2976 -> 255
    np.testing.assert_array_equal(out, [[0, 0], [128, 255]])
    assert out.dtype == np.uint8


def test_render_signed_data_uses_bit_pattern_lut(gray_dataset) -> None:
    stored = np.array([[-1000, -1], [0, 1000]], dtype=np.int16)
    image = _image(gray_dataset, stored)
    out = render_frame(image, 0, WindowLevel(0, 2001, function="LINEAR_EXACT"))
    expected = np.rint(np.clip(stored / 2001 + 0.5, 0, 1) * 255).astype(np.uint8)
    np.testing.assert_array_equal(out, expected)


def test_monochrome1_and_user_invert(gray_dataset) -> None:
    stored = np.array([[0, 255]], dtype=np.uint8)
    mono2 = _image(gray_dataset, stored, modality="DX")
    mono1 = _image(gray_dataset, stored, modality="DX", photometric="MONOCHROME1")
    window = WindowLevel(127.5, 256, function="LINEAR_EXACT")
    np.testing.assert_array_equal(render_frame(mono2, 0, window), [[0, 255]])
    np.testing.assert_array_equal(render_frame(mono1, 0, window), [[255, 0]])
    np.testing.assert_array_equal(render_frame(mono1, 0, window, invert=True), [[0, 255]])
    # DX MONOCHROME1 carries Presentation LUT Shape INVERSE: still one inversion, not two
    mono1_dx = _image(gray_dataset, stored, modality="DX", photometric="MONOCHROME1", PresentationLUTShape="INVERSE")
    np.testing.assert_array_equal(render_frame(mono1_dx, 0, window), [[255, 0]])
    mono2_inverse = _image(gray_dataset, stored, modality="CR", PresentationLUTShape="INVERSE")
    np.testing.assert_array_equal(render_frame(mono2_inverse, 0, window), [[255, 0]])


def test_header_windows_and_default(gray_dataset) -> None:
    image = _image(
        gray_dataset,
        np.zeros((2, 2), np.uint16),
        WindowCenter=[40, -600],
        WindowWidth=[400, 1500],
        WindowCenterWidthExplanation=["SOFT", "LUNG"],
    )
    assert image.windows == [WindowLevel(40, 400, "SOFT"), WindowLevel(-600, 1500, "LUNG")]
    assert image.default_window == WindowLevel(40, 400, "SOFT")


def test_default_window_from_percentiles(gray_dataset) -> None:
    pixels = np.arange(10_000, dtype=np.uint16).reshape(100, 100)
    image = _image(gray_dataset, pixels)
    w = image.default_window
    assert w.name == "auto"
    assert w.center == pytest.approx(4999.5, abs=1) and w.width == pytest.approx(9899.99, abs=2)


def test_voi_lut_sequence_used_when_no_window(gray_dataset) -> None:
    item = Dataset()
    item.LUTDescriptor = [4, 0, 8]  # 4 entries, first mapped stored value 0, 8 bits
    item.LUTData = [0, 100, 200, 255]
    image = _image(gray_dataset, np.array([[0, 1, 2, 3, 9]], dtype=np.uint16), VOILUTSequence=Sequence([item]))
    assert image.has_voi_lut_sequence
    np.testing.assert_array_equal(render_frame(image, 0, None), [[0, 100, 200, 255, 255]])
    # an explicit window overrides the LUT
    np.testing.assert_array_equal(
        render_frame(image, 0, WindowLevel(4.5, 10, function="LINEAR_EXACT")), [[13, 38, 64, 89, 242]]
    )


def test_modality_lut_sequence(gray_dataset) -> None:
    item = Dataset()
    item.LUTDescriptor = [3, 0, 16]
    item.LUTData = [10, 20, 30]
    item.ModalityLUTType = "OD"
    image = _image(gray_dataset, np.array([[0, 1, 2]], dtype=np.uint16), modality="CR", ModalityLUTSequence=Sequence([item]))
    np.testing.assert_array_equal(image.modality_frame(), [[10, 20, 30]])
    assert image.units == "OD"
    out = render_frame(image, 0, WindowLevel(20, 20, function="LINEAR_EXACT"))
    np.testing.assert_array_equal(out, [[0, 128, 255]])


def test_out_shape_block_average_and_upscale(gray_dataset) -> None:
    pixels = np.repeat(np.repeat(np.array([[0, 100], [200, 300]], np.uint16), 4, 0), 4, 1)
    pixels[0, 0] = 16  # block mean of the top-left 4x4 block becomes 1
    image = _image(gray_dataset, pixels)
    small = image.reduced_frame(0, (2, 2))
    np.testing.assert_array_equal(small, [[1, 100], [200, 300]])
    big = render_frame(image, 0, WindowLevel(150, 300, function="LINEAR_EXACT"), out_shape=(16, 16))
    assert big.shape == (16, 16) and big[15, 15] == 255 and big[2, 2] == 0 and big[0, 0] == 14


def test_render_colour_and_invert(gray_dataset) -> None:
    rgb = np.zeros((2, 2, 3), np.uint8)
    rgb[0, 0] = (255, 0, 0)
    ds = gray_dataset(rgb.reshape(2, 6), modality="US", photometric="RGB")
    ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.PlanarConfiguration = 2, 2, 3, 0
    image = DicomImage.from_dataset(ds)
    assert image.is_color
    np.testing.assert_array_equal(render_frame(image, 0, None), rgb)
    np.testing.assert_array_equal(render_frame(image, 0, None, invert=True)[0, 0], [0, 255, 255])


def test_render_array_int16_matches_float_path() -> None:
    hu = np.array([[-1000, -160, 40, 240]], dtype=np.int16)
    window = PRESETS["mediastinum"]
    np.testing.assert_array_equal(render_array(hu, window), render_array(hu.astype(np.float32), window))


def test_lookup_in_bands_matches_fancy_indexing() -> None:
    from viewer.imaging import render

    lut = np.arange(65536, dtype=np.uint32).astype(np.uint8)[::-1].copy()
    pixels = np.random.default_rng(3).integers(0, 65535, size=(1200, 700), dtype=np.uint16)
    assert pixels.size > render.LOOKUP_CHUNK  # exercises the banded path
    np.testing.assert_array_equal(render.lookup(lut, pixels), lut[pixels])


def test_signed_12_bit_stored_sign_extended(gray_dataset) -> None:
    # 12 bits stored in 16: -1 is 0x0FFF on disk; pydicom sign-extends, the zero-copy path must not be used
    raw = np.array([[0x0FFF, 0x0001]], dtype=np.uint16)
    ds = gray_dataset(raw, bits_stored=12)
    ds.PixelRepresentation = 1
    image = DicomImage.from_dataset(ds)
    np.testing.assert_array_equal(image.frame(0), [[-1, 1]])
