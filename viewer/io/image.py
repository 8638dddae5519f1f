"""One DICOM image (single- or multi-frame) with validated header facts and lazily decoded frames.

`DicomImage.from_dataset` checks up front what the pixel pipeline needs, so a broken file fails here
with a `DicomReadError` that says why, instead of deep inside numpy while the user scrolls.
Pixels are decoded only when a frame is asked for (thumbnails and browsing stay cheap), and a few
decoded frames are cached because a viewport re-renders the same frame on every W/L change.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.pixels import apply_color_lut, apply_modality_lut, pixel_array

from viewer.imaging.window import WindowLevel
from viewer.io import progressive
from viewer.io.decoders import ensure_registered, preferred_plugin

__all__ = ["DicomImage", "DicomReadError", "load_image"]

FRAME_CACHE_SIZE = 4
PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
COLOR_PHOTOMETRICS = ("RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT", "YBR_PARTIAL_420", "PALETTE COLOR")
PROJECTION_MODALITIES = ("CR", "DX", "DR", "MG", "IO", "RF", "XA", "PX")
NATIVE_LITTLE_ENDIAN = (pydicom.uid.ExplicitVRLittleEndian, pydicom.uid.ImplicitVRLittleEndian)
# Elements larger than this stay on disk until the pixels are needed.
DEFER_SIZE = "256 KB"
# Uncompressed frames up to this size are read on the caller's thread (a 2048^2 16-bit frame: a few ms
# from the page cache); larger or compressed frames are decoded by the viewer's background workers.
CHEAP_FRAME_BYTES = 8 * 2**20


class DicomReadError(ValueError):
    """A file that is not DICOM, or a DICOM object the viewer cannot display, with the reason."""


def load_image(path: str | Path) -> DicomImage:
    """Read the header of `path` now and its pixels on demand; raise DicomReadError if unreadable."""
    path = Path(path)
    if path.is_dir():
        raise DicomReadError(f"{path}: is a folder, not a file")
    try:
        try:
            ds = pydicom.dcmread(path, defer_size=DEFER_SIZE)
        except InvalidDicomError:
            # Old files without the 128-byte preamble/meta header are still DICOM if they parse as a
            # dataset holding image attributes; anything else is not DICOM.
            ds = pydicom.dcmread(path, defer_size=DEFER_SIZE, force=True)
            if "Rows" not in ds or not any(kw in ds for kw in PIXEL_KEYWORDS):
                raise InvalidDicomError("no DICOM preamble and no image attributes") from None
    except InvalidDicomError as exc:
        raise DicomReadError(f"{path.name}: not a DICOM file ({exc})") from exc
    except FileNotFoundError as exc:
        raise DicomReadError(f"{path}: file not found") from exc
    except Exception as exc:  # pydicom raises many types on corrupt headers
        raise DicomReadError(f"{path.name}: unreadable DICOM header ({type(exc).__name__}: {exc})") from exc
    return DicomImage.from_dataset(ds, path=path)


def _float_list(value: Any) -> list[float]:
    if value is None or value == "":
        return []
    if isinstance(value, pydicom.multival.MultiValue | list | tuple):
        return [float(v) for v in value]
    return [float(value)]


def functional_item(ds: Dataset, frame: int, sequence: str) -> Dataset | None:
    """The first item of `sequence` for `frame` in an enhanced multi-frame object (per-frame wins)."""
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if per_frame is not None and frame < len(per_frame):
        seq = per_frame[frame].get(sequence)
        if seq:
            return seq[0]
    shared = ds.get("SharedFunctionalGroupsSequence")
    if shared:
        seq = shared[0].get(sequence)
        if seq:
            return seq[0]
    return None


class DicomImage:
    """Header facts and decoded frames of one DICOM image object. Build with `from_dataset`/`load_image`."""

    def __init__(self, dataset: Dataset, path: Path | None) -> None:
        self.path = path
        self.dataset = dataset
        self._cache: OrderedDict[tuple[Any, ...], np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self._decode_lock = threading.Lock()
        self._stats: tuple[float, float, float, float] | None = None

    # ----------------------------------------------------------------------------------- construction
    @classmethod
    def from_dataset(cls, ds: Dataset, path: str | Path | None = None) -> DicomImage:
        """Validate that `ds` holds a displayable image and wrap it; DicomReadError says what is missing.
        Header values are decoded lazily by pydicom, so a corrupt element (an unknown VR, a value that does
        not parse) surfaces here, not at dcmread: it is a DicomReadError too."""
        try:
            return cls._validated(ds, path)
        except DicomReadError:
            raise
        except Exception as exc:  # noqa: BLE001 - pydicom raises many types on corrupt header values
            name = Path(path).name if path is not None else "dataset"
            raise DicomReadError(f"{name}: unreadable DICOM header ({type(exc).__name__}: {exc})") from exc

    @classmethod
    def _validated(cls, ds: Dataset, path: str | Path | None) -> DicomImage:
        name = Path(path).name if path is not None else "dataset"
        if not any(kw in ds for kw in PIXEL_KEYWORDS):
            raise DicomReadError(f"{name}: no Pixel Data (not an image object)")
        missing = [kw for kw in ("Rows", "Columns") if ds.get(kw) in (None, "")]
        if "PixelData" in ds:
            missing += [kw for kw in ("BitsAllocated", "PhotometricInterpretation") if ds.get(kw) in (None, "")]
        if missing:
            raise DicomReadError(f"{name}: missing required attribute(s) {', '.join(missing)}")
        try:
            rows, cols = int(ds.Rows), int(ds.Columns)
            frames = int(ds.get("NumberOfFrames") or 1)
        except (TypeError, ValueError) as exc:
            raise DicomReadError(f"{name}: malformed Rows/Columns/Number of Frames ({exc})") from exc
        if rows <= 0 or cols <= 0 or frames <= 0:
            raise DicomReadError(f"{name}: empty image ({rows}x{cols}, {frames} frame(s))")
        meta = getattr(ds, "file_meta", None)
        if meta is None or "TransferSyntaxUID" not in meta:
            # pydicom needs a transfer syntax to decode; datasets built in memory are native little endian.
            if meta is None:
                meta = pydicom.dataset.FileMetaDataset()
                ds.file_meta = meta
            meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
        return cls(ds, Path(path) if path is not None else None)

    # ----------------------------------------------------------------------------------- identity
    @property
    def sop_instance_uid(self) -> str:
        return str(self.dataset.get("SOPInstanceUID", ""))

    @property
    def series_uid(self) -> str:
        return str(self.dataset.get("SeriesInstanceUID", ""))

    @property
    def study_uid(self) -> str:
        return str(self.dataset.get("StudyInstanceUID", ""))

    @property
    def modality(self) -> str:
        return str(self.dataset.get("Modality", "") or "")

    @property
    def rows(self) -> int:
        return int(self.dataset.Rows)

    @property
    def columns(self) -> int:
        return int(self.dataset.Columns)

    @property
    def n_frames(self) -> int:
        return int(self.dataset.get("NumberOfFrames") or 1)

    @property
    def photometric(self) -> str:
        return str(self.dataset.get("PhotometricInterpretation", "MONOCHROME2") or "MONOCHROME2").strip()

    @property
    def is_color(self) -> bool:
        return self.photometric in COLOR_PHOTOMETRICS or int(self.dataset.get("SamplesPerPixel", 1) or 1) > 1

    @property
    def is_monochrome1(self) -> bool:
        return self.photometric == "MONOCHROME1"

    @property
    def is_float(self) -> bool:
        return "PixelData" not in self.dataset

    @property
    def bits_stored(self) -> int:
        ds = self.dataset
        return int(ds.get("BitsStored") or ds.get("BitsAllocated") or 16)

    @property
    def is_signed(self) -> bool:
        return int(self.dataset.get("PixelRepresentation", 0) or 0) == 1

    # ----------------------------------------------------------------------------------- geometry
    def _spacing(self) -> tuple[tuple[float, float] | None, str]:
        ds = self.dataset
        measures = functional_item(ds, 0, "PixelMeasuresSequence")
        candidates: list[tuple[Any, str]] = [
            (ds.get("PixelSpacing"), "PixelSpacing"),
            (measures.get("PixelSpacing") if measures is not None else None, "PixelSpacing"),
        ]
        for value, source in candidates:
            vals = _float_list(value)
            if len(vals) == 2 and all(v > 0 for v in vals):
                if (
                    self.modality in PROJECTION_MODALITIES
                    and ds.get("PixelSpacingCalibrationType")
                    and "ImagerPixelSpacing" in ds
                ):
                    source = "calibrated"
                return (vals[0], vals[1]), source
        vals = _float_list(ds.get("ImagerPixelSpacing"))
        if len(vals) == 2 and all(v > 0 for v in vals):
            try:
                factor = float(ds.get("EstimatedRadiographicMagnificationFactor") or 0)
            except (TypeError, ValueError):
                factor = 0.0
            if factor > 0 and factor != 1.0 and self.modality in PROJECTION_MODALITIES:
                # PS3.3 C.8.11.7: the detector-plane spacing divided by the magnification estimate
                return (vals[0] / factor, vals[1] / factor), "calibrated"
            return (vals[0], vals[1]), "ImagerPixelSpacing"
        for region in ds.get("SequenceOfUltrasoundRegions") or []:
            # Physical units 3 = cm; only a region in cm on both axes gives a usable mm spacing.
            if region.get("PhysicalUnitsXDirection") == 3 and region.get("PhysicalUnitsYDirection") == 3:
                dx, dy = float(region.PhysicalDeltaX), float(region.PhysicalDeltaY)
                if dx > 0 and dy > 0:
                    return (abs(dy) * 10.0, abs(dx) * 10.0), "calibrated"
        return None, "unknown"

    @property
    def pixel_spacing(self) -> tuple[float, float] | None:
        """(row, column) spacing in mm, or None when the header gives none."""
        return self._spacing()[0]

    @property
    def spacing_source(self) -> str:
        """'PixelSpacing' | 'ImagerPixelSpacing' | 'calibrated' | 'unknown'."""
        return self._spacing()[1]

    @property
    def spacing_note(self) -> str:
        """What a measurement in mm means on this image, for the user."""
        source = self.spacing_source
        if source == "unknown":
            return "spacing unknown"
        if source == "ImagerPixelSpacing":
            if self.modality in PROJECTION_MODALITIES:
                return "Imager Pixel Spacing: at the detector, not corrected for magnification"
            return "Imager Pixel Spacing"
        if source == "calibrated":
            factor = self.dataset.get("EstimatedRadiographicMagnificationFactor")
            if "PixelSpacing" not in self.dataset and factor:
                return f"Imager Pixel Spacing corrected by the estimated magnification factor {float(factor):.3g}"
            return "calibrated spacing"
        return "Pixel Spacing"

    # ----------------------------------------------------------------------------------- modality LUT
    def rescale(self, frame: int = 0) -> tuple[float, float]:
        """(slope, intercept) of the linear modality transform for `frame` (1, 0 if none)."""
        ds = self.dataset
        item = functional_item(ds, frame, "PixelValueTransformationSequence")
        src = item if item is not None and "RescaleSlope" in item else ds
        slope = _float_list(src.get("RescaleSlope"))
        intercept = _float_list(src.get("RescaleIntercept"))
        return (slope[0] if slope and slope[0] != 0 else 1.0), (intercept[0] if intercept else 0.0)

    @property
    def has_modality_lut_sequence(self) -> bool:
        return bool(self.dataset.get("ModalityLUTSequence"))

    @property
    def units(self) -> str:
        """Units of modality values: 'HU' on CT, else Rescale Type / LUT type from the header, else ''."""
        if self.modality == "CT":
            return "HU"
        ds = self.dataset
        item = functional_item(ds, 0, "PixelValueTransformationSequence")
        for src in (item, ds):
            if src is not None and src.get("RescaleType"):
                value = str(src.RescaleType)
                return "" if value == "US" else value  # US = unspecified
        seq = ds.get("ModalityLUTSequence")
        if seq and seq[0].get("ModalityLUTType") and seq[0].ModalityLUTType != "US":
            return str(seq[0].ModalityLUTType)
        return ""

    def modality_values(self, stored: np.ndarray, frame: int = 0) -> np.ndarray:
        """Apply the modality LUT (sequence or rescale slope/intercept) to stored values -> float32."""
        if self.has_modality_lut_sequence:
            return np.asarray(apply_modality_lut(stored, self.dataset), dtype=np.float32)
        slope, intercept = self.rescale(frame)
        out = stored.astype(np.float32, copy=True)
        if slope != 1.0:
            out *= np.float32(slope)
        if intercept != 0.0:
            out += np.float32(intercept)
        return out

    # ----------------------------------------------------------------------------------- VOI
    @property
    def has_voi_lut_sequence(self) -> bool:
        return bool(self.dataset.get("VOILUTSequence"))

    @property
    def windows(self) -> list[WindowLevel]:
        """Windows the header offers, named by Window Center & Width Explanation where given."""
        ds = self.dataset
        src: Dataset = ds
        if "WindowCenter" not in ds:
            item = functional_item(ds, 0, "FrameVOILUTSequence")
            if item is not None:
                src = item
        try:
            centers = _float_list(src.get("WindowCenter"))
            widths = _float_list(src.get("WindowWidth"))
        except (TypeError, ValueError):
            return []
        explanations = src.get("WindowCenterWidthExplanation") or []
        if isinstance(explanations, str):
            explanations = [explanations]
        function = str(src.get("VOILUTFunction", "LINEAR") or "LINEAR").upper()
        if function not in ("LINEAR", "LINEAR_EXACT", "SIGMOID"):
            function = "LINEAR"
        out: list[WindowLevel] = []
        for i, (c, w) in enumerate(zip(centers, widths, strict=False)):
            if w <= 0 or (function == "LINEAR" and w < 1):
                continue  # invalid per C.11.2.1.2; ignore rather than divide by zero
            name = str(explanations[i]) if i < len(explanations) else f"header {i + 1}"
            out.append(WindowLevel(c, w, name, function))
        return out

    def _frame_stats(self) -> tuple[float, float, float, float]:
        """(min, p0.5, p99.5, max) of modality values of frame 0, on a subsample for speed."""
        if self._stats is None:
            if self.is_color:
                self._stats = (0.0, 0.0, 255.0, 255.0)
            else:
                preview = self._cache.get(("preview", 0))
                if preview is not None and ("frame", 0) not in self._cache:
                    # reduced-resolution pixels are already here: percentiles of block means are what
                    # a full decode would give to within a grey level, and the window then never jumps
                    values = self.modality_values(preview[0], 0)
                else:
                    values = self.modality_frame(0)
                step = max(1, int(np.sqrt(values.size / 250_000)))
                sample = values[::step, ::step]
                finite = sample[np.isfinite(sample)]
                if finite.size == 0:
                    self._stats = (0.0, 0.0, 1.0, 1.0)
                else:
                    lo, p_lo, p_hi, hi = np.percentile(finite, [0, 0.5, 99.5, 100])
                    self._stats = (float(lo), float(p_lo), float(p_hi), float(hi))
        return self._stats

    @property
    def default_window(self) -> WindowLevel:
        """The first header window, else one spanning the 0.5-99.5 percentile of frame 0."""
        windows = self.windows
        if windows:
            return windows[0]
        _, p_lo, p_hi, _ = self._frame_stats()
        width = max(p_hi - p_lo, 1.0)
        return WindowLevel((p_lo + p_hi) / 2.0, width, "auto")

    @property
    def value_range(self) -> float:
        """max - min of the modality values of frame 0: the scale for W/L drag sensitivity."""
        lo, _, _, hi = self._frame_stats()
        return max(hi - lo, 1.0)

    # ----------------------------------------------------------------------------------- pixels
    def _native_view(self, index: int) -> np.ndarray | None:
        """Frame `index` as a zero-copy view of uncompressed little-endian Pixel Data, when that is
        exactly what pydicom would return (no sign extension or colour conversion needed)."""
        ds = self.dataset
        meta = getattr(ds, "file_meta", None)
        if meta is None or meta.get("TransferSyntaxUID") not in NATIVE_LITTLE_ENDIAN or "PixelData" not in ds:
            return None
        bits = int(ds.get("BitsAllocated", 0) or 0)
        if bits not in (8, 16) or self.is_color or int(ds.get("SamplesPerPixel", 1) or 1) != 1:
            return None
        if self.is_signed and self.bits_stored != bits:
            return None  # stored bits need sign extension: leave it to pydicom
        dtype = np.dtype(f"{'i' if self.is_signed else 'u'}{bits // 8}").newbyteorder("<")
        count = self.rows * self.columns
        data = ds.PixelData
        if len(data) < count * dtype.itemsize * (index + 1):
            return None  # truncated: pydicom produces the explanatory error
        return np.frombuffer(data, dtype=dtype, count=count, offset=index * count * dtype.itemsize).reshape(
            self.rows, self.columns
        )

    def _decode(self, index: int) -> np.ndarray:
        ds = self.dataset
        idx = index if self.n_frames > 1 else None
        try:
            arr = self._native_view(index)
            if arr is not None:
                return arr
            ensure_registered()
            plugin = preferred_plugin(str(ds.file_meta.TransferSyntaxUID))
            arr = pixel_array(ds, index=idx, decoding_plugin=plugin)
        except (KeyboardInterrupt, SystemExit, GeneratorExit):
            raise
        except BaseException as exc:  # noqa: BLE001 - Rust decoders (pylibjpeg-rle) panic on corrupt data with a
            # pyo3 PanicException, which is not an Exception (found by fuzzing: benchmarks/fuzz.py pixel_decode)
            where = self.path.name if self.path else "dataset"
            raise DicomReadError(f"{where}: cannot decode frame {index} ({type(exc).__name__}: {exc})") from exc
        if arr.ndim == 3 and not self.is_color and arr.shape[0] == 1:
            arr = arr[0]
        if not arr.dtype.isnative:  # big endian files: LUT rendering indexes by the native bit pattern
            arr = arr.astype(arr.dtype.newbyteorder("="))
        if self.photometric == "PALETTE COLOR":
            arr = apply_color_lut(arr, ds)
        if self.is_color:
            arr = self._to_rgb8(arr)
        elif arr.dtype == np.float64:
            arr = arr.astype(np.float32)
        arr.flags.writeable = False
        return arr

    def _to_rgb8(self, arr: np.ndarray) -> np.ndarray:
        if arr.ndim == 2:  # a 1-sample image labelled colour: show it as grey
            arr = np.repeat(arr[..., None], 3, axis=2)
        if arr.dtype == np.uint8:
            return np.ascontiguousarray(arr)
        if self.photometric == "PALETTE COLOR":
            top = float(np.iinfo(arr.dtype).max) if arr.dtype.kind in "ui" else float(arr.max() or 1)
        else:
            top = float(2 ** min(self.bits_stored, 32) - 1)
        scaled = np.clip(arr.astype(np.float32) * np.float32(255.0 / top), 0, 255)
        return np.ascontiguousarray(scaled.astype(np.uint8))

    def frame(self, i: int = 0) -> np.ndarray:
        """Frame `i` (read-only): stored values (grayscale, HxW) or RGB uint8 (colour, HxWx3)."""
        if not 0 <= i < self.n_frames:
            raise IndexError(f"frame {i} out of range (0..{self.n_frames - 1})")
        key = ("frame", i)
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
                return cached
        with self._decode_lock:  # one decode at a time per image: pydicom's deferred read is not thread-safe
            with self._lock:
                cached = self._cache.get(key)
            if cached is not None:
                return cached
            arr = self._decode(i)
            self._remember(key, arr)
            with self._lock:
                self._cache.pop(("preview", i), None)  # the full frame supersedes it
        return arr

    def frame_cached(self, i: int = 0) -> bool:
        """Whether frame `i` is decoded already (asking for it will not decode)."""
        with self._lock:
            return ("frame", i) in self._cache

    def decode_is_cheap(self, i: int = 0) -> bool:
        """True when frame `i` is decoded or is a small uncompressed frame read as it is stored: the
        GUI thread may ask for it. Anything else goes to a background decode."""
        if self.frame_cached(i):
            return True
        ds = self.dataset
        meta = getattr(ds, "file_meta", None)
        if meta is None or meta.get("TransferSyntaxUID") not in NATIVE_LITTLE_ENDIAN:
            return False
        bits = int(ds.get("BitsAllocated", 16) or 16)
        spp = int(ds.get("SamplesPerPixel", 1) or 1)
        return self.rows * self.columns * spp * max(1, bits // 8) <= CHEAP_FRAME_BYTES

    @property
    def window_ready(self) -> bool:
        """Whether `default_window` can be given without decoding (header window, or stats known)."""
        return bool(self.windows) or self.is_color or self._stats is not None

    @property
    def can_preview(self) -> bool:
        """Whether frames can be decoded at reduced resolution first (JPEG 2000 / HTJ2K greyscale)."""
        meta = getattr(self.dataset, "file_meta", None)
        syntax = meta.get("TransferSyntaxUID") if meta is not None else None
        spp = int(self.dataset.get("SamplesPerPixel", 1) or 1)
        return syntax is not None and not self.is_color and progressive.supports(syntax, spp)

    def preview(self, i: int, target: int) -> np.ndarray | None:
        """Frame `i` decoded at the reduced resolution that fits a `target`-pixel viewport, cached;
        None when the full frame is already decoded or the codec cannot reduce. Never raises for a
        codec problem: the full decode that follows reports it. A cached coarser preview (decoded for a
        smaller target first) is replaced by the finer one."""
        key = ("preview", i)
        with self._lock:
            if ("frame", i) in self._cache:
                return None
            cached = self._cache.get(key)
        if cached is not None and max(cached[0].shape) >= target / 2:  # progressive.level_for's rule
            return cached[0]
        if not self.can_preview:
            return None
        with self._decode_lock:
            try:
                arr, level = progressive.decode_reduced(self.dataset, i, self.n_frames, target)
            except progressive.ReducedDecodeError:
                return None
        if not arr.dtype.isnative:
            arr = arr.astype(arr.dtype.newbyteorder("="))
        arr.flags.writeable = False
        with self._lock:
            if ("frame", i) in self._cache:
                return None
            cached = self._cache.get(key)
            if cached is not None and cached[1] <= level:
                return cached[0]  # another thread decoded this level or a finer one meanwhile
            self._cache[key] = (arr, level)
        return arr

    def cached_preview(self, i: int = 0) -> np.ndarray | None:
        """The reduced-resolution pixels of frame `i` if a preview was decoded and the full frame is not."""
        with self._lock:
            if ("frame", i) in self._cache:
                return None
            cached = self._cache.get(("preview", i))
        return cached[0] if cached is not None else None

    def cached_reduced(self, i: int, out_shape: tuple[int, int]) -> bool:
        with self._lock:
            return ("reduced", i, (int(out_shape[0]), int(out_shape[1]))) in self._cache

    def cached_bytes(self) -> int:
        """Bytes of decoded pixels this image holds (the series cache keeps a budget on these)."""
        with self._lock:
            return sum((v[0] if isinstance(v, tuple) else v).nbytes for v in self._cache.values())

    def _remember(self, key: tuple[Any, ...], arr: np.ndarray) -> None:
        with self._lock:
            self._cache[key] = arr
            self._cache.move_to_end(key)
            while len(self._cache) > FRAME_CACHE_SIZE * 2:
                self._cache.popitem(last=False)

    def modality_frame(self, i: int = 0) -> np.ndarray:
        """Frame `i` in modality units (HU on CT) as float32; colour frames come back as luminance."""
        arr = self.frame(i)
        if self.is_color:
            rgb = arr.astype(np.float32)
            return rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        return self.modality_values(arr, i)

    def reduced_frame(self, i: int, out_shape: tuple[int, int]) -> np.ndarray:
        """Frame `i` resampled to `out_shape` (rows, cols): block-averaged when shrinking (no aliasing),
        nearest neighbour when enlarging. Cached, so a W/L change at display size costs a LUT lookup."""
        out_shape = (int(out_shape[0]), int(out_shape[1]))
        key = ("reduced", i, out_shape)
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
                return cached
        arr = resample(self.frame(i), out_shape)
        arr.flags.writeable = False
        self._remember(key, arr)
        return arr

    def __repr__(self) -> str:
        where = self.path.name if self.path else "memory"
        return f"DicomImage({where}, {self.modality or '?'} {self.rows}x{self.columns}x{self.n_frames}, {self.photometric})"


def resample(arr: np.ndarray, out_shape: tuple[int, int]) -> np.ndarray:
    """Resize the first two axes of `arr` to `out_shape` keeping its dtype (display-quality, fast)."""
    rows, cols = arr.shape[:2]
    out_r, out_c = out_shape
    if out_r <= 0 or out_c <= 0:
        raise ValueError(f"out_shape must be positive, got {out_shape}")
    if (rows, cols) == (out_r, out_c):
        return arr
    kr, kc = rows // out_r, cols // out_c
    if kr >= 2 and kc >= 2:
        # integer block mean first: averages away detail finer than a display pixel
        r2, c2 = (rows // kr) * kr, (cols // kc) * kc
        # sum of kr*kc strided views (far faster than reshape(...).sum(axis=(1, 3)) in numpy), in bands
        # of rows so the wide accumulator stays small next to a 3000x3000 frame
        acc_type = np.float32 if arr.dtype.kind == "f" else np.int64 if arr.dtype.itemsize > 2 else np.int32
        small = np.empty((r2 // kr, c2 // kc) + arr.shape[2:], dtype=arr.dtype)
        band = 128
        for r0 in range(0, small.shape[0], band):
            r1 = min(r0 + band, small.shape[0])
            acc = np.zeros((r1 - r0,) + small.shape[1:], dtype=acc_type)
            for dr in range(kr):
                for dc in range(kc):
                    acc += arr[r0 * kr + dr : r1 * kr : kr, dc:c2:kc]
            if arr.dtype.kind == "f":
                small[r0:r1] = acc / (kr * kc)
            else:
                small[r0:r1] = acc // (kr * kc)
        arr = small
        rows, cols = arr.shape[:2]
        if (rows, cols) == (out_r, out_c):
            return arr
    ri = ((np.arange(out_r) + 0.5) * rows / out_r).astype(np.intp)
    ci = ((np.arange(out_c) + 0.5) * cols / out_c).astype(np.intp)
    np.minimum(ri, rows - 1, out=ri)
    np.minimum(ci, cols - 1, out=ci)
    return np.take(np.take(arr, ri, axis=0), ci, axis=1)
