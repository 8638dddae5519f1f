"""Stored pixels -> display bytes: modality LUT, VOI LUT / window (DICOM PS3.3 C.11.2.1.2), MONOCHROME1
and user inversion, in one lookup table.

Every grey step of the pipeline is a function of the stored value alone, so it is folded into a table
over all possible stored values (256 or 65,536 entries, < 1 ms to build) and a frame is rendered with
one `np.take`. A W/L change therefore costs a table rebuild plus one lookup at display resolution.
"""

from __future__ import annotations

import numpy as np
from pydicom.pixels import apply_voi

from viewer.imaging.window import WindowLevel
from viewer.io.image import DicomImage

__all__ = [
    "apply_window", "lookup", "render_array", "render_frame", "render_pixels", "stored_value_table", "voi_lut_table",
]

LUT_CACHE_SIZE = 8


def apply_window(values: np.ndarray, window: WindowLevel) -> np.ndarray:
    """Map modality values through `window` to [0, 1] float32 (C.11.2.1.2.1 LINEAR, .3.1 LINEAR_EXACT,
    .3.2 SIGMOID)."""
    x = np.asarray(values, dtype=np.float64)
    c, w = float(window.center), float(window.width)
    if window.function == "SIGMOID":
        y = 1.0 / (1.0 + np.exp(-4.0 * (x - c) / max(w, 1e-12)))
    elif window.function == "LINEAR_EXACT":
        w = max(w, 1e-12)
        y = np.clip((x - c) / w + 0.5, 0.0, 1.0)
        y = np.where(x <= c - w / 2, 0.0, np.where(x > c + w / 2, 1.0, y))
    else:
        w = max(w, 1.0)
        if w == 1.0:  # degenerate width: a threshold at the center
            y = (x > c - 0.5).astype(np.float64)
        else:
            y = np.clip((x - (c - 0.5)) / (w - 1.0) + 0.5, 0.0, 1.0)
            y = np.where(x <= c - 0.5 - (w - 1.0) / 2, 0.0, np.where(x > c - 0.5 + (w - 1.0) / 2, 1.0, y))
    return y.astype(np.float32)


LOOKUP_CHUNK = 1 << 19  # pixels per np.take call: bounds its int64 index copy to 4 MiB


