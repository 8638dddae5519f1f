"""Reduced-resolution decoding of JPEG 2000 and HTJ2K frames: a first image in a fraction of a decode.

A JPEG 2000 codestream is a wavelet pyramid: dropping the k finest resolution levels decodes an image
2^k times smaller in each direction for roughly 4^-k of the work. The viewer decodes the level that
fits its viewport first and refines to full resolution in the background (OHIF does the same with
HTJ2K). HTJ2K goes through OpenJPH's `skipres` (imagecodecs); JPEG 2000 through OpenJPEG's reduce
factor (glymur, whose ctypes calls release the GIL, unlike Pillow's and pylibjpeg's decoders).
Only single-sample (greyscale) frames are reduced; the caller falls back to a full decode otherwise.
"""

from __future__ import annotations

import contextlib
import math
import mmap
import os
import struct
import tempfile
from collections.abc import Iterator

import numpy as np
from pydicom import uid
from pydicom.encaps import get_frame
from pydicom.pixels.utils import get_j2k_parameters

__all__ = ["ReducedDecodeError", "decode_reduced", "decomposition_levels", "level_for", "supports"]

J2K_SYNTAXES = (uid.JPEG2000Lossless, uid.JPEG2000)
HTJ2K_SYNTAXES = (uid.HTJ2KLossless, uid.HTJ2KLosslessRPCL, uid.HTJ2K)
_TMP_DIR = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None


class ReducedDecodeError(ValueError):
    """The frame cannot be decoded at reduced resolution (the caller decodes it in full instead)."""


def _codecs_available(syntax: str) -> bool:
    try:
        if syntax in HTJ2K_SYNTAXES:
            import imagecodecs

            return bool(imagecodecs.HTJ2K.available)
        if syntax in J2K_SYNTAXES:
            import glymur

            return glymur.lib.openjp2.OPENJP2 is not None
    except Exception:  # noqa: BLE001 - a missing or broken library just means no reduced decode
        return False
    return False


_AVAILABLE: dict[str, bool] = {}


def supports(syntax: str, samples_per_pixel: int = 1) -> bool:
    """Whether frames of this transfer syntax can be decoded at reduced resolution here."""
    if samples_per_pixel != 1 or syntax not in (*J2K_SYNTAXES, *HTJ2K_SYNTAXES):
        return False
    if syntax not in _AVAILABLE:
        _AVAILABLE[syntax] = _codecs_available(syntax)
    return _AVAILABLE[syntax]


def decomposition_levels(codestream: bytes) -> int:
    """Number of wavelet decomposition levels in the main header's COD segment (0 if not found)."""
    start = codestream.find(b"\xff\x4f\xff\x51")  # SOC then SIZ: skips a JP2 wrapper if there is one
    if start < 0:
        return 0
    pos = start + 2
    while pos + 4 <= len(codestream):
        marker, length = struct.unpack(">HH", codestream[pos : pos + 4])
        if marker == 0xFF52:  # COD: Lcod, Scod, SGcod (4 bytes), then SPcod starting with the level count
            return codestream[pos + 9] if pos + 9 < len(codestream) else 0
        if marker in (0xFF90, 0xFF93, 0xFFD9) or length < 2:  # SOT/SOD/EOC: main header ended
            return 0
        pos += 2 + length
    return 0


def level_for(rows: int, columns: int, target: int, levels: int) -> int:
    """The most levels to drop while the image keeps at least half of `target` pixels on its long side
    (so the first image is at most 2x enlarged on the viewport)."""
    long_side = max(rows, columns)
    level = 0
    while level < levels and math.ceil(long_side / 2 ** (level + 1)) >= target / 2:
        level += 1
    return level


def _to_stored(arr: np.ndarray, codestream: bytes, bits_allocated: int, signed: bool) -> np.ndarray:
    """Decoded samples -> the container pydicom would give for this dataset (same dtype and sign)."""
    target = np.dtype(f"{'i' if signed else 'u'}{max(1, bits_allocated // 8)}")
    info = get_j2k_parameters(codestream)
    precision = int(info.get("precision", bits_allocated))
    j2k_signed = bool(info.get("is_signed", signed))
    out = arr.view(target) if arr.dtype.itemsize == target.itemsize else arr.astype(target)
    shift = 8 * target.itemsize - precision
    if shift and j2k_signed != signed:  # as pydicom: the codestream and Pixel Representation disagree
        out = np.left_shift(out, shift)
        np.right_shift(out, shift, out=out)
    return np.ascontiguousarray(out)


