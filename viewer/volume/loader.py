"""A CT/MR series becomes one SimpleITK volume, ordered by Image Position (Patient) along the slice normal.

Speed and memory: the volume buffer is allocated once, inside the SimpleITK image, and the numpy array
handed out is a writable view of that same buffer. Files are read by a thread pool; for uncompressed
little-endian data the header is parsed up to Pixel Data and the pixel bytes are read straight into
their slot of the volume (no intermediate copy). Compressed files go through `DicomImage`. Slices are
put in spatial order afterwards by an in-place permutation that needs one spare slice.

Geometry problems that make measurements or reformats wrong are reported as warnings, not hidden:
gantry tilt, uneven spacing, missing slices, mixed orientation, duplicate positions.
"""

from __future__ import annotations

import ctypes
import math
import os
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pydicom
import SimpleITK as sitk
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from engines.errors import Cancelled
from viewer.imaging.window import WindowLevel
from viewer.io.image import DicomReadError, functional_item, load_image

__all__ = ["VolumeCancelled", "VolumeError", "VolumeResult", "load_volume"]

NATIVE_LE = (ExplicitVRLittleEndian, ImplicitVRLittleEndian)
ORIENTATION_TOL = 1e-3  # direction cosines: beyond this, "mixed orientation"
OTHER_ORIENTATION = 0.05  # beyond this, another acquisition (localizer) that is left out
TILT_TOL_DEG = 0.5
SPACING_REL_TOL = 0.02
MISSING_FACTOR = 1.5


class VolumeError(ValueError):
    """The files cannot form one volume (too few slices, different sizes, unreadable)."""


class VolumeCancelled(Cancelled):
    """The caller cancelled the load (one of the product's cancellation family, engines.errors)."""


class CancelFlag(Protocol):
    def is_set(self) -> bool: ...


@dataclass
class _Slice:
    path: Path
    rows: int
    cols: int
    position: tuple[float, float, float] | None
    orientation: tuple[float, ...] | None
    spacing: tuple[float, float] | None
    instance: int | None
    slope: float
    intercept: float
    series_uid: str
    signed: bool
    bits_stored: int
    window: WindowLevel | None
    thickness: float | None
    modality: str
    ds: Any = None  # header dataset of the first slice only


@dataclass
class VolumeResult:
    """A loaded volume: `image` (SimpleITK, int16 or float32 in modality units, HU on CT), `array` (a
    writable numpy view of the same buffer, axes z, y, x), per-slice `positions` (one per volume
    slice), the files in spatial order (`paths`; blank `inserted` slices have none) and `warnings`
    the user should see."""

    image: sitk.Image
    array: np.ndarray
    positions: np.ndarray
    paths: list[Path]
    warnings: list[str] = field(default_factory=list)
    spacing_zyx: tuple[float, float, float] = (1.0, 1.0, 1.0)
    normal: tuple[float, float, float] = (0.0, 0.0, 1.0)
    units: str = ""
    window: WindowLevel | None = None
    modality: str = ""
    inserted: tuple[int, ...] = ()  # volume slices that are blank stand-ins for missing files

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.array.shape)  # type: ignore[return-value]

    @property
    def flip_z(self) -> bool:
        """True when slice index grows toward the head (LPS +z): reformats then draw the last slice on top."""
        return self.normal[2] >= 0


def _floats(value: Any, n: int) -> tuple[float, ...] | None:
    try:
        vals = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        return None
    return vals if len(vals) == n and all(math.isfinite(v) for v in vals) else None