def lookup(lut: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    """`lut[pixels]` for unsigned integer `pixels`, done in row bands.

    np.take is the fastest lookup numpy has, but it first converts the whole index array to int64
    (8 bytes per pixel, 72 MB on a 3000x3000 frame); bands keep that transient small."""
    out = np.empty(pixels.shape + lut.shape[1:], dtype=lut.dtype)
    if pixels.size <= LOOKUP_CHUNK or pixels.ndim < 2:
        np.take(lut, pixels, out=out, axis=0)
        return out
    band = max(1, LOOKUP_CHUNK // max(1, pixels[0].size))
    for r0 in range(0, pixels.shape[0], band):
        np.take(lut, pixels[r0 : r0 + band], out=out[r0 : r0 + band], axis=0)
    return out


def _to_bytes(unit: np.ndarray, invert: bool) -> np.ndarray:
    y = np.rint(np.asarray(unit, dtype=np.float32) * 255.0)
    out = np.clip(y, 0, 255).astype(np.uint8)
    return (255 - out) if invert else out


def stored_value_table(itemsize: int, signed: bool) -> np.ndarray:
    """The stored value for every bit pattern of an `itemsize`-byte pixel, in bit-pattern order.

    Indexing the table by the unsigned view of a frame handles signed data without a subtraction.
    """
    n = 8 * itemsize
    patterns = np.arange(2**n, dtype=np.int64)
    if signed:
        patterns = np.where(patterns >= 2 ** (n - 1), patterns - 2**n, patterns)
    return patterns


def voi_lut_table(image: DicomImage, modality_values: np.ndarray) -> np.ndarray:
    """Apply the header's VOI LUT Sequence (first LUT) and normalise its output to [0, 1]."""
    ds = image.dataset
    item = ds.VOILUTSequence[0]
    values = np.asarray(modality_values)
    if values.dtype.kind == "f" and np.all(np.isfinite(values)) and np.array_equal(values, np.round(values)):
        values = values.astype(np.int64)  # the LUT is indexed by integers; avoids pydicom's float path
    out = np.asarray(apply_voi(values, ds, index=0), dtype=np.float64)
    bits = int(item.LUTDescriptor[2])
    top = float(2**bits - 1)
    data_max = float(np.max(np.asarray(item.LUTData))) if "LUTData" in item else top
    if 0 < data_max < top / 16:
        # a known vendor quirk: 16 declared bits holding 12-bit data; trust the data's range
        top = float(2 ** int(np.ceil(np.log2(data_max + 1))) - 1)
    return np.clip(out / top, 0.0, 1.0).astype(np.float32)


def _needs_inversion(image: DicomImage, invert: bool) -> bool:
    # PS3.3 C.8.11.6.1.2: MONOCHROME1 images carry Presentation LUT Shape INVERSE; both describe the
    # same single inversion, so either one inverts (never twice)
    shape = str(image.dataset.get("PresentationLUTShape", "") or "").strip().upper()
    inverse = image.is_monochrome1 or shape == "INVERSE"
    return inverse != bool(invert)


def _grey_lut(image: DicomImage, frame_index: int, window: WindowLevel | None, invert: bool, itemsize: int) -> np.ndarray:
    use_voi_seq = window is None and image.has_voi_lut_sequence
    if window is None and not use_voi_seq:
        window = image.default_window
    flip = _needs_inversion(image, invert)
    key = (
        itemsize,
        image.is_signed,
        image.rescale(frame_index) if not image.has_modality_lut_sequence else ("seq", frame_index),
        window,
        use_voi_seq,
        flip,
    )
    cache: dict = image.__dict__.setdefault("_lut_cache", {})
    lut = cache.get(key)
    if lut is not None:
        return lut
    stored = stored_value_table(itemsize, image.is_signed)
    if image.has_modality_lut_sequence:
        # pydicom clips indices into the LUT itself; int arrays of the right kind are required
        stored_in = stored.astype(np.int32 if image.is_signed else np.uint32)
        values = image.modality_values(stored_in, frame_index)
    else:
        values = image.modality_values(stored, frame_index)
    unit = voi_lut_table(image, values) if use_voi_seq else apply_window(values, window)  # type: ignore[arg-type]
    lut = _to_bytes(unit, flip)
    if len(cache) >= LUT_CACHE_SIZE:
        cache.pop(next(iter(cache)))
    cache[key] = lut
    return lut


def render_frame(
    image: DicomImage,
    frame_index: int,
    window: WindowLevel | None,
    invert: bool = False,
    out_shape: tuple[int, int] | None = None,
) -> np.ndarray:
    """Display bytes for one frame: uint8 HxW (grey) or HxWx3 (colour).

    `window=None` means "as the header says": the VOI LUT Sequence if present, else the header's first
    window, else an automatic one. `out_shape` (rows, cols) renders at display size: the frame is
    resampled once (cached) and each W/L change is a lookup over only the displayed pixels.
    """
    pixels = image.reduced_frame(frame_index, out_shape) if out_shape is not None else image.frame(frame_index)
    return render_pixels(image, frame_index, pixels, window, invert)


def render_pixels(
    image: DicomImage, frame_index: int, pixels: np.ndarray, window: WindowLevel | None, invert: bool = False
) -> np.ndarray:
    """Display bytes for stored `pixels` of `image`'s frame at any resolution (a reduced-resolution
    preview, a display-size resample, or the frame itself), through the same tables as `render_frame`."""
    if image.is_color:
        return (255 - pixels) if invert else pixels
    if pixels.dtype.kind in "ui" and pixels.dtype.itemsize <= 2:
        lut = _grey_lut(image, frame_index, window, invert, pixels.dtype.itemsize)
        unsigned = pixels.view(np.uint8 if pixels.dtype.itemsize == 1 else np.uint16)
        return lookup(lut, unsigned)
    # 32-bit integer or float pixel data (e.g. RT dose, parametric maps): compute directly
    values = image.modality_values(pixels, frame_index)
    if window is None and image.has_voi_lut_sequence:
        unit = voi_lut_table(image, values)
    else:
        unit = apply_window(values, window or image.default_window)
    return _to_bytes(unit, _needs_inversion(image, invert))


def render_array(values: np.ndarray, window: WindowLevel, invert: bool = False) -> np.ndarray:
    """Display bytes for an array already in modality units (an MPR slice of an HU volume).

    int16/uint16/uint8 arrays go through a lookup table like `render_frame`; others are computed."""
    arr = np.asarray(values)
    if arr.dtype.kind in "ui" and arr.dtype.itemsize <= 2:
        stored = stored_value_table(arr.dtype.itemsize, arr.dtype.kind == "i")
        lut = _to_bytes(apply_window(stored, window), invert)
        return lookup(lut, arr.view(np.uint8 if arr.dtype.itemsize == 1 else np.uint16))
    return _to_bytes(apply_window(arr, window), invert)
