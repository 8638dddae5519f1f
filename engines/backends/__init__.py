"""Engine backends behind one interface, chosen by name from settings (see registry)."""

from engines.backends.base import JOB_KINDS, EngineBackend
from engines.backends.errors import BackendError, JobCancelled
from engines.backends.registry import available_backends, create_backend, register_backend
from engines.backends.results import ImageOutput, TextOutput, TokenUncertainty

__all__ = [
    "JOB_KINDS",
    "BackendError",
    "EngineBackend",
    "ImageOutput",
    "JobCancelled",
    "TextOutput",
    "TokenUncertainty",
    "available_backends",
    "create_backend",
    "register_backend",
]
