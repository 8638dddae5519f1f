"""Import speed on N small generated DICOM files (default 10,000), and whether the GUI stays live.

Generates CT slices (64x64, ~9 KB each) in studies of 100 slices in a temp folder, then imports them
into a fresh SQLite database + store twice: once through ImportService directly, once more (all
duplicates) through the Qt ImportController while a 10 ms GUI timer measures the longest event-loop
stall. Prints a table: files/s, median and p95 per-batch (commit) time, peak memory, GUI stall.

    .venv/bin/python benchmarks/import_files.py --n 10000
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's packages and its test helpers (tests.support: the generator)
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


class PeakRss:
    """Samples this process's RSS every 20 ms in a thread (tracemalloc would slow the import)."""

    def __init__(self) -> None:
        self.proc = psutil.Process()
        self.peak = self.proc.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self.proc.memory_info().rss)

    def __enter__(self) -> PeakRss:
        self.start = self.proc.memory_info().rss
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)


def generate(folder: Path, n: int, per_study: int, size: int) -> float:
    from pydicom.uid import generate_uid

    from tests.support.synthetic_dicom import SyntheticStudy, make_instance

    t0 = time.perf_counter()
    written = 0
    study_no = 0
    while written < n:
        study_no += 1
        study = SyntheticStudy(patient_name=f"BENCH^{study_no:05d}", patient_id=f"B{study_no:05d}",
                               accession=f"ACC{study_no:06d}")
        series_uid = generate_uid()
        sub = folder / f"study{study_no:05d}"
        sub.mkdir(parents=True)
        for k in range(1, min(per_study, n - written) + 1):
            ds = make_instance(study, series_uid, instance_number=k, size=size)
            ds.save_as(sub / f"{k:05d}.dcm", enforce_file_format=True)
            written += 1
    return time.perf_counter() - t0


class Heartbeat:
    """A 10 ms GUI timer; the gaps between its ticks show how long the event loop was blocked."""

    def __init__(self) -> None:
        from PySide6.QtCore import QTimer

        self.gaps: list[float] = []
        self.timer = QTimer(interval=10)
        self.timer.timeout.connect(self._beat)

    def _beat(self) -> None:
        now = time.perf_counter()
        self.gaps.append((now - self.last) * 1000)
        self.last = now

    def start(self) -> None:
        self.gaps.clear()
        self.last = time.perf_counter()
        self.timer.start()

    def stop(self) -> tuple[float, float]:
        """(p99, max) gap in ms."""
        self.timer.stop()
        gaps = sorted(self.gaps) or [0.0]
        return gaps[int(0.99 * (len(gaps) - 1))], gaps[-1]


def idle_gui_gaps(seconds: float) -> tuple[float, float]:
    """The same heartbeat with no import running: what the machine's load alone costs."""
    from PySide6.QtCore import QEventLoop, QTimer
    from PySide6.QtWidgets import QApplication

    _app = QApplication.instance() or QApplication(sys.argv[:1])
    beat = Heartbeat()
    loop = QEventLoop()
    QTimer.singleShot(int(seconds * 1000), loop.quit)
    beat.start()
    loop.exec()
    return beat.stop()


def gui_import(database, folder: Path) -> tuple[float, tuple[float, float], object]:  # type: ignore[no-untyped-def]
    """Run an import through the Qt controller; returns (seconds, (p99, max) GUI gap ms, report)."""
    from PySide6.QtCore import QEventLoop
    from PySide6.QtWidgets import QApplication

    from app.widgets.import_dialog import ImportController

    app = QApplication.instance() or QApplication(sys.argv[:1])
    controller = ImportController(database)
    loop = QEventLoop()
    result: dict[str, object] = {}
    beat = Heartbeat()
    controller.finished.connect(lambda r: (result.setdefault("report", r), loop.quit()))
    controller.failed.connect(lambda m: (result.setdefault("error", m), loop.quit()))
    t0 = time.perf_counter()
    beat.start()
    controller.start([folder])
    loop.exec()
    gaps = beat.stop()
    elapsed = time.perf_counter() - t0
    del app
    if "error" in result:
        raise RuntimeError(result["error"])
    return elapsed, gaps, result["report"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=10000, help="number of files (default 10000)")
    parser.add_argument("--per-study", type=int, default=100, help="slices per study (default 100)")
    parser.add_argument("--size", type=int, default=64, help="image rows/columns (default 64)")
    parser.add_argument("--commit-every", type=int, default=200, help="files per committed batch")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="radstation-bench-") as tmp:
        root = Path(tmp)
        os.environ["RADSTATION_HOME"] = str(root / "home")
        os.environ.pop("RADSTATION_DB_URL", None)
        from app.db.database import Database
        from app.importer import ImportService

        src = root / "src"
        gen_s = generate(src, args.n, args.per_study, args.size)
        total_bytes = sum(p.stat().st_size for p in src.rglob("*.dcm"))
        database = Database.open()
        service = ImportService(database, commit_every=args.commit_every)
        with PeakRss() as mem:
            t0 = time.perf_counter()
            report = service.run([src])
            import_s = time.perf_counter() - t0
        assert report.imported == args.n and report.failed == 0, report.summary()
        batches_ms = sorted(b * 1000 for b in report.batch_seconds)
        p95 = batches_ms[min(len(batches_ms) - 1, int(round(0.95 * (len(batches_ms) - 1))))]
        idle_p99, idle_max = idle_gui_gaps(5.0)
        with PeakRss() as mem_gui:
            gui_s, (gap_p99, gap_max), gui_report = gui_import(database, src)
        assert gui_report.duplicates == args.n, gui_report.summary()  # type: ignore[attr-defined]
        database.dispose()

    cpu = platform.processor() or platform.machine()
    rows = [
        ("files", f"{args.n}"),
        ("file size (mean)", f"{total_bytes / args.n / 1024:.1f} KiB ({args.size}x{args.size} CT, 16-bit)"),
        ("studies x slices", f"{-(-args.n // args.per_study)} x {args.per_study}"),
        ("generate files", f"{gen_s:.1f} s"),
        ("import (new files)", f"{import_s:.1f} s"),
        ("import rate", f"{args.n / import_s:.0f} files/s"),
        (f"batch of {args.commit_every} files, median", f"{statistics.median(batches_ms):.0f} ms"),
        (f"batch of {args.commit_every} files, p95", f"{p95:.0f} ms"),
        ("peak RSS during import", f"{mem.peak / 2**20:.0f} MiB (+{(mem.peak - mem.start) / 2**20:.0f} MiB)"),
        ("re-import via Qt controller", f"{gui_s:.1f} s, {args.n / gui_s:.0f} files/s (all duplicates)"),
        ("GUI 10 ms timer gap while importing", f"p99 {gap_p99:.0f} ms, max {gap_max:.0f} ms"),
        ("GUI 10 ms timer gap, idle (5 s)", f"p99 {idle_p99:.0f} ms, max {idle_max:.0f} ms (machine load alone)"),
        ("peak RSS during Qt re-import", f"{mem_gui.peak / 2**20:.0f} MiB"),
        ("device", f"{cpu}, {os.cpu_count()} CPUs, Python {platform.python_version()}, SQLite WAL"),
    ]
    width = max(len(k) for k, _ in rows)
    print(f"{'measure':<{width}} | value")
    print(f"{'-' * width}-|-{'-' * 50}")
    for key, value in rows:
        print(f"{key:<{width}} | {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