def _header(ds: pydicom.Dataset, path: Path) -> _Slice:
    try:
        rows, cols = int(ds.Rows), int(ds.Columns)
    except (AttributeError, TypeError, ValueError) as exc:
        raise VolumeError(f"{path.name}: no usable Rows/Columns") from exc
    slope = ds.get("RescaleSlope")
    intercept = ds.get("RescaleIntercept")
    inst = ds.get("InstanceNumber")
    centers, widths = ds.get("WindowCenter"), ds.get("WindowWidth")
    window = None
    try:
        if centers is not None and widths is not None:
            c = float(centers[0] if isinstance(centers, pydicom.multival.MultiValue) else centers)
            w = float(widths[0] if isinstance(widths, pydicom.multival.MultiValue) else widths)
            window = WindowLevel(c, w, "header") if w >= 1 else None
    except (TypeError, ValueError):
        window = None
    thickness = ds.get("SliceThickness")
    return _Slice(
        path=path,
        rows=rows,
        cols=cols,
        position=_floats(ds.get("ImagePositionPatient"), 3),  # type: ignore[arg-type]
        orientation=_floats(ds.get("ImageOrientationPatient"), 6),
        spacing=_floats(ds.get("PixelSpacing"), 2),  # type: ignore[arg-type]
        instance=int(inst) if inst not in (None, "") else None,
        slope=float(slope) if slope not in (None, "") and float(slope) != 0 else 1.0,
        intercept=float(intercept) if intercept not in (None, "") else 0.0,
        series_uid=str(ds.get("SeriesInstanceUID", "")),
        signed=int(ds.get("PixelRepresentation", 0) or 0) == 1,
        bits_stored=int(ds.get("BitsStored") or ds.get("BitsAllocated") or 16),
        window=window,
        thickness=float(thickness) if thickness not in (None, "") else None,
        modality=str(ds.get("Modality", "") or ""),
    )


def _read_header_only(path: Path) -> _Slice:
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
    except Exception as exc:
        raise VolumeError(f"{path.name}: not readable as DICOM ({type(exc).__name__}: {exc})") from exc
    info = _header(ds, path)
    info.ds = ds
    return info


class _SizeMismatch(Exception):
    """A file whose image size differs from the slot it was meant for (a localizer, another series)."""

    def __init__(self, info: _Slice) -> None:
        super().__init__(info.path.name)
        self.info = info


def _read_into(path: Path, out: np.ndarray) -> _Slice:
    """Parse `path`'s header and put its pixels (stored values) into `out` (rows x cols)."""
    try:
        with open(path, "rb") as fp:
            ds = pydicom.dcmread(fp, stop_before_pixels=True)
            info = _header(ds, path)
            if (info.rows, info.cols) != out.shape:
                raise _SizeMismatch(info)
            if _fast_path_ok(ds, out.dtype) and _read_native_pixels(fp, ds, out):
                return info
    except (VolumeError, VolumeCancelled, _SizeMismatch):
        raise
    except Exception as exc:
        raise VolumeError(f"{path.name}: not readable as DICOM ({type(exc).__name__}: {exc})") from exc
    # compressed, big endian or otherwise unusual: decode through the general image reader
    try:
        frame = load_image(path).frame(0)
    except DicomReadError as exc:
        raise VolumeError(str(exc)) from exc
    if frame.ndim != 2:
        raise VolumeError(f"{path.name}: not a single-frame grey image")
    out[...] = frame
    return info


def _fast_path_ok(ds: pydicom.Dataset, dtype: np.dtype) -> bool:
    meta = getattr(ds, "file_meta", None)
    tsyntax = getattr(meta, "TransferSyntaxUID", None) if meta is not None else None
    return (
        tsyntax in NATIVE_LE
        and int(ds.get("BitsAllocated", 0) or 0) == 16
        and int(ds.get("SamplesPerPixel", 1) or 1) == 1
        and int(ds.get("NumberOfFrames") or 1) == 1
        and dtype.itemsize == 2
    )


def _read_native_pixels(fp: Any, ds: pydicom.Dataset, out: np.ndarray) -> bool:
    """Read the Pixel Data element at the file position straight into `out`; False if not as expected."""
    head = fp.read(8)
    if len(head) < 8 or head[:4] != b"\xe0\x7f\x10\x00":
        return False
    explicit = ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    if explicit:
        if head[4:6] not in (b"OW", b"OB"):
            return False
        rest = fp.read(4)
        length = int.from_bytes(rest, "little")
    else:
        length = int.from_bytes(head[4:8], "little")
    if length != out.nbytes:
        return False
    view = memoryview(out.reshape(-1).view(np.uint8))
    got = fp.readinto(view)
    return got == out.nbytes


