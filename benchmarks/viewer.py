"""Viewer speed and memory on a generated 512x512x600 CT series and a 3000x3000 16-bit CR.

Prints a table (median over repeats, device, sizes) and checks the targets of issue 2:
first image < 0.3 s, whole CT series loaded < 3 s, scrolling and W/L < 16 ms per frame,
peak memory < 2x the pixel data. Then (issue 27) compressed images in a real Viewport (offscreen Qt):
"first image" of a JPEG 2000 and an HTJ2K CR on a 1024-pixel viewport against a full-resolution
decode of the same file (target ratio <= 0.2), and "gui stall", the longest event-loop gap while
that image loads and while a compressed CT series is scrolled (target <= 0.1 s).

    .venv/bin/python benchmarks/viewer.py            # full size (writes ~320 MB to a temp dir)
    .venv/bin/python benchmarks/viewer.py --slices 60 --cr 1000   # quick smoke run
    .venv/bin/python benchmarks/viewer.py --compressed-only --json out.json   # issue 27 rows only
"""

from __future__ import annotations

import argparse
import gc
import json
import multiprocessing
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import psutil
import pydicom

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from viewer.imaging.render import render_array, render_frame  # noqa: E402
from viewer.imaging.window import PRESETS, WindowLevel  # noqa: E402
from viewer.io.image import load_image, resample  # noqa: E402
from viewer.io.writer import StudyInfo, ct_slice_dataset, save, uid_from  # noqa: E402
from viewer.volume import load_volume  # noqa: E402

CR_STORAGE = "1.2.840.10008.5.1.4.1.1.1"
DISPLAY = (1024, 1024)


# ------------------------------------------------------------------------------------------ data
def write_ct(folder: Path, n: int, size: int) -> list[Path]:
    """A CT series: one chest-like base slice shifted per slice, stored 12-bit with intercept -1024."""
    yy, xx = np.mgrid[:size, :size].astype(np.float32) / size
    body = ((yy - 0.5) / 0.38) ** 2 + ((xx - 0.5) / 0.45) ** 2 <= 1
    lungs = (((yy - 0.48) / 0.25) ** 2 + ((np.abs(xx - 0.5) - 0.19) / 0.13) ** 2) <= 1
    base = np.where(body, 1064, 24).astype(np.int32)
    base[lungs & body] = 174
    rng = np.random.default_rng(0)
    base = np.clip(base + rng.normal(0, 15, base.shape), 0, 4095).astype(np.uint16)
    study = StudyInfo(uid_from("bench", "study"), patient_name="BENCH^CT")
    series, frame = uid_from("bench", "series"), uid_from("bench", "for")
    paths = []
    for k in range(n):
        pixels = np.roll(base, k % 17, axis=1)
        ds = ct_slice_dataset(
            pixels,
            study=study,
            series_uid=series,
            sop_uid=uid_from("bench", "sop", k),
            frame_of_reference_uid=frame,
            instance_number=k + 1,
            position=(-250.0, -250.0, -k * 0.625),
            pixel_spacing=(500.0 / size, 500.0 / size),
            slice_thickness=0.625,
        )
        paths.append(save(ds, folder / f"ct_{k:04d}.dcm"))
    return paths


def write_cr(folder: Path, size: int) -> Path:
    yy, xx = np.mgrid[:size, :size].astype(np.float32) / size
    img = 2000 + 1500 * np.sin(6 * xx) * np.cos(4 * yy)
    img += np.random.default_rng(1).normal(0, 40, img.shape)
    pixels = np.clip(img, 0, 4095).astype(np.uint16)
    study = StudyInfo(uid_from("bench", "cr-study"), patient_name="BENCH^CR")
    ds = ct_slice_dataset(  # reuse the writer's patient/study/pixel modules, then make it a CR
        pixels,
        study=study,
        series_uid=uid_from("bench", "cr-series"),
        sop_uid=uid_from("bench", "cr"),
        frame_of_reference_uid=uid_from("bench", "cr-for"),
        instance_number=1,
        position=(0, 0, 0),
        window=(2048.0, 4096.0),
    )
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = CR_STORAGE
    ds.Modality = "CR"
    ds.PhotometricInterpretation = "MONOCHROME1"
    for kw in ("ImagePositionPatient", "ImageOrientationPatient", "SliceLocation", "PixelSpacing", "RescaleType"):
        delattr(ds, kw)
    ds.RescaleIntercept, ds.RescaleSlope = "0", "1"
    ds.ImagerPixelSpacing = ["0.139", "0.139"]
    return save(ds, folder / "cr.dcm")


