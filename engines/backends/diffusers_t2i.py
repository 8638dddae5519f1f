"""Third-party text-to-image synthesis from a diffusers pipeline directory kept on local disk.

Any `DiffusionPipeline.save_pretrained` folder whose pipeline takes a prompt (Stable Diffusion style,
e.g. a RoentGen-like CXR model) works; it is loaded with `local_files_only` so nothing is fetched.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from engines.backends.base import CancelFn, EngineBackend, ProgressFn
from engines.backends.errors import BackendError
from engines.backends.fingerprint import weights_fingerprint
from engines.backends.memory import memory_report, resolve_device
from engines.backends.results import ImageOutput
from engines.errors import JobCancelled


class DiffusersT2IBackend(EngineBackend):
    name = "diffusers-t2i"
    capabilities = frozenset({"synthesise"})

    def __init__(self, path: str | Path = "", device: str = "auto", steps: int = 25, guidance: float = 7.5,
                 height: int | None = None, width: int | None = None) -> None:
        self.path = _check_pipeline_dir(path)
        self.device = resolve_device(device)
        self.steps, self.guidance = int(steps), float(guidance)
        self.height, self.width = height, width
        from diffusers import DiffusionPipeline

        try:
            self.pipe = DiffusionPipeline.from_pretrained(self.path, local_files_only=True)
        except (OSError, ValueError, KeyError, TypeError, AttributeError, RuntimeError) as exc:
            raise BackendError(f"{self.path} could not be loaded as a diffusers pipeline: {exc}") from exc
        if not hasattr(self.pipe, "unet") and not hasattr(self.pipe, "transformer"):
            raise BackendError(f"{self.path} holds a {type(self.pipe).__name__}, not a text-to-image pipeline")
        self.pipe.to(self.device)
        self.pipe.set_progress_bar_config(disable=True)
        self.weights_hash = weights_fingerprint(self.path)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "device": self.device, "model": str(self.path),
                "pipeline": type(self.pipe).__name__, "weights_hash": self.weights_hash,
                "memory": memory_report(self.device), "capabilities": sorted(self.capabilities),
                "supports_multi_image": False}

    def synthesise(self, report: str, *, steps: int | None = None, guidance: float | None = None, seed: int = 0,
                   progress: ProgressFn | None = None, cancel: CancelFn | None = None) -> ImageOutput:
        import torch

        if not report or not report.strip():
            raise BackendError("the report to synthesise from is empty")
        n_steps = int(steps or self.steps)
        start = time.perf_counter()

        def on_step(pipe: Any, i: int, t: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
            if progress is not None:
                progress(i + 1, n_steps)
            if cancel is not None and cancel():
                raise JobCancelled("cancelled")
            return kwargs

        if progress is not None:
            progress(0, n_steps)
        extra = {k: v for k, v in (("height", self.height), ("width", self.width)) if v}
        generator = torch.Generator(device="cpu").manual_seed(int(seed))
        with torch.inference_mode():
            out = self.pipe(report.strip(), num_inference_steps=n_steps,
                            guidance_scale=self.guidance if guidance is None else float(guidance),
                            generator=generator, callback_on_step_end=on_step, output_type="np", **extra)
        rgb = np.asarray(out.images[0], dtype=np.float32)
        gray = rgb.mean(axis=-1) if rgb.ndim == 3 else rgb
        image = np.clip(gray * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return ImageOutput(image=image, steps=n_steps, seed=int(seed), elapsed_s=time.perf_counter() - start)

    def close(self) -> None:
        self.pipe = None


def _check_pipeline_dir(path: str | Path) -> Path:
    if not str(path).strip():
        raise BackendError("the diffusers-t2i engine needs 'engine_model_path': a local diffusers pipeline directory")
    p = Path(path).expanduser()
    if not p.is_dir():
        raise BackendError(f"pipeline directory {p} does not exist")
    index = p / "model_index.json"
    if not index.is_file():
        raise BackendError(f"{p} is not a diffusers pipeline directory (no model_index.json)")
    try:
        json.loads(index.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise BackendError(f"{index} cannot be read: {exc}") from exc
    return p