def _sitk_backed(shape_zyx: tuple[int, int, int], dtype: np.dtype) -> tuple[sitk.Image, np.ndarray]:
    """A SimpleITK image and a writable numpy view of its pixel buffer (no second copy of the volume)."""
    pixel_id = {np.dtype(np.int16): sitk.sitkInt16, np.dtype(np.float32): sitk.sitkFloat32}[np.dtype(dtype)]
    nz, ny, nx = shape_zyx
    image = sitk.Image([nx, ny, nz], pixel_id)
    view = sitk.GetArrayViewFromImage(image)
    pointer = view.__array_interface__["data"][0]
    ctype = ctypes.c_int16 if dtype == np.int16 else ctypes.c_float
    raw = (ctype * view.size).from_address(pointer)
    raw._owner = image  # type: ignore[attr-defined]  # keeps the buffer alive as long as the array
    array = np.frombuffer(raw, dtype=dtype).reshape(view.shape)
    return image, array


def _permute_in_place(array: np.ndarray, order: np.ndarray) -> None:
    """Reorder slices so that array[k] becomes old array[order[k]], using one spare slice."""
    n = len(order)
    done = np.zeros(n, dtype=bool)
    spare = np.empty_like(array[0])
    for start in range(n):
        if done[start] or order[start] == start:
            done[start] = True
            continue
        spare[...] = array[start]
        k = start
        while True:
            src = int(order[k])
            done[k] = True
            if src == start:
                array[k] = spare
                break
            array[k] = array[src]
            k = src


def _geometry_warnings(slices: list[_Slice], normal: np.ndarray, dists: np.ndarray) -> tuple[list[str], float]:
    warnings: list[str] = []
    first = np.asarray(slices[0].orientation)
    if any(s.orientation is None or np.max(np.abs(np.asarray(s.orientation) - first)) > ORIENTATION_TOL for s in slices):
        warnings.append("Mixed orientation: not all slices share one Image Orientation (Patient); reformats are unreliable.")
    steps = np.diff(dists)
    dup = int(np.sum(np.abs(steps) < 1e-3))
    if dup:
        warnings.append(f"{dup} duplicate slice position(s) (several acquisitions in one series?); spacing is unreliable.")
    good = steps[np.abs(steps) >= 1e-3]
    if good.size == 0:
        raise VolumeError("all slices lie at the same position: not a volume")
    spacing = float(np.median(good))
    missing = good > MISSING_FACTOR * spacing
    if np.any(missing):
        n_missing = int(np.sum(np.round(good[missing] / spacing) - 1))
        warnings.append(
            f"About {n_missing} slice(s) appear to be missing (gaps up to {good.max():.2f} mm against a "
            f"usual spacing of {spacing:.2f} mm)."
        )
    elif good.max() - good.min() > SPACING_REL_TOL * spacing:
        warnings.append(
            f"Uneven slice spacing ({good.min():.2f}-{good.max():.2f} mm); reformats use {spacing:.2f} mm."
        )
    positions = np.asarray([s.position for s in slices], dtype=np.float64)
    if len(positions) >= 2:
        delta = positions[-1] - positions[0]
        norm = np.linalg.norm(delta)
        if norm > 0:
            cos = abs(float(np.dot(delta / norm, normal)))
            tilt = math.degrees(math.acos(min(1.0, cos)))
            if tilt > TILT_TOL_DEG:
                warnings.append(
                    f"Gantry tilt of {tilt:.1f}°: slices are sheared relative to the slice normal; "
                    "MPR and 3D geometry are approximate."
                )
    return warnings, spacing


def _left_out(count: int, why: str) -> str:
    return f"{count} file(s) {why} left out of the volume."


