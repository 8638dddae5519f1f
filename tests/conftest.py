"""Shared fixtures: Qt runs offscreen unless a test asks for the X server started here."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("RADSTATION_NO_AUTODOWNLOAD", "1")

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data" / "cxr"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def cxr_root() -> Path:
    """The real chest-radiograph set beside the checkout; tests that need it skip without it."""
    if not (SHARED_DATA / "manifest.jsonl").exists():
        pytest.skip("../shared/data/cxr is not present")
    return SHARED_DATA


def _free_display() -> int:
    for n in range(90, 200):
        if not Path(f"/tmp/.X{n}-lock").exists() and not Path(f"/tmp/.X11-unix/X{n}").exists():
            return n
    raise RuntimeError("no free X display number")


@pytest.fixture(scope="session")
def xvfb_display() -> Iterator[str]:
    """Start Xvfb for the session and yield its DISPLAY (":N"); stopped at the end."""
    exe = shutil.which("Xvfb")
    if exe is None:
        pytest.skip("Xvfb is not installed (apt-get install xvfb libxcb-icccm4 libxcb-keysyms1)")
    n = _free_display()
    proc = subprocess.Popen(
        [exe, f":{n}", "-screen", "0", "1600x1000x24", "-nolisten", "tcp"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while not Path(f"/tmp/.X11-unix/X{n}").exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("Xvfb did not start")
        time.sleep(0.05)
    try:
        yield f":{n}"
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()


def free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# The real-Orthanc (`orthanc`), real-PostgreSQL (`postgres`) and local Ray cluster (`ray_cluster`) fixtures live
# in plugin modules beside this file.
pytest_plugins = [
    "tests.support.orthanc_fixture", "tests.support.postgres_fixture", "tests.support.ray_fixture", "tests.support.engine",
]


@pytest.fixture(autouse=True)
def _settings_in_use_reset() -> Iterator[None]:
    """A main window makes its settings the ones in use (app.settings.use_settings); the next test starts
    from the settings file again."""
    yield
    from app.settings import use_settings

    use_settings(None)


# Markers from the fixtures a test uses (orthanc, postgres and ray are set by their fixture modules):
# `-m "not gui"` leaves out every test that needs a QApplication, `-m "not real_data"` those that read the
# chest-radiograph set beside the checkout.
_MARKER_OF_FIXTURE = {"qtbot": "gui", "qapp": "gui", "xvfb_display": "gui", "cxr_root": "real_data"}


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        for marker in sorted({m for f, m in _MARKER_OF_FIXTURE.items() if f in names}):
            item.add_marker(marker)
