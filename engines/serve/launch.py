"""Deploy, inspect and stop the engine service on a Ray cluster (`radstation engine serve` calls these).

Every node of the cluster needs RadStation installed (`pip install 'radstation[rayserve]'`) and the
weights at the same path; the shipped default weights are inside the package, so they always are.
Serve applications outlive the command that deployed them: the service runs until `stop()` or until
the cluster stops.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

from engines.serve import DEFAULT_ROUTE, SERVICE


class ServeError(RuntimeError):
    """The cluster cannot be reached or the service cannot be deployed: the message says why."""


@dataclass
class ServeSpec:
    """What to deploy: the engine, its weights, and how many replicas with which resources."""

    engine: str = "diffusion"
    model: str = ""  # weights folder on every node ("" = the shipped default weights)
    device: str = "auto"
    replicas: int = 1
    autoscale: tuple[int, int] | None = None
    cpus_per_replica: float = 1.0
    gpus_per_replica: float = 0.0
    threads: int = 1  # torch threads per replica
    host: str = "127.0.0.1"  # where the HTTP proxy listens (0.0.0.0 for the department's network)
    port: int = 8000
    route_prefix: str = DEFAULT_ROUTE
    name: str = SERVICE


def connect(address: str | None) -> None:
    """Attach this process to the Ray cluster at `address` ("auto": the one on this node)."""
    try:
        import ray
    except ImportError as exc:
        raise ServeError("serving the engine needs Ray Serve (pip install 'radstation[rayserve]')") from exc
    if ray.is_initialized():
        return
    try:
        ray.init(address=address or "auto", log_to_driver=False, namespace="serve")
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise ServeError(f"cannot connect to the Ray cluster at {address or 'auto'}: {_first_line(exc)} "
                         "(start one with `ray start --head`, or pass its address)") from exc


def deploy(spec: ServeSpec, address: str | None = None, ready_timeout_s: float = 900.0) -> str:
    """Deploy (or re-scale in place) the engine service; returns its URL once every replica is ready.

    Raises ServeError with Serve's own reason when the replicas fail to start (the weights are missing, the
    model does not fit) or cannot be placed within `ready_timeout_s` (the cluster lacks the CPUs/GPUs asked)."""
    connect(address)
    from ray import serve

    from engines.serve.deployment import engine_deployment

    config: dict[str, Any] = {"device": spec.device}
    if spec.model:
        config["path"] = spec.model
    dep = engine_deployment(replicas=spec.replicas, autoscale=spec.autoscale, cpus_per_replica=spec.cpus_per_replica,
                            gpus_per_replica=spec.gpus_per_replica)
    try:
        serve.start(http_options={"host": spec.host, "port": int(spec.port)})
        # Not waiting inside Serve (which waits forever for resources): polled below with a deadline.
        serve._run(dep.bind(spec.engine, config, spec.threads), _blocking=False, name=spec.name,
                   route_prefix=spec.route_prefix)
    except Exception as exc:  # noqa: BLE001 - Serve raises RuntimeError/RayTaskError with the replica's traceback
        raise ServeError(f"the engine service could not be deployed: {replica_failure(exc)}") from exc
    _wait_running(spec.name, spec.autoscale[0] if spec.autoscale else spec.replicas, ready_timeout_s)
    return service_url(spec)


def _wait_running(name: str, replicas: int, timeout_s: float, poll_s: float = 1.0) -> None:
    """Until the application runs with at least `replicas` replicas up (a re-scale reports RUNNING at once)."""
    from ray import serve

    deadline = time.monotonic() + timeout_s
    while True:
        app = serve.status().applications.get(name)
        state = _enum_name(app.status) if app is not None else "NOT_STARTED"
        up = sum(int(n) for d in (app.deployments.values() if app is not None else ())
                 for k, n in (d.replica_states or {}).items() if _enum_name(k) == "RUNNING")
        if state == "RUNNING" and up >= replicas:
            return
        if state in ("DEPLOY_FAILED", "UNHEALTHY"):
            detail = app.message if app is not None else ""
            for dep in (app.deployments.values() if app is not None else ()):
                detail += "\n" + (dep.message or "")
            raise ServeError(f"the engine service could not be deployed: {replica_failure(RuntimeError(detail))}")
        if time.monotonic() > deadline:
            why = "; ".join(d.message for d in (app.deployments.values() if app is not None else ()) if d.message)
            raise ServeError(f"the engine service was not ready after {timeout_s:g} s ({state}): "
                             f"{why or 'no reason given'}; see `radstation engine serve --status`")
        time.sleep(poll_s)


def _enum_name(value: Any) -> str:
    text = str(getattr(value, "value", value))
    return text.rsplit(".", 1)[-1].removeprefix("APPLICATION_STATUS_")


def service_url(spec: ServeSpec) -> str:
    host = "127.0.0.1" if spec.host in ("0.0.0.0", "::") else spec.host
    return f"http://{host}:{spec.port}{spec.route_prefix}"


def status(address: str | None = None, name: str = SERVICE) -> dict[str, Any]:
    """The application's state and its replicas per state, as Serve reports them."""
    connect(address)
    from ray import serve

    app = serve.status().applications.get(name)
    if app is None:
        return {"name": name, "status": "NOT_DEPLOYED"}
    deployments = {d: {"status": _enum_name(s.status),
                       "replicas": {str(k.value if hasattr(k, "value") else k): v
                                    for k, v in (s.replica_states or {}).items()},
                       "message": s.message}
                   for d, s in app.deployments.items()}
    return {"name": name, "status": _enum_name(app.status),
            "message": app.message, "deployments": deployments}


def stop(address: str | None = None, name: str = SERVICE) -> None:
    """Remove the engine service from the cluster (the cluster itself keeps running)."""
    connect(address)
    from ray import serve

    serve.delete(name)


_BACKEND_ERROR = re.compile(r"BackendError: (.+)")


def replica_failure(exc: BaseException) -> str:
    """The sentence that says why replicas failed: the BackendError inside Serve's traceback if there is one."""
    text = str(exc)
    found = _BACKEND_ERROR.findall(text)
    return found[-1].strip() if found else _first_line(exc)


def _first_line(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return lines[0][:400] if lines else type(exc).__name__