def _read_files(
    files: list[Path],
    progress: Callable[[int, int], None] | None,
    cancel: CancelFlag | None,
    workers: int | None,
) -> tuple[_Slice, np.dtype, sitk.Image, np.ndarray, np.ndarray, list[tuple[_Slice, bool]]]:
    """Read every file into its slot of a new volume (thread pool); (info, fits-the-first-size) per file."""
    first = _read_header_only(files[0])
    signed_or_small = first.signed or first.bits_stored <= 15
    read_dtype = np.dtype(np.int16) if signed_or_small else np.dtype(np.uint16)
    n = len(files)
    # the volume lives in the SimpleITK image; uint16 data is read through a same-bytes view
    image, array = _sitk_backed((n, first.rows, first.cols), np.dtype(np.int16))
    stored = array if read_dtype == np.int16 else array.view(np.uint16)
    done = [0]
    lock = threading.Lock()

    def work(i: int) -> tuple[_Slice, bool]:
        if cancel is not None and cancel.is_set():
            raise VolumeCancelled("volume load cancelled")
        try:
            info, fits = _read_into(files[i], stored[i]), True
        except _SizeMismatch as odd:
            info, fits = odd.info, False
        if progress is not None:
            with lock:
                done[0] += 1
                count = done[0]
            progress(count, n)
        return info, fits

    n_workers = workers or min(8, (os.cpu_count() or 2) * 2)
    with ThreadPoolExecutor(max_workers=n_workers) as pool:
        results = list(pool.map(work, range(n)))
    return first, read_dtype, image, array, stored, results


def _read_multiframe(
    path: Path,
    progress: Callable[[int, int], None] | None,
    cancel: CancelFlag | None,
) -> tuple[_Slice, np.dtype, sitk.Image, np.ndarray, np.ndarray, list[tuple[_Slice, bool]]]:
    """An enhanced (multi-frame) CT/MR object: each frame becomes a slice, placed by its per-frame
    Plane Position; rescale, orientation and spacing come from the functional groups."""
    try:
        img = load_image(path)
    except DicomReadError as exc:
        raise VolumeError(str(exc)) from exc
    ds = img.dataset
    if img.n_frames < 2 or img.is_color:
        raise VolumeError(f"a volume needs at least 2 slices, got 1 single-frame file ({path.name})")
    if img.frame(0).dtype.itemsize > 2:
        raise VolumeError(f"{path.name}: {img.frame(0).dtype} pixels are not supported in volumes")
    infos: list[tuple[_Slice, bool]] = []
    for k in range(img.n_frames):
        position = functional_item(ds, k, "PlanePositionSequence")
        orient = functional_item(ds, k, "PlaneOrientationSequence")
        measures = functional_item(ds, k, "PixelMeasuresSequence")
        slope, intercept = img.rescale(k)
        thickness = measures.get("SliceThickness") if measures is not None else ds.get("SliceThickness")
        spacing = _floats(measures.get("PixelSpacing"), 2) if measures is not None else None
        info = _Slice(
            path=path,
            rows=img.rows,
            cols=img.columns,
            position=_floats(position.get("ImagePositionPatient"), 3) if position is not None else None,  # type: ignore[arg-type]
            orientation=_floats(orient.get("ImageOrientationPatient"), 6) if orient is not None else None,
            spacing=spacing or img.pixel_spacing,  # type: ignore[arg-type]
            instance=k + 1,
            slope=slope,
            intercept=intercept,
            series_uid=img.series_uid,
            signed=img.is_signed,
            bits_stored=img.bits_stored,
            window=img.default_window if img.windows else None,
            thickness=float(thickness) if thickness not in (None, "") else None,
            modality=img.modality,
        )
        infos.append((info, True))
    first = infos[0][0]
    read_dtype = np.dtype(np.int16) if first.signed or first.bits_stored <= 15 else np.dtype(np.uint16)
    image, array = _sitk_backed((img.n_frames, img.rows, img.columns), np.dtype(np.int16))
    stored = array if read_dtype == np.int16 else array.view(np.uint16)
    for k in range(img.n_frames):
        if cancel is not None and cancel.is_set():
            raise VolumeCancelled("volume load cancelled")
        try:
            stored[k] = img.frame(k)
        except DicomReadError as exc:
            raise VolumeError(str(exc)) from exc
        if progress is not None:
            progress(k + 1, img.n_frames)
    return first, read_dtype, image, array, stored, infos