# ------------------------------------------------------------------------------------------ measuring
class PeakRSS:
    """Samples this process's RSS every 2 ms in a thread; `.peak_delta` is the max rise in bytes."""

    def __init__(self) -> None:
        self.proc = psutil.Process()
        self.base = 0
        self.peak = 0
        self._stop = threading.Event()

    def __enter__(self) -> PeakRSS:
        gc.collect()
        self.base = self.peak = self.proc.memory_info().rss
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(0.002)

    def __exit__(self, *exc: object) -> None:
        self.peak = max(self.peak, self.proc.memory_info().rss)
        self._stop.set()
        self._thread.join()

    @property
    def peak_delta(self) -> int:
        return self.peak - self.base


def _load_peak(paths: list[Path]) -> tuple[float, int]:
    """Runs in a fresh process: (seconds, peak RSS rise) of loading the series into a volume."""
    with PeakRSS() as mem:
        t0 = time.perf_counter()
        vol = load_volume(paths)
        seconds = time.perf_counter() - t0
    assert not vol.warnings, vol.warnings
    return seconds, mem.peak_delta


def _cr_peak(path: Path, warm_path: Path) -> tuple[int, int]:
    """Runs in a fresh process: peak RSS rise of opening the CR and rendering it at display size, and
    the rise once a native-resolution render (a further uint8 copy, 0.5x) is added.

    A small CT slice is rendered first so that one-off module imports are not counted as pixel memory."""
    render_frame(load_image(warm_path), 0, None, out_shape=DISPLAY)
    with PeakRSS() as mem:
        image = load_image(path)
        render_frame(image, 0, None, out_shape=DISPLAY)
    display_peak = mem.peak_delta
    with PeakRSS() as more:
        render_frame(image, 0, None)
    return display_peak, display_peak + more.peak_delta


def in_fresh_process(fn: Callable, *args: object):  # noqa: ANN201
    """Memory is measured in a new process: freed memory kept by the allocator would hide the rise."""
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()


