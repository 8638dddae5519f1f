"""Volume assembly from shuffled files, each geometry warning, and MPR index maths."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import SimpleITK as sitk

from viewer.volume import MPRGeometry, VolumeCancelled, VolumeError, load_volume, mpr_slice


def _stored(nz=6, ny=4, nx=5) -> np.ndarray:
    # each slice filled with its own index, plus an in-plane ramp, so order and layout are checkable
    z = np.arange(nz, dtype=np.uint16)[:, None, None] * 100
    y = np.arange(ny, dtype=np.uint16)[None, :, None] * 10
    x = np.arange(nx, dtype=np.uint16)[None, None, :]
    return (1000 + z + y + x).astype(np.uint16)


def test_shuffled_files_sorted_by_position(tmp_path, ct_series_writer) -> None:
    stored = _stored()
    paths = ct_series_writer(tmp_path, stored)
    rng = np.random.default_rng(1)
    shuffled = [paths[i] for i in rng.permutation(len(paths))]
    seen = []
    vol = load_volume(shuffled, progress=lambda done, total: seen.append((done, total)))
    assert vol.warnings == []
    assert vol.array.dtype == np.int16 and vol.units == "HU"
    np.testing.assert_array_equal(vol.array, stored.astype(np.int32) - 1024)
    assert vol.paths == paths
    assert vol.spacing_zyx == (2.0, 0.5, 0.5)
    assert vol.image.GetSpacing() == (0.5, 0.5, 2.0)
    assert vol.image.GetOrigin() == (0.0, 0.0, 0.0)
    np.testing.assert_array_equal(sitk.GetArrayViewFromImage(vol.image), vol.array)  # one shared buffer
    assert sorted(seen)[-1] == (6, 6)
    np.testing.assert_allclose(vol.positions[:, 2], np.arange(6) * 2.0)


def test_reverse_positions_follow_normal(tmp_path, ct_series_writer) -> None:
    stored = _stored()
    positions = [(0.0, 0.0, -k * 2.0) for k in range(6)]  # file k lies lower for larger k
    paths = ct_series_writer(tmp_path, stored, positions=positions)
    vol = load_volume(paths)
    np.testing.assert_array_equal(vol.array[0], stored[-1].astype(np.int32) - 1024)
    assert vol.image.GetOrigin() == (0.0, 0.0, -10.0)


def test_float_rescale_gives_float32(tmp_path, ct_series_writer) -> None:
    stored = _stored(nz=3)
    vol = load_volume(ct_series_writer(tmp_path, stored, slope=0.5, intercept=-10.5))
    assert vol.array.dtype == np.float32
    np.testing.assert_allclose(vol.array, stored * 0.5 - 10.5)


def test_gantry_tilt_warning(tmp_path, ct_series_writer) -> None:
    positions = [(0.0, k * 2.0 * np.tan(np.radians(15)), k * 2.0) for k in range(6)]
    vol = load_volume(ct_series_writer(tmp_path, _stored(), positions=positions))
    assert any("Gantry tilt of 15.0" in w for w in vol.warnings)


def test_missing_slice_warning(tmp_path, ct_series_writer) -> None:
    stored = _stored(nz=8)
    paths = ct_series_writer(tmp_path, stored)
    vol = load_volume(paths[:3] + paths[4:])
    assert any("1 slice(s) appear to be missing" in w for w in vol.warnings)
    # the gap becomes one blank slice, so slice k still lies at k * 2 mm
    assert vol.shape == (8, 4, 5) and vol.inserted == (3,)
    np.testing.assert_array_equal(vol.array[4], stored[4].astype(np.int32) - 1024)
    assert np.all(vol.array[3] == vol.array.min())
    np.testing.assert_allclose(vol.positions[:, 2], np.arange(8) * 2.0)
    assert len(vol.paths) == 7


def test_uneven_spacing_warning(tmp_path, ct_series_writer) -> None:
    positions = [(0.0, 0.0, z) for z in (0.0, 2.0, 4.0, 6.3, 8.0, 10.0)]
    vol = load_volume(ct_series_writer(tmp_path, _stored(), positions=positions))
    assert any("Uneven slice spacing" in w for w in vol.warnings)
    assert vol.spacing_zyx[0] == pytest.approx(2.0)


def test_other_orientation_left_out(tmp_path, ct_series_writer) -> None:
    stored = _stored()
    orientations = [(1, 0, 0, 0, 1, 0)] * 5 + [(1, 0, 0, 0, 0, -1)]  # a coronal localizer among axials
    vol = load_volume(ct_series_writer(tmp_path, stored, orientations=orientations))
    assert any("1 file(s) with another orientation" in w for w in vol.warnings)
    assert vol.shape == (5, 4, 5)
    np.testing.assert_array_equal(vol.array, stored[:5].astype(np.int32) - 1024)


def test_slightly_mixed_orientation_warning(tmp_path, ct_series_writer) -> None:
    orientations = [(1, 0, 0, 0, 1, 0)] * 3 + [(1, 0, 0, 0, 0.9998, 0.02)] * 3
    vol = load_volume(ct_series_writer(tmp_path, _stored(), orientations=orientations))
    assert any("Mixed orientation" in w for w in vol.warnings)


@pytest.mark.parametrize("where", [0, 3])
def test_other_size_left_out(tmp_path, ct_series_writer, where: int) -> None:
    stored = _stored()
    paths = ct_series_writer(tmp_path / "ct", stored)
    scout = ct_series_writer(tmp_path / "scout", _stored(nz=1, ny=9, nx=9), seed="scout")[0]
    files = [*paths[:where], scout, *paths[where:]]
    vol = load_volume(files)
    assert any("1 file(s) of another image size" in w for w in vol.warnings)
    assert vol.shape == (6, 4, 5) and scout not in vol.paths
    np.testing.assert_array_equal(vol.array, stored.astype(np.int32) - 1024)


def test_duplicate_positions_warning(tmp_path, ct_series_writer) -> None:
    positions = [(0.0, 0.0, z) for z in (0.0, 2.0, 2.0, 4.0, 6.0, 8.0)]
    vol = load_volume(ct_series_writer(tmp_path, _stored(), positions=positions))
    assert any("duplicate slice position" in w for w in vol.warnings)


def test_too_few_slices_and_bad_files(tmp_path, ct_series_writer) -> None:
    paths = ct_series_writer(tmp_path, _stored(nz=2))
    with pytest.raises(VolumeError, match="at least 2 slices"):
        load_volume(paths[:1])
    junk = tmp_path / "junk.dcm"
    junk.write_text("not dicom")
    with pytest.raises(VolumeError, match="junk.dcm"):
        load_volume([paths[0], junk])


def test_no_two_slices_alike_is_an_error(tmp_path, ct_series_writer) -> None:
    a = ct_series_writer(tmp_path / "a", _stored(nz=2), seed="a")
    b = ct_series_writer(tmp_path / "b", _stored(nz=2, nx=7), seed="b")
    with pytest.raises(VolumeError, match="at least 2 slices"):
        load_volume([a[0], b[0]])


def test_cancel(tmp_path, ct_series_writer) -> None:
    paths = ct_series_writer(tmp_path, _stored())
    flag = threading.Event()
    flag.set()
    with pytest.raises(VolumeCancelled):
        load_volume(paths, cancel=flag)


def test_compressed_slices_use_decoder(tmp_path, ct_series_writer) -> None:
    import pydicom
    from pydicom.uid import RLELossless

    stored = _stored(nz=3)
    paths = ct_series_writer(tmp_path, stored)
    ds = pydicom.dcmread(paths[1])
    ds.compress(RLELossless)
    ds.save_as(paths[1])
    vol = load_volume(paths)
    np.testing.assert_array_equal(vol.array, stored.astype(np.int32) - 1024)


def test_mpr_views_spacing_and_crosshair() -> None:
    vol = np.arange(3 * 4 * 5).reshape(3, 4, 5)
    spacing = (2.0, 0.5, 0.25)
    axial, sp = mpr_slice(vol, spacing, "axial", 1)
    assert sp == (0.5, 0.25) and np.shares_memory(axial, vol)
    np.testing.assert_array_equal(axial, vol[1])
    coronal, sp = mpr_slice(vol, spacing, "coronal", 2)
    assert sp == (2.0, 0.25) and coronal.shape == (3, 5)
    np.testing.assert_array_equal(coronal[0], vol[2, 2, :])  # head (last slice) on top
    sagittal, sp = mpr_slice(vol, spacing, "sagittal", 4, flip_z=False)
    np.testing.assert_array_equal(sagittal, vol[:, :, 4])
    geo = MPRGeometry(vol.shape, spacing)
    assert geo.aspect("coronal") == 8.0
    zyx = (0, 3, 1)
    for plane in ("axial", "coronal", "sagittal"):
        r, c = geo.to_plane(plane, zyx)
        assert geo.from_plane(plane, geo.plane_index(plane, zyx), r + 0.4, c + 0.9) == zyx
        img, _ = geo.slice(vol, plane, geo.plane_index(plane, zyx))
        assert img[r, c] == vol[zyx]
    assert geo.from_plane("axial", 0, -5, 99) == (0, 0, 4)
    with pytest.raises(ValueError):
        mpr_slice(vol, spacing, "oblique", 0)  # type: ignore[arg-type]
    with pytest.raises(IndexError):
        mpr_slice(vol, spacing, "axial", 3)


def test_enhanced_multiframe_file_becomes_volume(tmp_path, gray_dataset) -> None:
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    stored = _stored(nz=4).astype(np.int16)
    order = [2, 0, 3, 1]  # frames stored out of spatial order
    ds = gray_dataset(stored[order].reshape(-1, 5), modality="CT", RescaleSlope=1, RescaleIntercept=-1024)
    ds.Rows, ds.Columns, ds.NumberOfFrames = 4, 5, 4
    shared, orient, measures = Dataset(), Dataset(), Dataset()
    orient.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    measures.PixelSpacing, measures.SliceThickness = [0.5, 0.5], 3.0
    shared.PlaneOrientationSequence = Sequence([orient])
    shared.PixelMeasuresSequence = Sequence([measures])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    frames = []
    for z in order:
        item, pos = Dataset(), Dataset()
        pos.ImagePositionPatient = [0, 0, 3.0 * z]
        item.PlanePositionSequence = Sequence([pos])
        frames.append(item)
    ds.PerFrameFunctionalGroupsSequence = Sequence(frames)
    path = tmp_path / "enhanced.dcm"
    ds.save_as(path, enforce_file_format=True)
    vol = load_volume([path])
    assert vol.warnings == [] and vol.spacing_zyx == (3.0, 0.5, 0.5)
    np.testing.assert_array_equal(vol.array, stored.astype(np.int32) - 1024)
