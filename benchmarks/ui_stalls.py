"""Longest event-loop stall per user action in the main window (target < 100 ms, except backgrounded work).

    QT_QPA_PLATFORM=offscreen .venv/bin/python benchmarks/ui_stalls.py [--repeats 5] [--json OUT] [--profile open]

A 5 ms QTimer ticks on the GUI thread while each action runs; the longest gap between ticks minus the
interval is the longest time the window could not repaint or take a key. Every action is driven the way a
user does it (key events, clicks, menu actions) on the demo studies in a temporary RadStation home, and the
loop is then left to run for `--settle` seconds so work the action queued (autosave, worklist query,
thumbnails) is counted too. Prints one row per action: median and worst of the repeats, with the platform,
CPU count and torch-free process (the engine worker is never started), and beside it the cyclic garbage
collections during the action (per generation, the longest, and how much of the worst stall was collecting).
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import os
import pstats
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

# RADSTATION_BENCH_ROOT: measure another checkout (e.g. main) with this same script, for a fair comparison
ROOT = Path(os.environ.get("RADSTATION_BENCH_ROOT") or Path(__file__).resolve().parents[1]).resolve()
# run as a script, this folder comes first on sys.path and its viewer.py would shadow the viewer package
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
TICK_MS = 5


class GcRecorder:
    """Every cyclic garbage collection while recording (any thread: a collection holds the GIL, so the GUI
    thread waits for it too): generation, start and end (perf_counter seconds)."""

    def __init__(self) -> None:
        self.recording = False
        self.collections: list[tuple[int, float, float]] = []
        self._started = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        elif self.recording:
            self.collections.append((int(info["generation"]), self._started, time.perf_counter()))


class StallProbe:
    """Records the gaps between ticks of a fast timer on the GUI thread, and the collections during them."""

    def __init__(self) -> None:
        from PySide6.QtCore import QTimer

        self.timer = QTimer()
        self.timer.setInterval(TICK_MS)
        self.timer.timeout.connect(self._tick)
        self.last = time.perf_counter()
        self.worst = 0.0
        self.worst_span = (0.0, 0.0)  # when the worst gap was (perf_counter seconds)
        self.gc = GcRecorder()
        self.stats: dict = {}  # the last measure's collections: see `_gc_stats`

    def _tick(self) -> None:
        now = time.perf_counter()
        if now - self.last - TICK_MS / 1000.0 > self.worst:
            self.worst, self.worst_span = now - self.last - TICK_MS / 1000.0, (self.last, now)
        self.last = now

    def _gc_stats(self) -> dict:
        """Collections per generation, the longest one, and how much of the worst stall was collecting."""
        done = self.gc.collections
        lo, hi = self.worst_span
        in_worst = sum(max(0.0, min(e, hi) - max(s, lo)) for _g, s, e in done)
        longest = max(done, key=lambda c: c[2] - c[1], default=None)
        return {"gc_counts": [sum(1 for g, _s, _e in done if g == gen) for gen in range(3)],
                "gc_longest_ms": round((longest[2] - longest[1]) * 1000.0, 1) if longest else 0.0,
                "gc_longest_gen": longest[0] if longest else -1,
                "gc_in_worst_ms": round(in_worst * 1000.0, 1)}

    def measure(self, action: Callable[[], None], settle_s: float) -> float:
        from PySide6.QtCore import QEventLoop, QTimer

        self.last = time.perf_counter()
        self.timer.start()
        loop = QEventLoop()
        QTimer.singleShot(10, loop.quit)
        loop.exec()
        self.worst = 0.0  # only the action and what it queued count (gaps before it did not: they were before)
        self.gc.collections, self.gc.recording = [], True
        self.last = time.perf_counter()
        started = time.perf_counter()
        action()  # runs on the GUI thread: its own duration counts as a stall
        ended = time.perf_counter()
        if ended - started > self.worst:
            self.worst, self.worst_span = ended - started, (started, ended)
        self.last = time.perf_counter()
        QTimer.singleShot(int(settle_s * 1000), loop.quit)
        loop.exec()
        self.timer.stop()
        self.gc.recording = False
        self.stats = self._gc_stats()
        return self.worst * 1000.0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--settle", type=float, default=1.5, help="seconds the loop runs after each action")
    ap.add_argument("--json", type=Path, help="also write the rows here")
    ap.add_argument("--idle", type=float, default=2.0, help="seconds the shown window is left alone before the "
                    "first action (what it prepares at idle time is not counted as the log-in)")
    ap.add_argument("--profile", metavar="ACTION", help="cProfile the GUI thread during the actions whose name "
                    "contains ACTION (action and settle; several: comma-separated); prints the slowest repeat's top functions")
    ap.add_argument("--only", metavar="ACTIONS", help="run only the actions whose name contains one of these "
                    "(comma-separated; the log-in always runs), e.g. a long session of study switches: "
                    "--only 'open a study' --repeats 40")
    args = ap.parse_args(argv)

    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    load_at_start = os.getloadavg()[0]
    os.environ["RADSTATION_HOME"] = tempfile.mkdtemp(prefix="rs-stalls-")
    from PySide6.QtCore import QEventLoop, Qt, QTimer
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QApplication

    from app.db.database import Database
    from app.demo_studies import demo_study_uids, ensure_demo_imported
    from app.main_window import MainWindow
    from app.reports.users import UserService
    from app.settings import Settings

    app = QApplication.instance() or QApplication(sys.argv[:1])
    db = Database.open()
    ensure_demo_imported(db)
    users = UserService.from_settings(db)
    users.add_user("bench", "bench-password-1", "radiologist")
    settings = Settings()
    window = MainWindow(db, settings=settings)
    window.resize(1600, 1000)
    window.show()
    uids = demo_study_uids()
    probe = StallProbe()
    frozen: list[int] = []
    try:  # the app's start-up freezes its heap once start-up work is done (app/commands/gui.py does the same)
        from app.gc_pauses import freeze_when_started
    except ImportError:  # a checkout from before it
        freeze_when_started = None
    if freeze_when_started is not None:  # (counting the frozen objects walks them all: done here, not in the app)
        freeze_when_started(window, window.start_up_work_done, lambda: frozen.append(gc.get_freeze_count()))
    idle = QEventLoop()  # the window is shown and left alone a moment, as while the user types the password
    QTimer.singleShot(int(args.idle * 1000), idle.quit)
    idle.exec()
    waited = time.monotonic()
    while freeze_when_started is not None and not frozen and time.monotonic() - waited < 30:
        QTimer.singleShot(100, idle.quit)  # start-up work still going: the log-in comes once it is done
        idle.exec()

    def log_in() -> None:
        gate = window.lock_screen
        gate.username.setText("bench")
        QTest.keyClicks(gate.password, "bench-password-1")
        QTest.keyClick(gate.password, Qt.Key.Key_Return)

    def type_in_report() -> None:
        edit = window.report_editor.editors["findings"]
        edit.setFocus()
        QTest.keyClick(edit, Qt.Key.Key_X)  # one keystroke: what the radiologist feels per key

    state = {"study": 0}

    def open_next_study() -> None:
        state["study"] = (state["study"] + 1) % len(uids)
        window.open_study(uids[state["study"]])

    def lock_unlock() -> None:
        window.lock("benchmark")
        QTest.keyClicks(window.lock_screen.password, "bench-password-1")
        QTest.keyClick(window.lock_screen.password, Qt.Key.Key_Return)

    vp = lambda: window.workspace.active_viewport()  # noqa: E731
    actions: list[tuple[str, Callable[[], None], bool]] = [
        ("log in at the gate", log_in, False),
        ("open a study (viewer + report template)", open_next_study, False),
        ("scroll one image (Down)", lambda: QTest.keyClick(vp(), Qt.Key.Key_Down), False),
        ("window preset (key 3)", lambda: QTest.keyClick(vp(), Qt.Key.Key_3), False),
        ("reset view (R)", lambda: QTest.keyClick(vp(), Qt.Key.Key_R), False),
        ("type a character in the report (autosave runs in the background)", type_in_report, False),
        ("next template field (F6)", lambda: QTest.keyClick(window.report_editor.editors["findings"],
                                                              Qt.Key.Key_F6), False),
        ("fill template defaults", lambda: window.report_editor.fill_defaults(), False),
        ("layout 4x4", lambda: window.workspace.set_layout("4x4"), False),
        ("layout 1x1", lambda: window.workspace.set_layout("1x1"), False),
        ("show/hide the report panel (F4)", lambda: window.actions_by_name["toggle_report"].trigger(), False),
        ("worklist refresh (background query)", lambda: window.worklist.refresh_soon(), False),
        ("show the worklist (F2)", lambda: window.show_worklist(), False),
        ("back to the viewer (F3)", lambda: window.tabs.setCurrentWidget(window.workspace), False),
        ("lock and unlock", lock_unlock, False),
    ]
    if args.only:
        wanted = [part for part in args.only.split(",") if part]
        actions = [a for a in actions if a[0] == "log in at the gate" or any(part in a[0] for part in wanted)]
    rows = []
    for name, action, _background in actions:
        print(f"  {name}...", file=sys.stderr, flush=True)
        times, profiles, gcs = [], [], []
        for _ in range(args.repeats if name != "log in at the gate" else 1):
            profiled = args.profile and any(part and part in name for part in args.profile.split(","))
            profiler = cProfile.Profile() if profiled else None
            if profiler is not None:
                profiler.enable()
            times.append(probe.measure(action, args.settle))
            gcs.append(probe.stats)
            if profiler is not None:
                profiler.disable()
                profiles.append(profiler)
        if profiles:
            worst = max(range(len(times)), key=times.__getitem__)
            print(f"--- profile of '{name}', repeat {worst + 1} of {len(times)} (stall {times[worst]:.1f} ms; all: "
                  f"{', '.join(f'{t:.0f}' for t in times)})", file=sys.stderr)
            pstats.Stats(profiles[worst], stream=sys.stderr).sort_stats("cumulative").print_stats(35)
        worst = max(range(len(times)), key=times.__getitem__)
        rows.append({"action": name, "median_ms": round(statistics.median(times), 1),
                     "worst_ms": round(max(times), 1), "repeats": len(times), "under_100ms": max(times) < 100,
                     "times_ms": [round(t, 1) for t in times],
                     "gc_counts": [sum(g["gc_counts"][gen] for g in gcs) for gen in range(3)],
                     "gc_longest_ms": max(g["gc_longest_ms"] for g in gcs),
                     "gc_longest_gen": max(gcs, key=lambda g: g["gc_longest_ms"])["gc_longest_gen"],
                     "gc_in_worst_ms": gcs[worst]["gc_in_worst_ms"], "gc": gcs})
    heap = {"tracked": len(gc.get_objects()), "frozen": gc.get_freeze_count(), "threshold": list(gc.get_threshold()),
            "frozen_at_start_up": frozen[0] if frozen else None}
    started = time.perf_counter()
    gc.collect()
    heap["full_collection_ms"] = round((time.perf_counter() - started) * 1000.0, 1)
    window.close()
    device = (f"{app.platformName()} Qt platform, {os.cpu_count()} CPUs, load {load_at_start:.1f} at the start, "
              f"{os.getloadavg()[0]:.1f} at the end, code from {Path(sys.modules['app'].__file__).resolve().parents[1]}")
    print(f"UI stalls ({device}); window 1600x1000, demo studies; settle {args.settle} s after each action")
    print(f"garbage collector: {'no start-up freeze' if not frozen else f'{frozen[0]} objects frozen at start-up'}; "
          f"after the actions {heap['tracked']} objects tracked, {heap['frozen']} frozen, "
          f"thresholds {tuple(heap['threshold'])}, a full collection {heap['full_collection_ms']} ms")
    print(f"{'action':<70} {'median ms':>10} {'worst ms':>9} {'n':>3}  <100ms  {'gc gen0/1/2':>12} "
          f"{'longest gc ms (gen)':>19} {'gc in worst ms':>14}")
    for r in rows:
        counts = "/".join(str(c) for c in r["gc_counts"])
        print(f"{r['action']:<70} {r['median_ms']:>10.1f} {r['worst_ms']:>9.1f} {r['repeats']:>3}  "
              f"{'yes' if r['under_100ms'] else 'NO ':<5}  {counts:>12} "
              f"{r['gc_longest_ms']:>14.1f} ({r['gc_longest_gen'] if r['gc_longest_gen'] >= 0 else '-'}) "
              f"{r['gc_in_worst_ms']:>14.1f}")
    if args.json:
        args.json.write_text(json.dumps({"device": device, "gc": heap, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
