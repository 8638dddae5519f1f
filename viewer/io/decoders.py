"""Which pydicom decoder plugin decodes each compressed transfer syntax: measured, not assumed.

pydicom tries its plugins in a fixed order (gdcm first), which is neither the fastest (gdcm decodes
JPEG-LS about 2x slower than pyjpegls; OpenJPH decodes HTJ2K about 4x faster than OpenJPEG) nor safe for
a viewer: pylibjpeg-openjpeg and gdcm hold the GIL for a whole decode, so a 3000x3000 JPEG 2000 frame
decoded on a worker thread still freezes the GUI for seconds. `rank_plugins` encodes a test frame,
decodes it through every available plugin, checks the pixels, times it and measures how long a ticking
thread was starved meanwhile (the GIL hold); `preferred_plugin` picks the fastest plugin that lets other
threads run, and the choice is made once per process on first use. `radstation selfcheck` prints it.
"""

from __future__ import annotations

import statistics
import threading
import time
from dataclasses import dataclass

import numpy as np
from pydicom import uid
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.pixels import get_decoder

__all__ = ["PluginTiming", "ensure_registered", "preferred_plugin", "rank_plugins", "ranked_syntaxes"]

PLUGIN = "imagecodecs"
SAMPLE_SIZE = 512  # big enough that a GIL hold stands out from scheduler jitter on a busy machine
# A plugin "holds the GIL" when a 1 ms ticker is starved for most of a decode that takes long enough
# to tell a hold from scheduling noise.
GIL_HELD_SHARE = 0.7
GIL_MIN_DECODE_S = 0.003
# Plugins this close in speed count as equally fast; the one that starves other threads less wins.
SPEED_TIE = 1.15

ranked_syntaxes: tuple[str, ...] = (
    uid.JPEG2000Lossless,
    uid.JPEG2000,
    uid.HTJ2KLossless,
    uid.HTJ2KLosslessRPCL,
    uid.HTJ2K,
    uid.JPEGLSLossless,
    uid.JPEGLSNearLossless,
)

_registered = False
_lock = threading.Lock()
_choice: dict[str, str] = {}
_rankings: dict[str, list[PluginTiming]] = {}


@dataclass(frozen=True)
class PluginTiming:
    """One plugin on one transfer syntax: median decode seconds of the sample frame, the longest time
    a ticking thread waited meanwhile, and whether its pixels were right ('' or the reason)."""

    syntax: str
    plugin: str
    seconds: float
    stall_s: float
    error: str = ""

    @property
    def holds_gil(self) -> bool:
        return self.seconds >= GIL_MIN_DECODE_S and self.stall_s >= GIL_HELD_SHARE * self.seconds

    @property
    def ok(self) -> bool:
        return not self.error


def ensure_registered() -> None:
    """Add the imagecodecs plugin to pydicom's decoders (once; a no-op when imagecodecs is absent)."""
    global _registered
    with _lock:
        if _registered:
            return
        _registered = True
        from viewer.io import imagecodecs_plugin

        for ts in imagecodecs_plugin.DECODER_DEPENDENCIES:
            decoder = get_decoder(ts)
            if PLUGIN not in decoder.available_plugins and PLUGIN not in getattr(decoder, "_unavailable", {}):
                decoder.add_plugin(PLUGIN, ("viewer.io.imagecodecs_plugin", "_decode_frame"))


def _sample_pixels() -> np.ndarray:
    """A 12-bit CT-like frame with edges and noise, so entropy coding has real work to do."""
    yy, xx = np.mgrid[:SAMPLE_SIZE, :SAMPLE_SIZE].astype(np.float32) / SAMPLE_SIZE
    img = 1024 + 800 * np.sin(9 * xx) * np.cos(7 * yy) + 600 * ((xx - 0.5) ** 2 + (yy - 0.5) ** 2 < 0.1)
    img += np.random.default_rng(7).normal(0, 25, img.shape)
    return np.clip(img, 0, 4095).astype(np.uint16)


