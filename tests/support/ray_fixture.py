"""A real single-node Ray cluster on loopback for the served-engine tests, started and stopped like Orthanc.

Loaded by tests/conftest.py as a pytest plugin. The session-scoped fixture `ray_cluster` yields a
`RayServeCluster`: the cluster (2 CPUs, engines.serve.local_cluster) with this test process attached as
its driver; `deploy(spec)` puts the engine service on it and returns its URL. The cluster's workers import
this checkout (PYTHONPATH), so what is tested is the code beside this file. Tests that use the fixture
carry the `ray` marker, so `-m "not ray"` skips them. `tiny_engine_service` is the service with the engine's
tiny random model, deployed once for the session.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


def free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class RayServeCluster:
    cluster: object
    http_port: int

    @property
    def address(self) -> str:
        return self.cluster.address  # type: ignore[attr-defined]

    def deploy(self, **spec: object) -> str:
        from engines.serve.launch import ServeSpec, deploy

        # A deployment that cannot start fails the test within minutes rather than Serve's patient wait.
        return deploy(ServeSpec(port=self.http_port, **spec), self.address, ready_timeout_s=300)  # type: ignore[arg-type]

    def undeploy(self) -> None:
        from engines.serve.launch import stop

        stop(self.address)


def _bounded(fn: object, seconds: float) -> None:
    """Run a shutdown step that may hang on a wedged cluster, giving up after `seconds`."""
    t = threading.Thread(target=fn, daemon=True)  # type: ignore[arg-type]
    t.start()
    t.join(seconds)


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[RayServeCluster]:
    pytest.importorskip("ray.serve", reason="Ray Serve is not installed (pip install 'radstation[rayserve]')")
    import ray
    from ray import serve

    from engines.serve.local_cluster import LocalRayCluster

    saved = {k: os.environ.get(k) for k in ("RAY_AUTH_MODE", "RAY_USAGE_STATS_ENABLED")}
    os.environ.update({"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"})
    pythonpath = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]))
    cluster = LocalRayCluster(num_cpus=2, env={"PYTHONPATH": pythonpath})
    try:
        cluster.start()
        ray.init(address=cluster.address, log_to_driver=False, namespace="serve")
        yield RayServeCluster(cluster, free_tcp_port())
    finally:
        if ray.is_initialized():
            _bounded(serve.shutdown, 60)
            _bounded(ray.shutdown, 30)
        cluster.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="session")
def tiny_engine_service(ray_cluster, tmp_path_factory) -> tuple[str, Path]:
    """The engine service with one replica of the engine's tiny random model: (URL, weights folder)."""
    from engines.models.tiny import make_tiny_checkpoint

    weights = make_tiny_checkpoint(tmp_path_factory.mktemp("served-tiny"))
    return ray_cluster.deploy(model=str(weights), device="cpu", replicas=1), weights


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the tests that use the cluster and run them last: `ray.init` in this process starts Ray's core
    worker threads and signal handlers, which stay until the session ends; Qt tests after them crashed the
    whole run once (SIGSEGV in the GUI thread while Ray's threads ran)."""
    uses_ray = []
    for item in items:
        if {"ray_cluster", "tiny_engine_service"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.ray)
            uses_ray.append(item)
    if uses_ray:
        ids = {id(i) for i in uses_ray}
        items[:] = [i for i in items if id(i) not in ids] + uses_ray
