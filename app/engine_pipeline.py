"""One in-process engine shared by the explain panel and the what-if view.

Drafts and questions run in the engine worker process; explanations and counterfactuals need gradients
and attention tensors from the same model, so these views load it once here, lazily, in their own worker
thread (the factory is only ever called off the GUI thread).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from app.settings import Settings
from engines.default_weights import DEFAULT_WEIGHTS


class SharedPipeline:
    """A callable factory: the first call loads the weights, later calls return the same pipeline."""

    def __init__(self, path: Path | str | None = None, device: str = "auto") -> None:
        self.path = Path(path) if path else DEFAULT_WEIGHTS
        self.device = device or "auto"
        self._pipeline: Any = None
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> SharedPipeline:
        """The built-in engine's weights: the configured model folder when the diffusion engine is
        chosen, else the shipped default weights (third-party engines have no maps of their own)."""
        engine = str(settings.get("engine", "diffusion") or "diffusion")
        path = settings.get("engine_model_path", "") if engine.startswith("diffusion") else ""
        return cls(path or None, str(settings.get("engine_device", "auto") or "auto"))

    @property
    def key(self) -> str:
        """Identifies the weights for caches: path plus the checkpoint's size and time."""
        weights = self.path / "model.safetensors"
        stat = weights.stat() if weights.exists() else None
        return f"{self.path}:{stat.st_size}:{int(stat.st_mtime)}" if stat else str(self.path)

    def __call__(self) -> Any:
        with self._lock:
            if self._pipeline is None:
                from engines.pipeline import MedimPipeline

                self._pipeline = MedimPipeline.from_pretrained(self.path, device=self.device)
            return self._pipeline
