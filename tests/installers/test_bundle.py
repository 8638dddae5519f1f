"""The PyInstaller one-folder bundle builds, starts under Xvfb and shows the demo study (slow: -m slow)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _size_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


@pytest.mark.slow
@pytest.mark.xvfb
def test_bundle_builds_and_shows_the_demo(xvfb_display: str, tmp_path: Path) -> None:
    res = subprocess.run(["bash", "installers/build_linux.sh"], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-4000:]
    exe = ROOT / "dist" / "radstation" / "radstation"
    assert exe.exists()
    print(f"bundle size: {_size_mb(exe.parent):.0f} MiB")
    shot = tmp_path / "bundle.png"
    env = {
        "PATH": "/usr/bin:/bin",
        "DISPLAY": xvfb_display,
        "QT_QPA_PLATFORM": "xcb",
        "RADSTATION_HOME": str(tmp_path / "home"),
        "HOME": os.environ.get("HOME", str(tmp_path)),
    }
    run = subprocess.run(
        [str(exe), "gui", "--screenshot", str(shot), "--screenshot-delay", "3"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-4000:]
    assert shot.exists() and shot.stat().st_size > 20_000
