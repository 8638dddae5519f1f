"""The backbone's inference forwards through torch.compile (inductor, CPU), compiled in the background.

Why: at one thread the eager forward runs GELU (PyTorch's tanh-GELU kernel alone took ~17% of a sentence
forward), LayerNorm, the AdaLN modulation and the residual adds as separate passes over (B, 384, d) tensors
between the matrix products; inductor fuses them into C++ loops around the BLAS calls and, with `freezing`,
pre-packs the weights (1.2-1.4x per forward here, docs/engine_speed.md). The logits differ from eager in the
last bits (~1e-5), so the draft texts were checked unchanged on val (benchmarks/draft_agreement.py).

Compiling costs 10-30 s of CPU the first time (inductor's on-disk cache brings later starts to a few
seconds), so it never runs on the caller's thread: a call whose shape class has not been compiled yet runs
eagerly and asks a background thread to compile that class; later calls of the class run compiled. Calls
that need gradients, attentions or image embeddings, and calls on a GPU, always run eagerly. A compile that
fails (no C++ compiler, an unsupported op) is logged once and everything stays eager.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from pathlib import Path
from typing import Any

import torch

from engines.models.backbone import BackboneOutput, MedimBackbone

log = logging.getLogger(__name__)

# inductor options: weights folded in as constants (inference only: calls with gradients stay eager), one
# compile process (a 2-core workstation drafts while it compiles).
_OPTIONS = {"freezing": True, "compile_threads": 1}
_STOP = object()


def default_cache_dir() -> Path:
    """Per-user folder for inductor's compiled kernels (its default under /tmp is lost on reboot)."""
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "radstation" / "inductor"


def _forward(model: MedimBackbone, text_ids: torch.Tensor, image_ids: torch.Tensor, t: torch.Tensor,
             finding_states: torch.Tensor | None = None, heads: str = "both",
             text_rows: torch.Tensor | None = None) -> tuple[torch.Tensor | None, ...]:
    out = model(text_ids, image_ids, t, finding_states=finding_states, heads=heads, text_rows=text_rows)
    return out.text_logits, out.image_logits, out.finding_logits


class CompiledBackbone:
    """Callable like MedimBackbone(text_ids, image_ids, t, **kw) -> BackboneOutput; compiled where it can be."""

    COMPILED_KW = frozenset({"finding_states", "heads", "text_rows"})

    def __init__(self, model: MedimBackbone, options: dict[str, Any] | None = None) -> None:
        """`options`: inductor settings over the defaults. The kernels are cached on disk in TORCHINDUCTOR_CACHE_DIR
        (set to default_cache_dir() when the environment does not say)."""
        self.model, self.config = model, model.config
        self.error: str | None = None  # why compiling failed (then every call runs eagerly)
        os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(default_cache_dir()))
        self._compiled = torch.compile(lambda *a, **kw: _forward(model, *a, **kw), dynamic=True,
                                       options={**_OPTIONS, **(options or {})})
        self._ready: set[tuple] = set()
        self._asked: set[tuple] = set()
        self._retried: set[tuple] = set()
        self._pending = 0
        self._closing = False
        self._idle = threading.Condition()
        self._queue: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._work, name="backbone-compile", daemon=True)
        self._thread.start()

    # -- calls --------------------------------------------------------------------------------------
    @staticmethod
    def _key(text_ids: torch.Tensor, kw: dict[str, Any]) -> tuple:
        """The shape class one compiled graph serves: dynamic sizes are specialised at 1 (batch, rows)."""
        rows = kw.get("text_rows")
        return (min(int(text_ids.shape[0]), 2), None if rows is None else min(len(rows), 2),
                kw.get("finding_states") is not None, kw.get("heads", "both"))

    def _compilable(self, text_ids: torch.Tensor, image_ids: torch.Tensor | None, kw: dict[str, Any],
                    grad: bool | None = None) -> bool:
        grad = torch.is_grad_enabled() if grad is None else grad
        return (self.error is None and image_ids is not None and not grad
                and set(kw) <= self.COMPILED_KW and text_ids.device.type == "cpu")

    def __call__(self, text_ids: torch.Tensor, image_ids: torch.Tensor | None, t: torch.Tensor,
                 **kw: Any) -> BackboneOutput:
        if not self._compilable(text_ids, image_ids, kw):
            return self.model(text_ids, image_ids, t, **kw)
        key = self._key(text_ids, kw)
        if key in self._ready:
            return self._output(text_ids, image_ids, t, kw)
        if key not in self._asked:
            self._ask(key, text_ids, image_ids, t, kw)
        return self.model(text_ids, image_ids, t, **kw)

    def _output(self, text_ids: torch.Tensor, image_ids: torch.Tensor, t: torch.Tensor,
                kw: dict[str, Any]) -> BackboneOutput:
        text_logits, image_logits, findings = self._compiled(text_ids, image_ids, t, **kw)
        return BackboneOutput(text_logits, image_logits, None, findings)

    # -- background compiling ---------------------------------------------------------------------
    def _ask(self, key: tuple, text_ids: torch.Tensor, image_ids: torch.Tensor, t: torch.Tensor,
             kw: dict[str, Any]) -> None:
        self._asked.add(key)
        sample = (text_ids.clone(), image_ids.clone(), t.clone(),
                  {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in kw.items()})
        with self._idle:
            self._pending += 1
        log.info("engine backend 'compiled': compiling the backbone for %s in the background", key)
        self._queue.put((key, sample))

    def _work(self) -> None:
        try:  # Linux: this thread only, so drafting keeps the core while it compiles
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 15)
        except (AttributeError, OSError):
            pass
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            key, (text_ids, image_ids, t, kw) = item
            try:
                if self.error is None and not self._closing:
                    with torch.no_grad():
                        self._compiled(text_ids, image_ids, t, **kw)
                    self._ready.add(key)
            except Exception as exc:  # noqa: BLE001 - no C++ compiler, an op inductor cannot lower: stay eager
                why = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
                if key not in self._retried:  # a trace disturbed by global state (module hooks) may pass again
                    self._retried.add(key)
                    log.info("engine backend 'compiled': compiling %s failed (%s), trying once more", key, why)
                    with self._idle:
                        self._pending += 1
                    self._queue.put(item)
                else:
                    self.error = why
                    log.warning("engine backend 'compiled' unavailable (%s): running the torch backbone", why)
            finally:
                with self._idle:
                    self._pending -= 1
                    self._idle.notify_all()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until every shape class asked for so far is compiled (or failed); False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)

    @property
    def compiled_classes(self) -> frozenset[tuple]:
        return frozenset(self._ready)

    def warm(self, text_ids: torch.Tensor, image_ids: torch.Tensor, t: torch.Tensor, **kw: Any) -> None:
        """Ask for the shape class of this call (made without gradients) to be compiled in the background."""
        if self._compilable(text_ids, image_ids, kw, grad=False) and self._key(text_ids, kw) not in self._asked:
            self._ask(self._key(text_ids, kw), text_ids, image_ids, t, kw)

    def close(self, timeout: float = 60.0) -> None:
        """Stop the background thread after the compile it is in (inductor cannot be interrupted); the shape
        classes still queued are dropped."""
        self._closing = True
        self._queue.put(_STOP)
        self._thread.join(timeout)