def load_volume(
    paths: Sequence[str | Path],
    *,
    progress: Callable[[int, int], None] | None = None,
    cancel: CancelFlag | None = None,
    workers: int | None = None,
) -> VolumeResult:
    """Load `paths` (one series, any order; or one enhanced multi-frame file) into a volume; see the
    module docstring for the guarantees.

    `progress(done, total)` is called from worker threads; `cancel.is_set()` stops the load early with
    VolumeCancelled. Raises VolumeError for fewer than 2 slices or files that cannot be stacked.
    """
    files = [Path(p) for p in paths]
    if len(files) == 1:
        first, read_dtype, image, array, stored, results = _read_multiframe(files[0], progress, cancel)
    elif len(files) < 2:
        raise VolumeError("a volume needs at least 2 slices, got 0")
    else:
        first, read_dtype, image, array, stored, results = _read_files(files, progress, cancel, workers)
    n = len(results)
    infos = [info for info, _ in results]

    warnings: list[str] = []
    # ---- files that do not belong: other image sizes, other orientations (localizers, scouts)
    sizes = Counter((s.rows, s.cols) for s in infos)
    common_size = sizes.most_common(1)[0][0]
    if common_size != (first.rows, first.cols):
        # the first file was the odd one out: load again from the files of the common size
        del image, array, stored
        keep_paths = [s.path for s in infos if (s.rows, s.cols) == common_size]
        again = load_volume(keep_paths, progress=progress, cancel=cancel, workers=workers)
        again.warnings.insert(0, _left_out(n - len(keep_paths), "of another image size"))
        return again
    keep = [i for i, (_, fits) in enumerate(results) if fits]
    if len(keep) < n:
        warnings.append(_left_out(n - len(keep), "of another image size"))
    if all(infos[i].orientation is not None for i in keep):
        # the commonest orientation is the series'; a clearly different one (> ~3 degrees) is another
        # acquisition, a small drift stays in and is warned about below
        groups = Counter(tuple(np.round(infos[i].orientation, 3)) for i in keep)  # type: ignore[arg-type]
        main = np.asarray(groups.most_common(1)[0][0])
        same = [i for i in keep if np.max(np.abs(np.asarray(infos[i].orientation) - main)) <= OTHER_ORIENTATION]
        if len(same) < len(keep):
            warnings.append(_left_out(len(keep) - len(same), "with another orientation (localizer?)"))
            keep = same
    if len(keep) < 2:
        raise VolumeError(f"only {len(keep)} of {n} files form a volume; a volume needs at least 2 slices")
    if len(keep) < n:
        compact_image, compact = _sitk_backed((len(keep), first.rows, first.cols), np.dtype(np.int16))
        for k, i in enumerate(keep):
            compact[k] = array[i]
        image, array = compact_image, compact
        stored = array if read_dtype == np.int16 else array.view(np.uint16)
        n = len(keep)
    slices = [infos[i] for i in keep]
    first = slices[0]

    series = {s.series_uid for s in slices}
    if len(series) > 1:
        warnings.append(f"Files come from {len(series)} different series; they were stacked anyway.")

    # ---- order along the slice normal
    if all(s.position is not None and s.orientation is not None for s in slices):
        o = np.asarray(first.orientation)
        row_dir, col_dir = o[:3], o[3:]
        normal = np.cross(row_dir, col_dir)
        normal /= np.linalg.norm(normal) or 1.0
        dists = np.asarray([np.dot(s.position, normal) for s in slices])
        order = np.argsort(dists, kind="stable")
        slices = [slices[i] for i in order]
        dists = dists[order]
        geo_warnings, z_spacing = _geometry_warnings(slices, normal, dists)
        warnings += geo_warnings
    else:
        warnings.append("Image Position/Orientation (Patient) missing: slices ordered by Instance Number; geometry is approximate.")
        keys = [(s.instance if s.instance is not None else i) for i, s in enumerate(slices)]
        order = np.argsort(keys, kind="stable")
        slices = [slices[i] for i in order]
        row_dir, col_dir, normal = np.array([1.0, 0, 0]), np.array([0, 1.0, 0]), np.array([0, 0, 1.0])
        z_spacing = first.thickness or 1.0
        dists = None
    _permute_in_place(stored, np.asarray(order))

    # ---- modality values (HU): stay int16 when the rescale is an integer shift that fits
    slopes = np.array([s.slope for s in slices])
    intercepts = np.array([s.intercept for s in slices])
    if first.signed and first.bits_stored < 16:  # sign-extend the stored bits
        shift = 16 - first.bits_stored
        np.left_shift(array, shift, out=array)
        np.right_shift(array, shift, out=array)
    int_ok = bool(np.all(slopes == 1.0) and np.all(intercepts == np.round(intercepts)))
    if int_ok:
        lo, hi = int(stored.min()), int(stored.max())
        int_ok = hi + intercepts.max() <= 32767 and lo + intercepts.min() >= -32768
    if int_ok:
        for k in range(n):
            b = int(intercepts[k])
            if read_dtype == np.uint16 and stored[k].max() > 32767:
                array[k] = stored[k].astype(np.int32) + b  # one slice of temporary memory
            elif b != 0:
                array[k] += np.int16(b)
    else:
        # non-integer rescale (MR/PET scaling): float32 volume, built slice by slice
        float_image, float_array = _sitk_backed(array.shape, np.dtype(np.float32))
        for k in range(n):
            np.multiply(stored[k], np.float32(slopes[k]), out=float_array[k], casting="unsafe")
            float_array[k] += np.float32(intercepts[k])
        image, array = float_image, float_array
        del stored

    # ---- missing slices: blank slots keep every distance in the reformats true
    inserted: list[int] = []
    positions = np.asarray([s.position or (0.0, 0.0, i * z_spacing) for i, s in enumerate(slices)], dtype=np.float64)
    if dists is not None:
        slots = np.rint((dists - dists[0]) / z_spacing).astype(int)
        fits = np.all(np.abs((dists - dists[0]) - slots * z_spacing) < 0.25 * z_spacing)
        if slots[-1] + 1 > n and fits and len(set(slots.tolist())) == n and slots[-1] + 1 <= 4 * n:
            nz = int(slots[-1]) + 1
            inserted = sorted(set(range(nz)) - set(slots.tolist()))
            blank = array.min()
            filled_image, filled = _sitk_backed((nz, first.rows, first.cols), array.dtype)
            filled[...] = blank
            for k, slot in enumerate(slots):
                filled[slot] = array[k]
            image, array = filled_image, filled
            positions = positions[0] + np.outer(np.arange(nz) * z_spacing, normal)
            warnings.append(
                f"{len(inserted)} missing slice position(s) shown as blank slices so that distances stay true."
            )

    # ---- SimpleITK geometry
    row_sp, col_sp = first.spacing or (1.0, 1.0)
    if first.spacing is None:
        warnings.append("Pixel Spacing missing: in-plane distances are in pixels.")
    image.SetSpacing((col_sp, row_sp, float(z_spacing)))
    origin = slices[0].position or (0.0, 0.0, 0.0)
    image.SetOrigin(tuple(float(v) for v in origin))
    direction = np.column_stack([row_dir, col_dir, normal])
    image.SetDirection(tuple(float(v) for v in direction.ravel()))
    return VolumeResult(
        image=image,
        array=array,
        positions=positions,
        paths=[s.path for s in slices],
        warnings=warnings,
        spacing_zyx=(float(z_spacing), float(row_sp), float(col_sp)),
        normal=tuple(float(v) for v in normal),  # type: ignore[arg-type]
        units="HU" if first.modality == "CT" else "",
        window=first.window,
        modality=first.modality,
        inserted=tuple(inserted),
    )
