"""A model served elsewhere behind an OpenAI-compatible API (vLLM, TGI, llama.cpp, `transformers serve`).

Drafts and answers are chat completions with the study's images attached as PNG data URLs, through the
`openai` client (TLS with the site's CA bundle; a bearer token read from the OS keyring, never from the
settings file). Capabilities are reported honestly: a served VLM drafts and answers, nothing else, so
the app offers no maps or what-if for it. Token confidences come from `logprobs` when the server returns
them; when it does not, the output says so (no invented numbers). Every failure of the server or the
network becomes a BackendError whose message says what to do.
"""

from __future__ import annotations

import base64
import io
import math
import time
from typing import Any
from urllib.parse import urlparse

import numpy as np

from engines.backends.base import CancelFn, EngineBackend, ProgressFn, check_images
from engines.backends.errors import BackendError
from engines.backends.results import TextOutput, TokenUncertainty, mean_confidence, tokens_by_section
from engines.data.images import to_uint8
from engines.errors import JobCancelled

KEYRING_SERVICE = "radstation-engine"
DRAFT_PROMPT = (
    "You are a radiologist. Write the report for this chest radiograph with two sections, "
    "'Findings:' and 'Impression:'."
)
ANSWER_PROMPT = "Answer the question about this chest radiograph briefly. Question: {question}"


def token_from_keyring(url: str, name: str = "") -> str | None:
    """The bearer token stored for this server (`radstation engine token URL`), or None."""
    try:
        import keyring
        from keyring.errors import KeyringError
    except ImportError as exc:
        raise BackendError("the openai-compatible engine needs the 'keyring' package "
                           "(pip install 'radstation[served]')") from exc
    try:
        return keyring.get_password(KEYRING_SERVICE, name or url)
    except KeyringError as exc:
        raise BackendError(f"cannot read the engine server's token from the keyring: {exc}") from exc


def _png_data_url(image: np.ndarray) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(to_uint8(image)).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


