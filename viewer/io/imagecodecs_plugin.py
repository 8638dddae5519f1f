"""A pydicom decoder plugin backed by imagecodecs (OpenJPEG, OpenJPH, CharLS).

pydicom 3 ships no imagecodecs plugin. Registered by `viewer.io.decoders`, it competes with gdcm,
pylibjpeg and pyjpegls per transfer syntax; it matters because its decoders release the GIL (a decode
on a worker thread does not freeze the GUI) and OpenJPH decodes HTJ2K several times faster than
OpenJPEG. pydicom's runner does the rest (sign correction, colour space), as for its own plugins.
"""

from __future__ import annotations

from pydicom import uid
from pydicom.pixels.decoders.base import DecodeRunner

try:
    import imagecodecs
except ImportError:  # optional: without it the other plugins decode
    imagecodecs = None

_J2K = (uid.JPEG2000Lossless, uid.JPEG2000)
_HTJ2K = (uid.HTJ2KLossless, uid.HTJ2KLosslessRPCL, uid.HTJ2K)
_JPEGLS = (uid.JPEGLSLossless, uid.JPEGLSNearLossless)

DECODER_DEPENDENCIES = {ts: ("numpy", "imagecodecs>=2023.1") for ts in (*_J2K, *_HTJ2K, *_JPEGLS)}


def is_available(transfer_syntax: str) -> bool:
    """True when imagecodecs imports and was built with the codec this syntax needs."""
    if imagecodecs is None:
        return False
    if transfer_syntax in _J2K:
        return bool(imagecodecs.JPEG2K.available)
    if transfer_syntax in _HTJ2K:
        return bool(imagecodecs.HTJ2K.available)
    if transfer_syntax in _JPEGLS:
        return bool(imagecodecs.JPEGLS.available)
    return False


def check_complete(codestream: bytes) -> None:
    """Raise ValueError unless `codestream` starts with SOC and ends with EOC (DICOM may pad one byte).

    OpenJPH reports a truncated stream only as an "ignored exception" and returns whatever it decoded,
    so a cut-off file would show as a plausible image; this check makes it an error instead."""
    tail = codestream[-3:]
    if not codestream.startswith(b"\xff\x4f") or not (tail.endswith(b"\xff\xd9") or tail[:2] == b"\xff\xd9"):
        raise ValueError("incomplete HTJ2K codestream (no start or end marker): the file is truncated or damaged")


def _decode_frame(src: bytes, runner: DecodeRunner) -> bytes:
    """One frame's codestream -> pixel bytes (colour by pixel), with the container size it used."""
    ts = runner.transfer_syntax
    if ts in _HTJ2K:
        check_complete(src)
        arr = imagecodecs.htj2k_decode(src)
    elif ts in _J2K:
        arr = imagecodecs.jpeg2k_decode(src)
    else:
        arr = imagecodecs.jpegls_decode(src)
    if arr.ndim == 3:
        runner.set_option("planar_configuration", 0)  # imagecodecs returns samples interleaved
        if ts in (*_J2K, *_HTJ2K) and runner.photometric_interpretation in ("YBR_ICT", "YBR_RCT"):
            runner.set_option("photometric_interpretation", "RGB")  # the codec undid the component transform
    runner.set_option("bits_allocated", 8 * arr.dtype.itemsize)
    return arr.tobytes()
