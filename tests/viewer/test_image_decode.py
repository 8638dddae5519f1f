"""Decoding through DicomImage on pydicom's bundled files: every transfer syntax, colour models, errors."""

from __future__ import annotations

import warnings

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from viewer.io.image import DicomImage, DicomReadError, load_image


def _testfile(name: str) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path = get_testdata_file(name, download=False)
    if path is None:
        pytest.skip(f"{name} is not bundled with this pydicom")
    return str(path)


# (file, transfer syntax it exercises); each is compared with the uncompressed reference pixels.
GREY_CASES = [
    ("MR_small.dcm", "Explicit VR Little Endian"),
    ("MR_small_implicit.dcm", "Implicit VR Little Endian"),
    ("MR_small_bigendian.dcm", "Explicit VR Big Endian"),
    ("MR_small_RLE.dcm", "RLE Lossless"),
    ("MR_small_jp2klossless.dcm", "JPEG 2000 Lossless"),
    ("MR_small_jpeg_ls_lossless.dcm", "JPEG-LS Lossless"),
]


@pytest.mark.parametrize(("name", "syntax"), GREY_CASES)
def test_lossless_grey_syntaxes_match_reference(name: str, syntax: str) -> None:
    reference = pydicom.dcmread(_testfile("MR_small.dcm")).pixel_array
    image = load_image(_testfile(name))
    frame = image.frame(0)
    assert frame.shape == (64, 64) and not image.is_color
    assert frame.dtype.isnative
    np.testing.assert_array_equal(frame, reference)


@pytest.mark.parametrize(
    "name",
    [
        "693_J2KI.dcm",  # JPEG 2000 (lossy)
        "JPGExtended.dcm",  # JPEG extended 12-bit
        "JPEGLSNearLossless_08.dcm",  # JPEG-LS near-lossless
        "image_dfl.dcm",  # deflated explicit VR little endian
    ],
)
def test_other_grey_syntaxes_decode(name: str) -> None:
    image = load_image(_testfile(name))
    frame = image.frame(0)
    assert frame.shape == (image.rows, image.columns)
    assert frame.std() > 0  # real image content, not zeros


RGB_REFERENCE = "SC_rgb.dcm"


@pytest.mark.parametrize(
    "name",
    [
        "SC_rgb_jpeg_gdcm.dcm",  # JPEG lossless (process 14)
        "SC_rgb_rle.dcm",  # RLE colour
        "SC_rgb_gdcm_KY.dcm",  # JPEG 2000 colour
        "SC_rgb_dcmtk_+eb+cy+np.dcm",  # JPEG baseline YBR_FULL_422
        "SC_rgb_dcmtk_+eb+cy+n1.dcm",  # JPEG baseline YBR_FULL
        "SC_rgb_rle_16bit.dcm",  # 16-bit RGB -> uint8
    ],
)
def test_colour_decodes_to_rgb8(name: str) -> None:
    image = load_image(_testfile(name))
    rgb = image.frame(0)
    assert image.is_color
    assert rgb.dtype == np.uint8 and rgb.shape == (100, 100, 3)
    # the dcmtk/gdcm SC_rgb test images have a red band at the top left: R high, G and B low
    r, g, b = (int(v) for v in rgb[5, 5])
    assert r > 200 and g < 60 and b < 60


def test_ybr_uncompressed_converted_to_rgb() -> None:
    image = load_image(_testfile("SC_ybr_full_422_uncompressed.dcm"))
    r, g, b = (int(v) for v in image.frame(0)[5, 5])
    assert r > 200 and g < 60 and b < 60


def test_palette_colour_to_rgb8() -> None:
    image = load_image(_testfile("examples_palette.dcm"))
    rgb = image.frame(0)
    assert rgb.dtype == np.uint8 and rgb.shape == (image.rows, image.columns, 3)
    assert len(np.unique(rgb.reshape(-1, 3), axis=0)) > 10


def test_multiframe_frames_are_lazy_and_distinct() -> None:
    image = load_image(_testfile("examples_ybr_color.dcm"))  # US, 30 frames, JPEG YBR_FULL_422
    assert image.n_frames == 30 and image.modality == "US"
    first, last = image.frame(0), image.frame(29)
    assert first.shape == last.shape == (240, 320, 3)
    assert not np.array_equal(first, last)
    assert image.frame(0) is first  # cached
    with pytest.raises(IndexError):
        image.frame(30)


def test_rle_multiframe_grey_32bit() -> None:
    image = load_image(_testfile("rtdose_rle.dcm"))
    assert image.n_frames == 15
    assert image.frame(14).shape == (10, 10)


def test_ct_rescale_gives_hu() -> None:
    image = load_image(_testfile("CT_small.dcm"))
    slope, intercept = image.rescale(0)
    hu = image.modality_frame(0)
    assert hu.dtype == np.float32 and image.units == "HU"
    np.testing.assert_allclose(hu, image.frame(0).astype(np.float64) * slope + intercept)
    assert image.pixel_spacing is not None and image.spacing_source == "PixelSpacing"


def test_identity_fields() -> None:
    image = load_image(_testfile("CT_small.dcm"))
    ds = image.dataset
    assert image.sop_instance_uid == ds.SOPInstanceUID
    assert image.series_uid == ds.SeriesInstanceUID and image.study_uid == ds.StudyInstanceUID
    assert (image.rows, image.columns, image.n_frames) == (128, 128, 1)