def median_time(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def device() -> str:
    model = platform.processor() or "unknown CPU"
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = psutil.virtual_memory().total / 2**30
    return f"{model}, {os.cpu_count()} logical cores, {mem:.0f} GiB RAM, Python {platform.python_version()}, numpy {np.__version__}, pydicom {pydicom.__version__}"


# ------------------------------------------------------------------------------------------ compressed (issue 27)
def write_compressed_cr(folder: Path, size: int, syntax: str) -> Path:
    """The benchmark CR encoded with `syntax` (JPEG 2000 through pydicom's encoder, HTJ2K through OpenJPH)."""
    from pydicom import uid
    from pydicom.encaps import encapsulate

    ds = pydicom.dcmread(write_cr(folder, size))
    if syntax in (uid.HTJ2KLossless, uid.HTJ2KLosslessRPCL, uid.HTJ2K):
        import imagecodecs

        ds.PixelData = encapsulate([imagecodecs.htj2k_encode(ds.pixel_array, reversible=True)])
        ds["PixelData"].VR = "OB"
        ds.file_meta.TransferSyntaxUID = syntax
    else:
        ds.compress(syntax, encoding_plugin="")
    name = f"cr_{uid.UID(syntax).keyword}.dcm"
    ds.save_as(folder / name, enforce_file_format=True)
    return folder / name


def write_compressed_ct(folder: Path, n: int, size: int, syntax: str) -> list[Path]:
    paths = write_ct(folder, n, size)
    for p in paths:
        ds = pydicom.dcmread(p)
        ds.compress(syntax, encoding_plugin="")
        ds.save_as(p, enforce_file_format=True)
    return paths


class EventLoopGaps:
    """Longest gap between runs of a 0 ms QTimer on the GUI thread: how long the GUI could not react."""

    def __init__(self) -> None:
        from PySide6.QtCore import QTimer

        self.longest = 0.0
        self._last = time.perf_counter()
        self._timer = QTimer()
        self._timer.setInterval(0)
        self._timer.timeout.connect(self._tick)

    def _tick(self) -> None:
        now = time.perf_counter()
        self.longest = max(self.longest, now - self._last)
        self._last = now

    def start(self) -> None:
        self.longest, self._last = 0.0, time.perf_counter()
        self._timer.start()

    def stop(self) -> float:
        self._tick()
        self._timer.stop()
        return self.longest


def _viewport(size: int):  # noqa: ANN202
    from viewer.widgets.viewport import Viewport

    vp = Viewport()
    vp.resize(size, size)
    vp.show()
    return vp


def first_image_rows(path: Path, label: str, repeats: int) -> list[dict]:
    """Time until a fresh Viewport of 1024 px has painted `path` (any quality), its longest event-loop
    gap until the full image is in, and the floor: a full-resolution decode of the file, fastest plugin."""
    from PySide6.QtWidgets import QApplication

    from viewer.io.refs import SeriesRef

    app = QApplication.instance()
    load_image(path).frame(0)  # warm-up: plugin choice measured once per process, codec libraries loaded
    floor = median_time(lambda: load_image(path).frame(0), repeats)
    firsts, halves, stalls = [], [], []
    for _ in range(repeats):
        vp = _viewport(DISPLAY[0])
        shown: list[tuple[str, float]] = []
        vp.imageShown.connect(lambda q, shown=shown: shown.append((q, time.perf_counter())))
        gaps = EventLoopGaps()
        gaps.start()
        t0 = time.perf_counter()
        vp.set_series(SeriesRef("bench", "CR", label, 1, (path,)))
        while not any(q == "full" for q, _ in shown):
            app.processEvents()
            time.sleep(0.001)
            if time.perf_counter() - t0 > 120:
                raise RuntimeError(f"{label}: the image did not arrive within 120 s")
        stalls.append(gaps.stop())
        firsts.append(shown[0][1] - t0)
        # the last preview before the full image: the one at >= half the viewport's resolution
        halves.append([t for q, t in shown if q == "preview"][-1:][0] - t0 if shown[0][0] == "preview"
                      else shown[0][1] - t0)
        vp.close()
        vp.deleteLater()
        app.processEvents()
    first = statistics.median(firsts)
    half = statistics.median(halves)
    return [
        {"case": label, "measure": "first image", "product_s": first, "floor_s": floor, "ratio": first / floor},
        {"case": label, "measure": "image at >= half the viewport's resolution", "product_s": half, "floor_s": floor,
         "ratio": half / floor},
        {"case": label, "measure": "gui stall (loading)", "product_s": max(stalls), "floor_s": floor,
         "ratio": max(stalls) / floor},
    ]


def scroll_rows(paths: list[Path], label: str, steps_per_s: float = 25.0) -> list[dict]:
    """Scroll a compressed series in a Viewport at `steps_per_s` (a wheel held down) and report the
    longest event-loop gap, against the floor of decoding one slice (what a GUI-thread decode stalls)."""
    from PySide6.QtWidgets import QApplication

    from viewer.io.refs import SeriesRef

    app = QApplication.instance()
    floor = median_time(lambda: load_image(paths[len(paths) // 2]).frame(0), 5)
    vp = _viewport(512)
    vp.set_series(SeriesRef("bench-ct", "CT", label, 1, tuple(paths)))
    while vp.is_loading() or vp.current_image() is None:
        app.processEvents()
        time.sleep(0.001)
    shown: list[str] = []
    stepped: dict[int, tuple[object, float]] = {}  # id(image) -> (image, when the step to it was made)
    latencies: list[float] = []

    def painted(quality: str) -> None:
        shown.append(quality)
        img = vp.current_image()
        if quality == "full" and id(img) in stepped and stepped[id(img)][0] is img:
            latencies.append(time.perf_counter() - stepped.pop(id(img))[1])

    vp.imageShown.connect(painted)
    gaps = EventLoopGaps()
    gaps.start()
    t0 = time.perf_counter()
    for k in range(1, len(paths)):
        due = t0 + k / steps_per_s
        while time.perf_counter() < due:
            app.processEvents()
            time.sleep(0.0005)
        stepped.clear()  # a slice scrolled past before it was painted does not count
        vp.step(1)
        if vp.current_image() is not None:
            stepped[id(vp.current_image())] = (vp.current_image(), time.perf_counter())
    while vp._shown is None or vp._shown[:3] != (vp.current_image(), vp.state.frame_index, "full"):
        app.processEvents()  # until the last slice is painted
        time.sleep(0.001)
    stall = gaps.stop()
    full = sum(q == "full" for q in shown)
    vp.close()
    latency = statistics.median(latencies) if latencies else float("nan")
    return [{"case": label, "measure": f"gui stall (scroll {steps_per_s:g}/s, {full}/{len(paths) - 1} slices shown)",
             "product_s": stall, "floor_s": floor, "ratio": stall / floor},
            {"case": label, "measure": f"scroll latency per frame, median (scroll {steps_per_s:g}/s, "
                                       f"{len(latencies)} slices)",
             "product_s": latency, "floor_s": floor, "ratio": latency / floor}]


def compressed_rows(
    folder: Path, cr: int, slices: int, size: int, repeats: int, rates: tuple[float, ...] = (25.0,)
) -> list[dict]:
    from pydicom import uid

    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtWidgets import QApplication

    _app = QApplication.instance() or QApplication([])  # noqa: F841 - kept alive for the viewports
    rows: list[dict] = []
    folder.mkdir(parents=True, exist_ok=True)
    for syntax, name in ((uid.JPEG2000Lossless, "JPEG 2000"), (uid.HTJ2KLossless, "HTJ2K")):
        path = write_compressed_cr(folder, cr, syntax)
        rows += first_image_rows(path, f"{name} CR {cr}^2 on a 1024 px viewport", repeats)
    for syntax, name, sub in ((uid.JPEG2000Lossless, "JPEG 2000", "ct_j2k"), (uid.JPEGLSLossless, "JPEG-LS", "ct_jls")):
        ct = write_compressed_ct(folder / sub, slices, size, syntax)
        for rate in rates:
            rows += scroll_rows(ct, f"{name} CT {slices} x {size}^2", rate)
    return rows


def print_rows(rows: list[dict]) -> None:
    print(f"\n{'case':44} {'measure':46} {'product s':>10} {'floor s':>9} {'ratio':>7}")
    print("-" * 120)
    for r in rows:
        print(f"{r['case']:44} {r['measure']:46} {r['product_s']:10.3f} {r['floor_s']:9.3f} {r['ratio']:7.3f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=600)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--cr", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--dir", type=Path, default=None, help="keep the generated files here")
    parser.add_argument("--json", type=Path, default=None, help="also write the compressed-image rows here")
    parser.add_argument("--compressed-only", action="store_true", help="only the issue 27 compressed rows")
    parser.add_argument("--ct-compressed", type=int, default=40, help="slices of the compressed CT scrolled")
    parser.add_argument("--scroll-rates", default="25,5", help="slices per second the compressed CT is scrolled at")
    args = parser.parse_args(argv)
    if args.compressed_only:
        with tempfile.TemporaryDirectory() as tmp:
            rows = compressed_rows(args.dir or Path(tmp), args.cr, args.ct_compressed, args.size, args.repeats,
                                   tuple(float(r) for r in args.scroll_rates.split(",")))
        print(f"\nRadStation viewer benchmark, compressed images  ({device()})")
        print_rows(rows)
        if args.json:
            args.json.write_text(json.dumps(rows, indent=1))
        return 0

    with tempfile.TemporaryDirectory() as tmp:
        folder = args.dir or Path(tmp)
        t0 = time.perf_counter()
        ct_paths = write_ct(folder / "ct", args.slices, args.size)
        cr_path = write_cr(folder, args.cr)
        print(f"generated data in {time.perf_counter() - t0:.1f} s under {folder}", file=sys.stderr)
        ct_bytes = args.slices * args.size * args.size * 2
        cr_bytes = args.cr * args.cr * 2
        rows: list[tuple[str, str, float, str, str]] = []  # name, size, value, unit, target

        # first image: header + pixels + render at display size (fresh object each time)
        def first_cr() -> None:
            im = load_image(cr_path)
            render_frame(im, 0, None, out_shape=DISPLAY)

        def first_ct() -> None:
            im = load_image(ct_paths[0])
            render_frame(im, 0, None)

        rows.append(("time to first image, CR", f"{args.cr}x{args.cr} u16 -> 1024^2", median_time(first_cr, args.repeats), "s", "< 0.3 s"))
        rows.append(("time to first image, CT slice", f"{args.size}^2 i16", median_time(first_ct, args.repeats), "s", "< 0.3 s"))

        # whole series into a volume: each run in a fresh process (cold allocator, warm page cache)
        runs = [in_fresh_process(_load_peak, ct_paths) for _ in range(3)]
        rows.append(("load whole CT series -> volume", f"{args.slices} x {args.size}^2", statistics.median(r[0] for r in runs), "s", "< 3 s"))
        rows.append(("  peak RSS rise / pixel data", f"{ct_bytes / 2**20:.0f} MiB", statistics.median(r[1] for r in runs) / ct_bytes, "x", "< 2x"))

        # scrolling: next slice rendered each frame
        vol = load_volume(ct_paths)
        window = PRESETS["lung"]
        n = min(args.slices, 200)
        t0 = time.perf_counter()
        for k in range(n):
            render_array(vol.array[k], window)
        rows.append(("scroll, volume slice -> 8-bit", f"{args.size}^2 native", (time.perf_counter() - t0) / n * 1e3, "ms/frame", "< 16 ms"))
        t0 = time.perf_counter()
        for k in range(n):
            resample(render_array(vol.array[k], window), DISPLAY)
        rows.append(("scroll, volume slice -> display", "-> 1024^2", (time.perf_counter() - t0) / n * 1e3, "ms/frame", "< 16 ms"))
        del vol
        gc.collect()
        t0 = time.perf_counter()
        for k in range(n):
            render_frame(load_image(ct_paths[k]), 0, window, out_shape=DISPLAY)
        rows.append(("scroll, from files (read+decode+render)", "-> 1024^2", (time.perf_counter() - t0) / n * 1e3, "ms/frame", "< 16 ms"))

        # window/level drags on the CR
        cr_peak, cr_peak_native = in_fresh_process(_cr_peak, cr_path, ct_paths[0])
        image = load_image(cr_path)
        render_frame(image, 0, None, out_shape=DISPLAY)
        windows = [WindowLevel(1500 + 10 * i, 2000 + 7 * i) for i in range(60)]
        t0 = time.perf_counter()
        for w in windows:
            render_frame(image, 0, w, out_shape=DISPLAY)
        rows.append(("W/L update, CR at display size", "-> 1024^2", (time.perf_counter() - t0) / len(windows) * 1e3, "ms/update", "< 16 ms"))
        t0 = time.perf_counter()
        for w in windows[:20]:
            render_frame(image, 0, w)
        rows.append(("W/L update, CR at native size", f"{args.cr}^2", (time.perf_counter() - t0) / 20 * 1e3, "ms/update", "(info)"))
        rows.append(("  peak RSS rise / pixel data, CR open+show", f"{cr_bytes / 2**20:.0f} MiB", cr_peak / cr_bytes, "x", "< 2x"))
        rows.append(("  ... plus a native-size render", f"{cr_bytes / 2**20:.0f} MiB", cr_peak_native / cr_bytes, "x", "(info)"))

        crows = compressed_rows(folder / "compressed", args.cr, args.ct_compressed, args.size, args.repeats,
                                tuple(float(r) for r in args.scroll_rates.split(",")))

    print(f"\nRadStation viewer benchmark  ({device()})")
    print(f"{'measure':42} {'size':26} {'median':>10} {'unit':10} target  ok")
    print("-" * 104)
    for name, size, value, unit, target in rows:
        ok = ""
        if target.startswith("<"):
            limit = float(target.split()[1].rstrip("x"))
            ok = "yes" if value < limit else "NO"
        print(f"{name:42} {size:26} {value:10.3f} {unit:10} {target:7} {ok}")
    print_rows(crows)
    if args.json:
        args.json.write_text(json.dumps(crows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
