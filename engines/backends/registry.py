"""Name -> factory registry of engine backends; `create_backend(settings['engine'], **config)` picks one.

Factories import their model libraries only when called, so listing or validating engine names (the
settings dialog, the app at start-up) never pays for torch/transformers imports.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from engines.backends.base import EngineBackend
from engines.backends.errors import BackendError

BackendFactory = Callable[..., EngineBackend]

_FACTORIES: dict[str, BackendFactory] = {}
_DESCRIPTIONS: dict[str, str] = {}


def register_backend(name: str, factory: BackendFactory | str, description: str = "") -> None:
    """Register `factory(**config) -> EngineBackend` under `name`; a "module:attr" string is imported lazily."""
    if not name or not name.strip():
        raise ValueError("backend name must be a non-empty string")
    _FACTORIES[name] = _lazy(factory) if isinstance(factory, str) else factory
    _DESCRIPTIONS[name] = description


def available_backends() -> dict[str, str]:
    """Registered names with a one-line description each (for settings and error messages)."""
    return dict(_DESCRIPTIONS)


def create_backend(name: str, **config: Any) -> EngineBackend:
    """Build the backend registered as `name`; unknown names and load problems raise BackendError."""
    if name not in _FACTORIES:
        known = ", ".join(sorted(_FACTORIES)) or "none"
        raise BackendError(f"unknown engine '{name}' (registered: {known}); fix the 'engine' setting")
    try:
        backend = _FACTORIES[name](**config)
    except BackendError:
        raise
    except TypeError as exc:
        raise BackendError(f"engine '{name}' does not accept these settings: {exc}") from exc
    if not isinstance(backend, EngineBackend):
        raise BackendError(f"engine '{name}' factory returned {type(backend).__name__}, not an EngineBackend")
    return backend


def _lazy(spec: str) -> BackendFactory:
    module_name, _, attr = spec.partition(":")

    def factory(**config: Any) -> EngineBackend:
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:  # e.g. transformers left out of the frozen bundle
            raise BackendError(
                f"this engine needs the Python package '{exc.name}', which this installation does not include"
            ) from exc
        return getattr(module, attr)(**config)

    return factory


register_backend("diffusion", "engines.backends.diffusion:MedimBackend",
                 "built-in discrete-diffusion engine (torch), default weights in resources/weights")
register_backend("diffusion-onnx", "engines.backends.diffusion:MedimOnnxBackend",
                 "built-in discrete-diffusion engine through onnxruntime")
register_backend("hf-vlm", "engines.backends.hf_vlm:HfVlmBackend",
                 "a transformers image-text-to-text model directory on local disk (drafts and questions)")
register_backend("diffusers-t2i", "engines.backends.diffusers_t2i:DiffusersT2IBackend",
                 "a diffusers text-to-image pipeline directory on local disk (synthesis)")
