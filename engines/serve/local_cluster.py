"""A single-node Ray cluster on loopback, started and stopped by this process (tests, benchmarks, trials).

`ray start --head --block` runs in its own process group with every port chosen free, so it never clashes
with another cluster on the machine; stopping it ends exactly the processes it started (its group, then any
Ray worker that re-parented itself but still writes into this cluster's session directory), never other
users' Ray processes as `ray stop` would.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Serve's proxy must import uvicorn/starlette within 5 s by default; on a busy node it cannot.
SLOW_NODE_ENV = {
    "RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S": "120",
    "RAY_SERVE_PROXY_HEALTH_CHECK_TIMEOUT_S": "60",
    "RAY_SERVE_PROXY_GRACEFUL_SHUTDOWN_TIMEOUT_S": "20",
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _free_range(n: int) -> int:
    """First port of `n` consecutive ports free right now (Ray's worker ports)."""
    for start in range(30000 + (os.getpid() * 37) % 20000, 64000, n + 7):
        socks = []
        try:
            for port in range(start, start + n):
                s = socket.socket()
                s.bind(("127.0.0.1", port))
                socks.append(s)
            return start
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free range of ports for Ray workers")


class LocalRayCluster:
    """`start()` -> address "127.0.0.1:PORT"; `stop()` ends it. Usable as a context manager."""

    def __init__(self, num_cpus: int = 2, num_gpus: int = 0, workdir: Path | None = None,
                 env: dict[str, str] | None = None, object_store_mb: int = 256) -> None:
        self.num_cpus, self.num_gpus, self.object_store_mb = num_cpus, num_gpus, object_store_mb
        self._own_dir = workdir is None
        # Short path: Ray puts Unix sockets under it (108-byte limit).
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="rsray-", dir="/tmp"))
        self.env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled",
                    "OMP_NUM_THREADS": "1", **SLOW_NODE_ENV, **(env or {})}
        self.port = 0
        self.process: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.workdir / "ray-start.log"

    def start(self, timeout_s: float = 300.0) -> str:
        ray_cli = Path(sys.executable).with_name("ray")
        workers = _free_range(64)
        taken = set(range(workers, workers + 64))

        def port() -> int:  # free, distinct, and outside the workers' range (Ray refuses overlaps)
            while (p := _free_port()) in taken:
                pass
            taken.add(p)
            return p

        self.port = port()
        ports = {flag: port() for flag in ("--ray-client-server-port", "--dashboard-port",
                                           "--dashboard-agent-listen-port", "--dashboard-agent-grpc-port",
                                           "--runtime-env-agent-port", "--metrics-export-port",
                                           "--object-manager-port", "--node-manager-port")}
        cmd = [str(ray_cli) if ray_cli.exists() else "ray", "start", "--head", "--block", "--port", str(self.port),
               "--node-ip-address", "127.0.0.1", "--num-cpus", str(self.num_cpus), "--num-gpus", str(self.num_gpus),
               "--include-dashboard=false", "--disable-usage-stats", "--temp-dir", str(self.workdir / "t"),
               "--object-store-memory", str(self.object_store_mb * 2**20),
               "--min-worker-port", str(workers), "--max-worker-port", str(workers + 63),
               *[str(x) for kv in ports.items() for x in kv]]
        with open(self.log, "wb") as out:
            self.process = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=self.env,
                                            start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while "Ray runtime started" not in self.log.read_text(errors="replace"):
            if self.process.poll() is not None or time.monotonic() > deadline:
                tail = self.log.read_text(errors="replace")[-3000:]
                self.stop()
                raise RuntimeError(f"the local Ray cluster did not start: {tail}")
            time.sleep(0.5)
        return self.address

    def stop(self, timeout_s: float = 90.0) -> None:
        proc, self.process = self.process, None
        if proc is not None and proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)  # `ray start --block` stops its node on SIGTERM
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        deadline = time.monotonic() + 30
        while self._leftover_pids() and time.monotonic() < deadline:
            time.sleep(1)  # workers notice their raylet is gone and exit by themselves
        for pid in self._leftover_pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self._own_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def _leftover_pids(self) -> list[int]:
        """Processes of this cluster still alive: their stdout/stderr or cwd lies in its temp dir."""
        root = str(self.workdir)
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                links = [os.readlink(entry / "fd" / fd) for fd in ("1", "2")]
            except OSError:
                continue
            if any(link.startswith(root) for link in links):
                found.append(int(entry.name))
        return found

    def __enter__(self) -> LocalRayCluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