def _encode(syntax: str, pixels: np.ndarray) -> Dataset | None:
    """A dataset holding `pixels` compressed with `syntax`, or None when nothing installed encodes it."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = uid.ExplicitVRLittleEndian
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = pixels.tobytes()
    try:
        if syntax in (uid.HTJ2KLossless, uid.HTJ2KLosslessRPCL, uid.HTJ2K):
            import imagecodecs

            stream = imagecodecs.htj2k_encode(pixels, reversible=True)
            ds.PixelData = encapsulate([stream])
            ds["PixelData"].VR = "OB"
            ds.file_meta.TransferSyntaxUID = syntax
        else:
            lossy = syntax in (uid.JPEG2000, uid.JPEGLSNearLossless)
            kwargs = {"j2k_cr": [5]} if syntax == uid.JPEG2000 else {"jls_error": 2} if lossy else {}
            ds.compress(syntax, encoding_plugin="", **kwargs)
    except Exception:  # noqa: BLE001 - no encoder installed for this syntax: it cannot be measured
        return None
    return ds


class StallMeter:
    """The longest time a thread that wakes every millisecond had to wait while the block ran: how
    long other Python threads (the GUI's) were kept from running by the work in the block."""

    def __init__(self) -> None:
        self.longest = 0.0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._tick, daemon=True)

    def _tick(self) -> None:
        last = time.perf_counter()
        while not self._done.is_set():
            time.sleep(0.0005)
            now = time.perf_counter()
            self.longest = max(self.longest, now - last)
            last = now

    def __enter__(self) -> StallMeter:
        self._thread.start()
        time.sleep(0.003)
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()


def _timed_decode(ds: Dataset, syntax: str, plugin: str, repeats: int) -> tuple[np.ndarray, float, float]:
    decoder = get_decoder(syntax)
    arr = decoder.as_array(ds, decoding_plugin=plugin)[0]  # warm-up (imports, first-call costs)
    times, stall = [], 0.0
    for _ in range(repeats):
        with StallMeter() as meter:
            t0 = time.perf_counter()
            decoder.as_array(ds, decoding_plugin=plugin)
            times.append(time.perf_counter() - t0)
        stall = max(stall, meter.longest)
    return arr, statistics.median(times), stall


def rank_plugins(syntax: str, repeats: int = 3) -> list[PluginTiming]:
    """Every available plugin for `syntax`, fastest correct first; [] when no encoder makes a sample."""
    ensure_registered()
    pixels = _sample_pixels()
    ds = _encode(syntax, pixels)
    if ds is None:
        return []
    lossless = syntax not in (uid.JPEG2000, uid.JPEGLSNearLossless)
    out: list[PluginTiming] = []
    for plugin in sorted(get_decoder(syntax).available_plugins):
        try:
            arr, seconds, stall = _timed_decode(ds, syntax, plugin, repeats)
        except Exception as exc:  # noqa: BLE001 - a broken plugin is reported, never chosen
            out.append(PluginTiming(syntax, plugin, float("inf"), 0.0, f"{type(exc).__name__}: {exc}"))
            continue
        error = ""
        if arr.shape != pixels.shape:
            error = f"shape {arr.shape}"
        elif lossless and not np.array_equal(arr, pixels):
            error = "wrong pixels"
        elif not lossless and float(np.abs(arr.astype(np.int32) - pixels).mean()) > 20:
            error = "pixels too far from the original"
        out.append(PluginTiming(syntax, plugin, seconds, stall, error))
    out.sort(key=lambda t: (not t.ok, t.seconds))
    return out


def choose(timings: list[PluginTiming]) -> str:
    """The fastest correct plugin that lets other threads run; else the fastest correct one; else ''."""
    good = [t for t in timings if t.ok]
    pool = [t for t in good if not t.holds_gil] or good
    if not pool:
        return ""
    fastest = min(t.seconds for t in pool)
    tied = [t for t in pool if t.seconds <= fastest * SPEED_TIE]
    return min(tied, key=lambda t: (t.stall_s / max(t.seconds, 1e-9), t.seconds)).plugin


def preferred_plugin(syntax: str) -> str:
    """The plugin to decode `syntax` with ('' = pydicom's own order). Measured once per process."""
    if syntax not in ranked_syntaxes:
        return ""
    with _lock:
        if syntax in _choice:
            return _choice[syntax]
    timings = rank_plugins(syntax)
    plugin = choose(timings)
    with _lock:
        _rankings[syntax] = timings
        _choice[syntax] = plugin
    return plugin


def measured() -> dict[str, list[PluginTiming]]:
    """The rankings measured so far in this process (by `preferred_plugin` or `rank_plugins`)."""
    with _lock:
        return dict(_rankings)
