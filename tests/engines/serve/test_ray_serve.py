"""The built-in engine served on a real local Ray cluster (Ray Serve over HTTP on loopback), the `ray-serve`
backend as its client, the workstation's worker process on top, cancel, replicas, and every failure a site
meets (cluster down, nothing deployed, weights missing) as one clear sentence."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from engines.backends import BackendError, create_backend
from engines.errors import JobCancelled
from engines.serve.launch import ServeError
from engines.worker.client import WorkerClient, WorkerFailed

pytestmark = pytest.mark.timeout(1500)


def _img(seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).random((48, 40)) * 1000).astype(np.float32)


@pytest.fixture(scope="module")
def tiny_dir(tiny_engine_service):
    return tiny_engine_service[1]


@pytest.fixture(scope="module")
def service(tiny_engine_service) -> str:
    return tiny_engine_service[0]


def test_served_draft_is_the_in_process_draft(service, tiny_dir) -> None:
    local = create_backend("diffusion", path=str(tiny_dir), device="cpu")
    served = create_backend("ray-serve", url=service)
    d = served.describe()
    assert d["weights_hash"] == local.weights_hash and d["model"] == str(tiny_dir)
    assert {"draft", "answer", "synthesise", "inpaint", "explain"} <= served.capabilities
    seen: list[tuple[int, int]] = []
    out = served.draft([_img(0), _img(1)], seed=5, progress=lambda a, b: seen.append((a, b)))
    ref = local.draft([_img(0), _img(1)], seed=5)
    assert out.text == ref.text and out.findings == ref.findings and out.images_used == [0, 1]
    assert [t.text for t in out.tokens] == [t.text for t in ref.tokens]
    assert seen and seen[-1][0] == seen[-1][1]  # progress streamed to the end
    assert out.extra["served_by"].startswith("replica ") and out.extra["served_s"] > 0
    answer = served.answer([_img(0)], "Is there a pleural effusion?")
    assert answer.text in ("yes", "no") and answer.text == local.answer([_img(0)], "Is there a pleural effusion?").text
    with pytest.raises(BackendError, match="question is empty"):  # the replica's own validation, as in-process
        served.answer([_img(0)], "   ")
    served.close()


def test_the_workstation_worker_uses_the_service(service, tiny_dir) -> None:
    with WorkerClient("ray-serve", {"url": service, "device": "auto"}) as worker:
        status = worker.start()
        assert status["name"] == "ray-serve" and status["model"] == str(tiny_dir)
        result = worker.wait(worker.submit("draft", {"images": [_img(2)], "seed": 1}))
        prov = result.provenance
        assert prov["engine"] == "ray-serve" and prov["weights_hash"] == status["weights_hash"]
        assert prov["device"].startswith("served (cpu) by 127.0.0.1:")
        assert result.findings and result.extra["served_by"]


def test_cancel_stops_the_job_on_its_replica(service) -> None:
    served = create_backend("ray-serve", url=service)
    flag = threading.Event()
    steps: list[int] = []

    def progress(done: int, total: int) -> None:
        steps.append(done)
        if done >= 2:
            flag.set()

    t0 = time.monotonic()
    with pytest.raises(JobCancelled):
        served.draft([_img(0)], steps=100000, seed=0, progress=progress, cancel=flag.is_set)
    assert time.monotonic() - t0 < 120 and max(steps) < 100000
    # the replica is free again at once: a short job right after is served, not queued behind the long one
    t1 = time.monotonic()
    assert served.draft([_img(1)], steps=2, seed=0).text
    assert time.monotonic() - t1 < 60
    served.close()


def test_two_replicas_share_a_batch(ray_cluster, tiny_dir, service) -> None:
    url = ray_cluster.deploy(model=str(tiny_dir), device="cpu", replicas=2)  # re-scaled in place
    try:
        assert url == service
        served = create_backend("ray-serve", url=url)
        with ThreadPoolExecutor(4) as pool:
            outs = list(pool.map(lambda k: served.draft([_img(k)], steps=40, seed=k), range(6)))
        assert len({o.extra["served_by"] for o in outs}) == 2
        served.close()
    finally:  # back to one replica: the cluster's second CPU is for the other tests' deployments
        ray_cluster.deploy(model=str(tiny_dir), device="cpu", replicas=1)


def test_clear_messages_when_the_service_is_not_there(ray_cluster, service) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/radstation"
    with pytest.raises(BackendError, match=r"cannot reach the engine service at .*connection refused.*Ray cluster"):
        create_backend("ray-serve", url=dead)
    root = service.rsplit("/", 1)[0]
    with pytest.raises(BackendError, match="no RadStation engine is deployed at .*nowhere.*radstation engine serve"):
        create_backend("ray-serve", url=f"{root}/nowhere")
    with pytest.raises(BackendError, match="needs the engine service's URL"):
        create_backend("ray-serve", url="")
    with WorkerClient("ray-serve", {"url": dead}) as worker:  # the workstation's worker says the same
        with pytest.raises(WorkerFailed, match="cannot reach the engine service"):
            worker.start()


def test_missing_weights_fail_the_deployment_with_the_reason(ray_cluster, tmp_path) -> None:
    from engines.serve.launch import stop

    try:
        with pytest.raises(ServeError, match=r"could not be deployed: engine weights folder .*missing does not exist"):
            ray_cluster.deploy(model=str(tmp_path / "missing"), device="cpu", replicas=1, name="radstation-broken",
                               route_prefix="/broken", cpus_per_replica=0.1)  # the service holds both CPUs
    finally:
        stop(ray_cluster.address, name="radstation-broken")