class OpenAICompatibleBackend(EngineBackend):
    name = "openai-compatible"
    capabilities = frozenset({"draft", "answer"})

    def __init__(self, url: str = "", model: str = "", *, device: str = "remote", token_name: str = "",
                 tls_ca: str = "", timeout_s: float = 120.0, max_new_tokens: int = 256,
                 answer_max_new_tokens: int = 32, multi_image: bool = True, draft_prompt: str = DRAFT_PROMPT,
                 answer_prompt: str = ANSWER_PROMPT, logprobs: bool = True, path: str = "",
                 threads: int = 0) -> None:
        del device, path, threads  # settings every backend is given; the model runs on the server
        parsed = urlparse(url or "")
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise BackendError(f"the openai-compatible engine needs a server URL such as https://gpu-server:8000/v1 "
                               f"(engine_options.url); got {url!r}")
        if not model:
            raise BackendError("the openai-compatible engine needs the served model's name (engine_options.model)")
        try:
            import openai
        except ImportError as exc:
            raise BackendError("the openai-compatible engine needs the 'openai' package "
                               "(pip install 'radstation[served]')") from exc
        self.url, self.model = url.rstrip("/"), model
        self.max_new_tokens, self.answer_max_new_tokens = int(max_new_tokens), int(answer_max_new_tokens)
        self.supports_multi_image = bool(multi_image)
        self.draft_prompt, self.answer_prompt, self.logprobs = draft_prompt, answer_prompt, bool(logprobs)
        self.timeout_s = float(timeout_s)
        token = token_from_keyring(self.url, token_name)
        verify: Any = tls_ca or True
        self._openai = openai
        self.client = openai.OpenAI(base_url=self.url, api_key=token or "none", max_retries=0,
                                    timeout=self.timeout_s, http_client=openai.DefaultHttpxClient(verify=verify))
        self.has_token = token is not None
        self._check_model()

    # -- the EngineBackend interface ---------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "device": f"served by {urlparse(self.url).netloc}", "model": self.model,
                "server": self.url, "weights_hash": f"served:{self.model}", "memory": {},
                "capabilities": sorted(self.capabilities), "supports_multi_image": self.supports_multi_image,
                "tls": self.url.startswith("https://"), "token": "from keyring" if self.has_token else "none"}

    def draft(self, images: list[np.ndarray], *, steps: int | None = None, guidance: float | None = None,
              seed: int = 0, progress: ProgressFn | None = None, cancel: CancelFn | None = None) -> TextOutput:
        return self._chat(images, self.draft_prompt, steps or self.max_new_tokens, seed, progress, cancel, "report")

    def answer(self, images: list[np.ndarray], question: str, *, steps: int | None = None, seed: int = 0,
               progress: ProgressFn | None = None, cancel: CancelFn | None = None) -> TextOutput:
        if not question or not question.strip():
            raise BackendError("the question is empty")
        prompt = self.answer_prompt.format(question=question.strip())
        return self._chat(images, prompt, steps or self.answer_max_new_tokens, seed, progress, cancel, "answer")

    def close(self) -> None:
        self.client.close()

    # -- internals ---------------------------------------------------------------------------------------
    def _check_model(self) -> None:
        try:
            served = [m.id for m in self.client.models.list()]
        except self._openai.APIError as exc:
            raise self._explain(exc) from exc
        if served and self.model not in served:
            raise BackendError(f"the engine server at {self.url} does not serve model '{self.model}' "
                               f"(it serves: {', '.join(served)}); fix engine_options.model")

    def _chat(self, images: list[np.ndarray], prompt: str, max_new: int, seed: int, progress: ProgressFn | None,
              cancel: CancelFn | None, mode: str) -> TextOutput:
        start = time.perf_counter()
        arrays = check_images(images)
        used = list(range(len(arrays))) if self.supports_multi_image else [0]
        content: list[dict[str, Any]] = [{"type": "image_url", "image_url": {"url": _png_data_url(arrays[i])}}
                                         for i in used]
        content.append({"type": "text", "text": prompt})
        if cancel is not None and cancel():
            raise JobCancelled("cancelled")
        if progress is not None:
            progress(0, max_new)
        kwargs: dict[str, Any] = {"model": self.model, "messages": [{"role": "user", "content": content}],
                                  "max_tokens": max_new, "temperature": 0.0, "seed": seed}
        if self.logprobs:
            kwargs["logprobs"] = True
        try:
            reply = self.client.chat.completions.create(**kwargs)
        except self._openai.APIError as exc:
            raise self._explain(exc) from exc
        if cancel is not None and cancel():
            raise JobCancelled("cancelled")
        if not reply.choices:
            raise BackendError(f"the engine server at {self.url} returned no answer")
        choice = reply.choices[0]
        text = choice.message.content or ""
        spans = _logprob_spans(choice)
        n_tokens = (reply.usage.completion_tokens if reply.usage else None) or len(spans)
        if progress is not None:
            progress(max_new, max_new)
        elapsed = time.perf_counter() - start
        extra = {"server": self.url, "served_model": reply.model or self.model,
                 "token_confidence": "logprobs" if spans else "not provided by the server"}
        confidence = mean_confidence([c for _s, _e, c, _h, _k in spans]) if spans else float("nan")
        if mode == "answer":
            lead = len(text) - len(text.lstrip())
            text = text.strip()
            tokens = [TokenUncertainty(text[max(s - lead, 0):e - lead], c, h, "answer", max(s - lead, 0), e - lead, k)
                      for s, e, c, h, k in spans if e - lead > 0 and text[max(s - lead, 0):e - lead].strip()]
            return TextOutput(text=text, tokens=tokens, confidence=confidence, steps=n_tokens, seed=seed,
                              elapsed_s=elapsed, images_used=used, extra=extra)
        findings, impression, tokens = tokens_by_section(text, spans)
        return TextOutput(text=text, findings=findings, impression=impression, tokens=tokens, confidence=confidence,
                          steps=n_tokens, seed=seed, elapsed_s=elapsed, images_used=used, extra=extra)

    def _explain(self, exc: Exception) -> BackendError:
        """One clear sentence per failure: what happened at which server, and what to do."""
        o, where = self._openai, self.url
        if isinstance(exc, o.APITimeoutError):
            return BackendError(f"the engine server at {where} did not answer within {self.timeout_s:g} s; "
                                "it may be overloaded — try again, or raise engine_options.timeout_s")
        if isinstance(exc, o.APIConnectionError):
            cause = exc.__cause__ or exc
            if "CERTIFICATE_VERIFY_FAILED" in str(cause) or "certificate" in str(cause).lower():
                return BackendError(f"the TLS certificate of the engine server at {where} is not trusted ({cause}); "
                                    "set engine_options.tls_ca to the site's CA bundle")
            return BackendError(f"cannot reach the engine server at {where} ({cause}); is it running and is "
                                "the address right?")
        if isinstance(exc, o.AuthenticationError | o.PermissionDeniedError):
            return BackendError(f"the engine server at {where} refused the token (HTTP {exc.status_code}); store "
                                f"the right one with `radstation engine token {where}`")
        if isinstance(exc, o.NotFoundError):
            return BackendError(f"the engine server at {where} has no model '{self.model}' or no chat endpoint "
                                f"(HTTP 404: {_short(exc)}); check engine_options.model and the URL (…/v1)")
        if isinstance(exc, o.APIStatusError):
            return BackendError(f"the engine server at {where} failed (HTTP {exc.status_code}: {_short(exc)})")
        return BackendError(f"the engine server at {where} failed: {exc}")


def _short(exc: Exception) -> str:
    text = str(getattr(exc, "message", "") or exc)
    return text if len(text) < 300 else text[:300] + "…"


def _logprob_spans(choice: Any) -> list[tuple[int, int, float, float, int]]:
    """(start, end, confidence, entropy, index) per generated token from the server's logprobs, if any."""
    content = getattr(getattr(choice, "logprobs", None), "content", None) or []
    spans, pos = [], 0
    for k, item in enumerate(content):
        piece = item.token or ""
        p = math.exp(item.logprob) if item.logprob is not None and item.logprob > -1e4 else 0.0
        alts = [math.exp(t.logprob) for t in (item.top_logprobs or []) if t.logprob is not None]
        entropy = -sum(q * math.log(q) for q in alts if q > 0) if alts else -(p * math.log(p)) if p > 0 else 0.0
        spans.append((pos, pos + len(piece), p, entropy, k))
        pos += len(piece)
    return spans