def decode_reduced(ds, index: int, n_frames: int, target: int) -> tuple[np.ndarray, int]:
    """Frame `index` of `ds` decoded at the resolution level that fits a `target`-pixel viewport.

    Returns (stored values, level dropped); raises ReducedDecodeError when that is not possible."""
    syntax = ds.file_meta.TransferSyntaxUID
    if not supports(syntax, int(ds.get("SamplesPerPixel", 1) or 1)):
        raise ReducedDecodeError(f"no reduced-resolution decoder for {syntax.name}")
    bits = int(ds.get("BitsAllocated", 16) or 16)
    if bits not in (8, 16):
        raise ReducedDecodeError(f"{bits}-bit pixels")
    with _mapped_codestream(ds, n_frames) as mapped:
        if mapped is not None:
            return _decode_reduced(ds, syntax, bits, mapped, target)
    try:
        codestream = bytes(get_frame(ds.PixelData, index, number_of_frames=n_frames))
    except Exception as exc:  # noqa: BLE001 - a broken fragment table: the full decode reports it
        raise ReducedDecodeError(f"frame {index}: {exc}") from exc
    return _decode_reduced(ds, syntax, bits, codestream, target)


_ITEM = b"\xfe\xff\x00\xe0"  # (FFFE,E000) little endian
_SEQUENCE_END = b"\xfe\xff\xdd\xe0"  # (FFFE,E0DD)


@contextlib.contextmanager
def _mapped_codestream(ds, n_frames: int) -> Iterator[memoryview | None]:
    """The codestream of a single-frame, single-fragment image still on disk (Pixel Data not read yet),
    as a view of the memory-mapped file: the coarse first level reads a small part of it instead of
    copying the whole element (9 MB for a 3000^2 lossless CR) first. None for anything else."""
    raw = ds.get_item(0x7FE00010, keep_deferred=True) if n_frames == 1 else None
    filename = getattr(ds, "filename", None)
    if raw is None or getattr(raw, "value", b"") is not None or not isinstance(filename, str) \
            or not raw.is_little_endian:
        yield None
        return
    try:
        fh = open(filename, "rb")  # noqa: SIM115 - closed below, after the map
    except OSError:
        yield None
        return
    with fh:
        try:
            mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        except (OSError, ValueError):
            yield None
            return
        view = memoryview(mm)
        fragment = _single_fragment(view, raw.value_tell)
        try:
            yield fragment
        finally:
            if fragment is not None:
                fragment.release()
            view.release()
            try:
                mm.close()
            except BufferError:  # a view still held somewhere: the map closes when that goes
                pass


def _single_fragment(view: memoryview, pos: int) -> memoryview | None:
    """Encapsulated Pixel Data at `pos`: the one fragment after the offset table, else None."""
    end = len(view)
    if pos + 8 > end or view[pos : pos + 4] != _ITEM:
        return None
    pos += 8 + int.from_bytes(view[pos + 4 : pos + 8], "little")  # past the basic offset table
    if pos + 8 > end or view[pos : pos + 4] != _ITEM:
        return None
    length = int.from_bytes(view[pos + 4 : pos + 8], "little")
    start, stop = pos + 8, pos + 8 + length
    if stop + 8 > end or view[stop : stop + 4] != _SEQUENCE_END:
        return None  # several fragments, or not what the header said: pydicom's reader handles it
    return view[start:stop]


def _decode_reduced(ds, syntax: str, bits: int, codestream: bytes | memoryview, target: int) -> tuple[np.ndarray, int]:
    head = bytes(codestream[:65536])  # main header (markers are searched in bytes)
    levels = decomposition_levels(head)
    level = level_for(int(ds.Rows), int(ds.Columns), target, levels)
    if level == 0:
        raise ReducedDecodeError("the full resolution already fits the viewport")
    try:
        if syntax in HTJ2K_SYNTAXES:
            import imagecodecs

            from viewer.io.imagecodecs_plugin import check_complete

            check_complete(head + bytes(codestream[-3:]) if len(codestream) > len(head) else bytes(codestream))
            arr = imagecodecs.htj2k_decode(codestream, skipres=level)
        else:
            import glymur

            with tempfile.NamedTemporaryFile(suffix=".j2k", dir=_TMP_DIR) as fh:
                fh.write(codestream)
                fh.flush()
                step = 2**level
                arr = glymur.Jp2k(fh.name)[::step, ::step]
    except Exception as exc:  # noqa: BLE001 - any codec failure falls back to the full decode
        raise ReducedDecodeError(f"{type(exc).__name__}: {exc}") from exc
    if arr.ndim != 2:
        raise ReducedDecodeError(f"decoded shape {arr.shape}")
    signed = int(ds.get("PixelRepresentation", 0) or 0) == 1
    return _to_stored(arr, head, bits, signed), level
