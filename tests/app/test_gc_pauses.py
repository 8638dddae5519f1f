"""The start-up heap leaves the garbage collector's scans once start-up work is done (app.gc_pauses): the
freeze waits for the window's idle-time preparations and warm-up thread, later collections scan only what was
made after it, and `radstation gui` applies it."""

from __future__ import annotations

import gc
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.db.database import Database
from app.demo_studies import demo_study_uids, ensure_demo_imported
from app.settings import Settings
from viewer.widgets.background import pending_jobs


@pytest.fixture
def unfrozen() -> Iterator[None]:
    """The test process's heap is unfrozen again afterwards (later tests' objects must stay collectable)."""
    gc.unfreeze()
    yield
    gc.unfreeze()


def test_heap_is_frozen_after_start_up_work_and_later_collections_scan_far_fewer_objects(
        qtbot, tmp_path, monkeypatch, unfrozen) -> None:
    from app.gc_pauses import freeze_when_started
    from app.main_window import MainWindow

    monkeypatch.setenv("RADSTATION_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("RADSTATION_DB_URL", raising=False)
    database = Database.open(f"sqlite:///{tmp_path / 'rs.db'}", store_dir=tmp_path / "store")
    try:
        ensure_demo_imported(database)
        window = MainWindow(database, settings=Settings(tmp_path / "settings.json"))
        qtbot.addWidget(window)
        window.resize(1600, 1000)
        window.show()
        frozen: list[tuple[int, bool, int]] = []  # (count, start-up work done then, objects left to scan)
        freeze_when_started(window, window.start_up_work_done, lambda: frozen.append(
            (gc.get_freeze_count(), window.start_up_work_done(), len(gc.get_objects()))))
        assert not frozen and gc.get_freeze_count() == 0  # not while the window still prepares itself
        qtbot.waitUntil(lambda: bool(frozen), timeout=30000)
        count, done, left = frozen[0]
        assert done and window._spare_editor is not None and not window._warm_runner.busy()
        # Qt wrappers, pydicom, SQLAlchemy, the editor... (a frozen object freed by its last reference leaves)
        assert count >= gc.get_freeze_count() > 50_000
        assert left < count // 50  # what a full collection now scans, against what it scanned before

        assert window.open_study(demo_study_uids()[0])  # an action after the freeze: its objects are collected
        qtbot.waitUntil(lambda: window.ai_images_ready and window.open_lookups_ready, timeout=30000)
        assert gc.get_freeze_count() <= count  # nothing made later is frozen
        assert len(gc.get_objects()) < count // 2  # a collection during the action scans far fewer objects
        qtbot.waitUntil(lambda: pending_jobs() == 0, timeout=30000)
        window.close()
    finally:
        database.dispose()


def test_gui_command_freezes_the_start_up_heap(tmp_path: Path) -> None:
    """`radstation gui` as a user starts it (kiosk site, demo study open, offscreen): by the time the window
    quits the start-up heap is frozen."""
    (tmp_path / "home" / "config").mkdir(parents=True)
    (tmp_path / "home" / "config" / "settings.json").write_text(json.dumps({"kiosk_mode": True}))
    env = {"RADSTATION_HOME": str(tmp_path / "home"), "QT_QPA_PLATFORM": "offscreen", "PATH": "/usr/bin:/bin",
           "OMP_NUM_THREADS": "1"}
    script = ("import atexit, gc, sys\n"
              "atexit.register(lambda: print('frozen', gc.get_freeze_count()))\n"
              "from app.cli import main\n"
              f"sys.exit(main(['gui', '--demo', '--screenshot', {str(tmp_path / 'shot.png')!r}, "
              "'--screenshot-delay', '6']))\n")
    res = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=180,
                         cwd=Path(__file__).resolve().parents[2])
    assert res.returncode == 0, res.stderr
    frozen = [int(line.split()[1]) for line in res.stdout.splitlines() if line.startswith("frozen ")]
    assert frozen and frozen[0] > 50_000, res.stdout
