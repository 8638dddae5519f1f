"""The department's engine service (the built-in engine on Ray Serve, engines.serve) as a backend.

The workstation's worker loads this like any other engine ("engine": "ray-serve", engine_options.url =
the service's URL); each job is one HTTP request whose response streams progress and then the result, so
the AI panel shows steps and Cancel works (closing the request cancels the job on its replica). Nothing
here imports Ray: a workstation needs only `requests` (already a dependency of dicomweb-client). Capabilities, model, weights hash and device are the
service's own (from …/describe), so a stored draft names the weights that wrote it.

Every failure of the service or the network is a BackendError that says what happened and what to do;
the app stays usable and the next job tries the service again.
"""

from __future__ import annotations

import threading
import time
from typing import Any, TypeVar
from urllib.parse import urlparse

import numpy as np

from engines.backends.base import CancelFn, EngineBackend, ProgressFn, check_images
from engines.backends.errors import BackendError, ServiceUnavailable
from engines.backends.results import (
    ImageOutput,
    JobResult,
    RegionMaps,
    ResultError,
    TextOutput,
    result_from_json,
)
from engines.errors import JobCancelled
from engines.worker.protocol import ProtocolError, decode, encode
from engines.worker.requests import (
    AnswerRequest,
    DraftRequest,
    InpaintRequest,
    JobRequest,
    RegionMapRequest,
    SynthesiseRequest,
)

R = TypeVar("R", bound=JobResult)

START_HINT = "is the Ray cluster running and the engine deployed (`radstation engine serve`)?"


