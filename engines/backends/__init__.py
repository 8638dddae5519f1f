"""Engine backends behind one interface, chosen by name from settings (see registry)."""

from engines.backends.base import JOB_KINDS, EngineBackend
from engines.backends.errors import BackendError
from engines.backends.registry import (
    EngineInfo,
    available_backends,
    create_backend,
    engine_catalogue,
    engine_info,
    register_backend,
)
from engines.backends.results import ImageOutput, TextOutput, TokenUncertainty

__all__ = [
    "JOB_KINDS",
    "BackendError",
    "EngineBackend",
    "EngineInfo",
    "ImageOutput",
    "TextOutput",
    "TokenUncertainty",
    "available_backends",
    "create_backend",
    "engine_catalogue",
    "engine_info",
    "register_backend",
]