@pytest.mark.filterwarnings("ignore::UserWarning")  # pydicom warns about badVR.dcm's invalid IS value
@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("README.txt", "not a DICOM file"),
        ("rtplan.dcm", "no Pixel Data"),
        ("badVR.dcm", "malformed"),
    ],
)
def test_unreadable_files_raise_clear_error(name: str, reason: str) -> None:
    with pytest.raises(DicomReadError, match=reason):
        load_image(_testfile(name))


def test_truncated_pixel_data_fails_on_decode_with_reason() -> None:
    image = load_image(_testfile("MR_truncated.dcm"))
    with pytest.raises(DicomReadError, match="cannot decode frame 0"):
        image.frame(0)


def test_missing_file_and_folder(tmp_path) -> None:
    with pytest.raises(DicomReadError, match="not found"):
        load_image(tmp_path / "nope.dcm")
    with pytest.raises(DicomReadError, match="folder"):
        load_image(tmp_path)


def test_truncated_header_is_clear(tmp_path) -> None:
    data = open(_testfile("CT_small.dcm"), "rb").read()
    broken = tmp_path / "cut.dcm"
    broken.write_bytes(data[:400])
    with pytest.raises(DicomReadError):
        load_image(broken).frame(0)


def test_from_dataset_requires_rows(gray_dataset) -> None:
    ds = gray_dataset(np.zeros((4, 4), np.uint16))
    del ds.Rows
    with pytest.raises(DicomReadError, match="Rows"):
        DicomImage.from_dataset(ds)


def test_every_bundled_pydicom_file_decodes_or_fails_clearly() -> None:
    """The awkward corpus: each file shows, or says why not with DicomReadError; nothing else escapes."""
    from pathlib import Path

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        folder = Path(_testfile("CT_small.dcm")).parent
        shown, refused = 0, 0
        for path in sorted(p for p in folder.iterdir()):
            try:
                image = load_image(path)
                for i in {0, image.n_frames - 1}:
                    image.frame(i)
                shown += 1
            except DicomReadError as exc:
                assert str(exc)  # a reason the user can read
                refused += 1
    assert shown >= 50 and refused >= 10


def test_enhanced_multiframe_functional_groups(gray_dataset) -> None:
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    frames = np.stack([np.full((2, 3), 10, np.uint16), np.full((2, 3), 20, np.uint16)])
    ds = gray_dataset(frames.reshape(4, 3), modality="CT")
    ds.Rows, ds.Columns, ds.NumberOfFrames = 2, 3, 2
    shared = Dataset()
    measures = Dataset()
    measures.PixelSpacing = [0.7, 0.8]
    shared.PixelMeasuresSequence = Sequence([measures])
    voi = Dataset()
    voi.WindowCenter, voi.WindowWidth = 40, 400
    shared.FrameVOILUTSequence = Sequence([voi])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    per_frame = []
    for intercept in (-1000, -500):
        item, transform = Dataset(), Dataset()
        transform.RescaleSlope, transform.RescaleIntercept, transform.RescaleType = 1, intercept, "HU"
        item.PixelValueTransformationSequence = Sequence([transform])
        per_frame.append(item)
    ds.PerFrameFunctionalGroupsSequence = Sequence(per_frame)
    image = DicomImage.from_dataset(ds)
    assert image.n_frames == 2 and image.pixel_spacing == (0.7, 0.8)
    assert image.default_window.center == 40 and image.default_window.width == 400
    np.testing.assert_array_equal(image.modality_frame(0), np.full((2, 3), -990.0))
    np.testing.assert_array_equal(image.modality_frame(1), np.full((2, 3), -480.0))
    np.testing.assert_array_equal(image.frame(1), frames[1])


@pytest.mark.parametrize("syntax", ["1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.5", "1.2.840.10008.1.2.1.99"])
def test_signed_ct_round_trips_through_lossless_syntaxes(tmp_path, syntax: str) -> None:
    """Signed 16-bit CT compressed by pydicom's encoders (J2K, JPEG-LS, RLE) or deflated: same HU back."""
    from pydicom.uid import UID

    reference = load_image(_testfile("CT_small.dcm"))
    ds = pydicom.dcmread(_testfile("CT_small.dcm"))
    uid = UID(syntax)
    if uid.is_compressed:
        ds.compress(uid)
    else:
        ds.file_meta.TransferSyntaxUID = uid
    path = tmp_path / "ct.dcm"
    ds.save_as(path)
    image = load_image(path)
    assert image.dataset.file_meta.TransferSyntaxUID == uid
    np.testing.assert_array_equal(image.frame(0), reference.frame(0))
    np.testing.assert_array_equal(image.modality_frame(0), reference.modality_frame(0))


def test_frames_from_several_threads() -> None:
    from concurrent.futures import ThreadPoolExecutor

    image = load_image(_testfile("examples_ybr_color.dcm"))
    with ThreadPoolExecutor(4) as pool:
        frames = list(pool.map(image.frame, [0, 1, 2, 3, 0, 1, 2, 3]))
    for a, b in zip(frames[:4], frames[4:], strict=True):
        np.testing.assert_array_equal(a, b)
