"""The one interface every engine backend implements, whatever model family sits behind it.

The worker calls only these methods, so swapping the built-in diffusion engine for a local VLM or a
diffusers pipeline is a settings change (`engine` key), never a code change (as diffusers swaps schedulers).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

import numpy as np

from engines.backends.errors import BackendError
from engines.backends.results import ImageOutput, TextOutput

ProgressFn = Callable[[int, int], None]
CancelFn = Callable[[], bool]

JOB_KINDS = ("draft", "answer", "synthesise", "inpaint", "explain")


class EngineBackend(ABC):
    """A loaded model that runs jobs. Jobs report progress as (done, total) and poll `cancel` between steps.

    Subclasses set `name`, `capabilities` (a subset of JOB_KINDS) and `supports_multi_image`, and override
    the job methods they support; the others raise a BackendError that names the engine and the job.
    """

    name: str = "backend"
    capabilities: frozenset[str] = frozenset()
    supports_multi_image: bool = False
    # True when jobs may run concurrently from several threads (a service that queues and spreads them, such
    # as the department's engine on Ray Serve); batch pre-drafting then keeps that many requests in flight.
    concurrent_jobs: bool = False

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """Name, device, model (path or id), weights hash and memory in use, for the status bar."""

    def draft(self, images: list[np.ndarray], *, steps: int | None = None, guidance: float | None = None,
              seed: int = 0, progress: ProgressFn | None = None, cancel: CancelFn | None = None) -> TextOutput:
        raise self._unsupported("draft")

    def answer(self, images: list[np.ndarray], question: str, *, steps: int | None = None, seed: int = 0,
               progress: ProgressFn | None = None, cancel: CancelFn | None = None) -> TextOutput:
        raise self._unsupported("answer")

    def synthesise(self, report: str, *, steps: int | None = None, guidance: float | None = None, seed: int = 0,
                   progress: ProgressFn | None = None, cancel: CancelFn | None = None) -> ImageOutput:
        raise self._unsupported("synthesise")

    def inpaint(self, image: np.ndarray, token_mask: np.ndarray, report: str, *, steps: int | None = None,
                guidance: float | None = None, seed: int = 0, progress: ProgressFn | None = None,
                cancel: CancelFn | None = None) -> ImageOutput:
        raise self._unsupported("inpaint")

    def explain(self, images: list[np.ndarray], text: str, *, progress: ProgressFn | None = None,
                cancel: CancelFn | None = None) -> dict[str, np.ndarray]:
        """Hook for the explain part: maps (name -> H x W float array) of what the model used for `text`."""
        raise self._unsupported("explain")

    def question_scope(self, question: str) -> Any:
        """Whether this engine has a basis to answer `question` (engines.qa.scope.QuestionScope). Engines that
        read a fixed list of findings narrow it to those; the default is the general rule."""
        from engines.qa.scope import question_scope

        return question_scope(question)

    def close(self) -> None:
        """Free the model; the worker calls it before exiting or switching engines."""
        return None

    def _unsupported(self, job: str) -> BackendError:
        can = ", ".join(sorted(self.capabilities)) or "nothing"
        return BackendError(f"the '{self.name}' engine cannot {job} (it can: {can}); choose another engine in Settings")


def check_images(images: list[np.ndarray]) -> list[np.ndarray]:
    """Validate up front: a non-empty list of 2D (grayscale) or 3D (H x W x 1/3) arrays."""
    if not images:
        raise BackendError("no image given: open a study with at least one image")
    out = []
    for i, img in enumerate(images):
        arr = np.asarray(img)
        if arr.ndim == 3 and arr.shape[-1] in (1, 3, 4):
            arr = arr[..., :3].mean(axis=-1) if arr.shape[-1] != 1 else arr[..., 0]
        if arr.ndim != 2 or min(arr.shape) < 8:
            raise BackendError(f"image {i} has shape {np.asarray(img).shape}; expected a 2D grayscale image")
        out.append(arr)
    return out
