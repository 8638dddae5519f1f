"""A real Secret Service (D-Bus session bus + gnome-keyring-daemon) for tests of the OS-keyring path.

`secret_service` starts a private session bus and an unlocked keyring in a temp HOME, points this
process at it, re-initialises `keyring`, and stops both afterwards. Skips when the programs are missing
(apt-get install dbus gnome-keyring).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def secret_service(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    if not (shutil.which("dbus-daemon") and shutil.which("gnome-keyring-daemon")):
        pytest.skip("dbus-daemon / gnome-keyring-daemon are not installed")
    home = tmp_path / "desktop"
    runtime = home / "run"
    runtime.mkdir(parents=True, mode=0o700)
    env = dict(os.environ, HOME=str(home), XDG_DATA_HOME=str(home / "share"), XDG_RUNTIME_DIR=str(runtime))
    bus = subprocess.Popen(["dbus-daemon", "--session", "--nofork", "--print-address=1"], stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, env=env, text=True)
    address = bus.stdout.readline().strip() if bus.stdout else ""
    env["DBUS_SESSION_BUS_ADDRESS"] = address
    daemon = subprocess.Popen(["gnome-keyring-daemon", "--foreground", "--components=secrets", "--unlock"],
                              stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env=env, text=True)
    assert daemon.stdin is not None
    daemon.stdin.write("login keyring password\n")
    daemon.stdin.close()
    for key in ("HOME", "XDG_DATA_HOME", "XDG_RUNTIME_DIR", "DBUS_SESSION_BUS_ADDRESS"):
        monkeypatch.setenv(key, env[key])
    monkeypatch.delenv("RADSTATION_SECRET_BACKEND", raising=False)
    import keyring
    import keyring.backend
    import keyring.core

    # keyring decides once per process which backends are viable: one probed before this bus existed
    # (e.g. a database opened earlier looked up its password) would hide the Secret Service for good.
    with contextlib.suppress(KeyError):  # KeyError: not decided yet, nothing to forget
        keyring.backend.get_all_keyring.reset()

    from app.credentials import os_keyring

    previous = keyring.get_keyring()
    try:
        deadline = time.monotonic() + 30
        while True:  # wait until the daemon owns org.freedesktop.secrets
            try:
                keyring.core.init_backend()
                ready = os_keyring() is not None
            except Exception:  # noqa: BLE001 - the bus may not answer yet
                ready = False
            if ready:
                break
            if time.monotonic() > deadline or daemon.poll() is not None:
                pytest.fail("gnome-keyring-daemon did not provide a Secret Service")
            time.sleep(0.2)
        yield address
    finally:
        daemon.terminate()
        bus.terminate()
        for proc in (daemon, bus):
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
        keyring.set_keyring(previous)