class RayServeBackend(EngineBackend):
    name = "ray-serve"
    concurrent_jobs = True  # the service queues requests and spreads them over its replicas
    forwards_jobs = True  # the worker hands over whole jobs: the input gate runs on the replica, with the model

    def __init__(self, url: str = "", *, timeout_s: float = 600.0, connect_timeout_s: float = 5.0,
                 tls_ca: str = "", token_name: str = "", device: str = "", path: str = "", threads: int = 0) -> None:
        del device, path, threads  # settings every backend is given; the service decides where it runs
        parsed = urlparse(url or "")
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise BackendError("the ray-serve engine needs the engine service's URL, such as "
                               f"http://engine-server:8000/radstation (engine_options.url); got {url!r}")
        import requests
        self.url = url.rstrip("/")
        self.timeout_s = float(timeout_s)
        self._requests = requests
        self._timeout = (float(connect_timeout_s), self.timeout_s)
        headers = {}
        if token_name or parsed.scheme == "https":  # a token only makes sense behind the site's TLS front
            from engines.backends.openai_compat import token_from_keyring

            token = token_from_keyring(self.url, token_name)
            if token:
                headers["Authorization"] = f"Bearer {token}"
        self.client = requests.Session()
        self.client.headers.update(headers)
        self.client.verify = tls_ca or True
        self.service = self._describe_service()
        self.capabilities = frozenset(self.service.get("capabilities") or ())
        self.supports_multi_image = bool(self.service.get("supports_multi_image", False))
        self.path = str(self.service.get("model", ""))
        self.weights_hash = str(self.service.get("weights_hash", ""))
        self.device = f"served ({self.service.get('device', '?')}) by {urlparse(self.url).netloc}"

    # -- the EngineBackend interface ---------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "device": self.device, "model": self.path, "weights_hash": self.weights_hash,
                "server": self.url, "engine": self.service.get("engine", ""), "memory": {},
                "capabilities": sorted(self.capabilities), "supports_multi_image": self.supports_multi_image}

    def draft(self, images: list[np.ndarray], *, steps: int | None = None, guidance: float | None = None,
              seed: int = 0, progress: ProgressFn | None = None, cancel: CancelFn | None = None,
              mode: str | None = None, section_order: list[str] | None = None) -> TextOutput:
        """`mode` and `section_order` as the built-in engine takes them (sentence drafts), passed to the service."""
        request = DraftRequest(images=tuple(check_images(images)), steps=steps, guidance=guidance, seed=int(seed),
                               mode=mode, section_order=tuple(section_order) if section_order else None)
        return self._typed(TextOutput, request, progress, cancel)

    def answer(self, images: list[np.ndarray], question: str, *, steps: int | None = None, seed: int = 0,
               progress: ProgressFn | None = None, cancel: CancelFn | None = None) -> TextOutput:
        if not question or not question.strip():
            raise BackendError("the question is empty")
        request = AnswerRequest(images=tuple(check_images(images)), question=question, steps=steps, seed=int(seed))
        return self._typed(TextOutput, request, progress, cancel)

    def synthesise(self, report: str, *, steps: int | None = None, guidance: float | None = None, seed: int = 0,
                   progress: ProgressFn | None = None, cancel: CancelFn | None = None) -> ImageOutput:
        request = SynthesiseRequest(report=report, steps=steps, guidance=guidance, seed=int(seed))
        return self._typed(ImageOutput, request, progress, cancel)

    def inpaint(self, image: np.ndarray, token_mask: np.ndarray, report: str, *, steps: int | None = None,
                guidance: float | None = None, seed: int = 0, progress: ProgressFn | None = None,
                cancel: CancelFn | None = None) -> ImageOutput:
        request = InpaintRequest(image=np.asarray(image), token_mask=np.asarray(token_mask, dtype=bool),
                                 report=report, steps=steps, guidance=guidance, seed=int(seed))
        return self._typed(ImageOutput, request, progress, cancel)

    def explain(self, images: list[np.ndarray], text: str, *, progress: ProgressFn | None = None,
                cancel: CancelFn | None = None) -> dict[str, np.ndarray]:
        request = RegionMapRequest(images=tuple(check_images(images)), text=text)
        return self._typed(RegionMaps, request, progress, cancel).maps

    def forward_job(self, request: JobRequest, progress: ProgressFn | None = None,
                    cancel: CancelFn | None = None) -> JobResult:
        """A worker's job as it came (images, gate headers, override, draft options), run by a replica exactly
        as the workstation's worker would run it in-process; returns the replica's result (the scope decision
        alone, or a refusal, when the gate stopped it)."""
        if isinstance(request, AnswerRequest) and not request.question.strip():
            raise BackendError("the question is empty")
        return self._result(self._job(request.kind, request.to_params(), progress, cancel, gated=True))

    def _typed(self, cls: type[R], request: JobRequest, progress: ProgressFn | None, cancel: CancelFn | None) -> R:
        """A backend method's call on the service (ungated, as the method is in-process): its result type."""
        result = self._result(self._job(request.kind, request.to_params(), progress, cancel))
        if not isinstance(result, cls):
            raise BackendError(f"the engine service at {self.url} answered a '{request.kind}' job with a "
                               f"'{result.kind}' result")
        return result

    def _result(self, data: dict[str, Any]) -> JobResult:
        try:
            return result_from_json(data)
        except ResultError as exc:
            raise BackendError(f"the engine service at {self.url} sent a result this workstation cannot read "
                               f"({exc}); are both on the same RadStation version?") from exc

    def close(self) -> None:
        self.client.close()

    # -- internals ---------------------------------------------------------------------------------------
    def _describe_service(self) -> dict[str, Any]:
        try:
            reply = self.client.get(f"{self.url}/describe", timeout=self._timeout)
        except self._requests.RequestException as exc:
            raise self._explain(exc) from exc
        self._check_status(reply)
        try:
            info = reply.json()
        except ValueError as exc:
            raise BackendError(f"{self.url} did not answer as a RadStation engine service (not JSON); "
                               "check engine_options.url") from exc
        if not isinstance(info, dict) or info.get("service") != "radstation-engine":
            raise BackendError(f"{self.url} is not a RadStation engine service; check engine_options.url "
                               "(…/radstation)")
        return info

    def _job(self, kind: str, params: dict[str, Any], progress: ProgressFn | None,
             cancel: CancelFn | None, gated: bool = False) -> dict[str, Any]:
        if kind not in self.capabilities:
            raise self._unsupported(kind)
        if cancel is not None and cancel():
            raise JobCancelled("cancelled")
        body = encode({"type": "job", "kind": kind, "gated": gated,
                       "params": {k: v for k, v in params.items() if v is not None}})
        start = time.perf_counter()
        watcher: _CancelWatcher | None = None
        try:
            with self.client.post(f"{self.url}/jobs", data=body, stream=True, timeout=self._timeout,
                                  headers={"Content-Type": "application/x-ndjson"}) as reply:
                self._check_status(reply)
                watcher = _CancelWatcher(cancel, reply) if cancel is not None else None
                for line in reply.iter_lines(chunk_size=None):
                    if cancel is not None and cancel():
                        raise JobCancelled("cancelled")  # leaving the block closes the request: the replica stops
                    if not line.strip():
                        continue
                    try:
                        msg = decode(line)
                    except ProtocolError as exc:
                        raise BackendError(f"the engine service at {self.url} sent an unreadable reply: {exc}") from exc
                    if msg["type"] == "progress":
                        if progress is not None:
                            progress(int(msg["done"]), int(msg["total"]))
                    elif msg["type"] == "result":
                        result = dict(msg["result"])
                        served = dict(result.pop("provenance", None) or {})  # the worker adds its own
                        if result.get("kind") in (TextOutput.kind, ImageOutput.kind):
                            result.setdefault("extra", {}).update({
                                "served_s": round(time.perf_counter() - start, 3),
                                "served_by": f"replica {served.get('replica', '?')} on {served.get('node', '?')}"})
                        return result
                    elif msg["type"] == "cancelled":
                        raise JobCancelled("cancelled on the engine service")
                    elif msg["type"] == "error":
                        raise BackendError(str(msg.get("message", "engine service error")))
        except self._requests.RequestException as exc:
            if cancel is not None and cancel():
                raise JobCancelled("cancelled") from exc  # the watcher closed the request
            raise self._explain(exc) from exc
        except (AttributeError, ValueError) as exc:  # reading from a response the watcher just closed
            if cancel is not None and cancel():
                raise JobCancelled("cancelled") from exc
            raise
        finally:
            if watcher is not None:
                watcher.stop()
        if cancel is not None and cancel():
            raise JobCancelled("cancelled")
        raise BackendError(f"the engine service at {self.url} ended the job without a result "
                           "(a replica may have died; try again)")

    def _check_status(self, reply: Any) -> None:
        if reply.status_code < 400:
            return
        try:
            detail = reply.text.strip()[:300]
        except Exception:  # noqa: BLE001 - the reason text is a courtesy
            detail = ""
        where, code = self.url, reply.status_code
        if code == 404:
            raise ServiceUnavailable(f"no RadStation engine is deployed at {where} (HTTP 404); check engine_options.url "
                               "(…/radstation) or deploy it with `radstation engine serve`")
        if code in (401, 403):
            raise BackendError(f"the engine service at {where} refused the token (HTTP {code}); store the right "
                               f"one with `radstation engine token {where}`")
        if code in (502, 503, 504):
            raise ServiceUnavailable(f"the engine service at {where} has no replica ready (HTTP {code}); its replicas "
                               "may be starting, overloaded or failing to load the model — see `radstation engine "
                               f"serve --status`. {detail}".strip())
        raise BackendError(f"the engine service at {where} failed (HTTP {code}): {detail}")

    def _explain(self, exc: Exception) -> BackendError:
        r, where = self._requests.exceptions, self.url
        if isinstance(exc, r.Timeout):
            if isinstance(exc, r.ConnectTimeout):
                return ServiceUnavailable(f"cannot reach the engine service at {where} (no answer to connect); "
                                          f"{START_HINT}")
            return BackendError(f"the engine service at {where} did not answer within {self.timeout_s:g} s; it may be "
                                "overloaded — try again, or raise engine_options.timeout_s")
        if isinstance(exc, r.SSLError):
            return BackendError(f"the TLS certificate of the engine service at {where} is not trusted ({exc}); "
                                "set engine_options.tls_ca to the site's CA bundle")
        if isinstance(exc, r.ConnectionError) and "Read timed out" in str(exc):
            return BackendError(f"the engine service at {where} did not answer within {self.timeout_s:g} s; it may be "
                                "overloaded — try again, or raise engine_options.timeout_s")
        if isinstance(exc, r.ConnectionError):
            cause = _reason(exc)
            return ServiceUnavailable(f"cannot reach the engine service at {where} ({cause}); {START_HINT}")
        if isinstance(exc, r.ChunkedEncodingError):
            return BackendError(f"the engine service at {where} dropped the connection during the job ({exc}); "
                                "a replica may have died — try again")
        return BackendError(f"the engine service at {where} failed: {exc}")


def _reason(exc: Exception) -> str:
    """'Connection refused' rather than urllib3's nested repr of the pool and the socket."""
    text = str(exc)
    for marker in ("Connection refused", "Name or service not known", "No route to host", "timed out",
                   "Temporary failure in name resolution", "Network is unreachable"):
        if marker in text:
            return marker.lower()
    return text[:200] or type(exc).__name__


class _CancelWatcher:
    """Closes the streaming response once `cancel()` is true, so Cancel works even while the job waits in the
    service's queue (no progress line arrives to notice it); the replica sees the client leave and stops."""

    def __init__(self, cancel: CancelFn, reply: Any, poll_s: float = 0.2) -> None:
        self._cancel, self._reply, self._poll_s = cancel, reply, poll_s
        self._done = threading.Event()
        threading.Thread(target=self._run, name="ray-serve-cancel", daemon=True).start()

    def _run(self) -> None:
        while not self._done.wait(self._poll_s):
            if self._cancel():
                self._reply.close()
                return

    def stop(self) -> None:
        self._done.set()
