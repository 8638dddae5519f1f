"""Errors every backend raises, so the worker and the UI can tell a user's problem from a bug."""

from __future__ import annotations

import sys


class BackendError(RuntimeError):
    """A backend cannot be created or cannot run a job: the message is shown to the user as is."""


class ServiceUnavailable(BackendError):
    """A served engine cannot be reached or has nothing deployed: every further job would fail the same way
    until it is back, so a batch stops at the first one instead of repeating the message for each study."""


# what torch's untyped allocator failures say: MPS / older CUDA ("... out of memory"), the CPU allocator
# ("DefaultCPUAllocator: can't allocate memory"), and onnxruntime ("Failed to allocate memory")
_ALLOCATOR_MESSAGES = ("out of memory", "failed to allocate", "can't allocate memory")


def is_out_of_memory(exc: BaseException) -> bool:
    """MemoryError, torch's OutOfMemoryError (CUDA), or a RuntimeError whose message says an allocator ran out
    (MPS and torch's CPU allocator raise plain RuntimeErrors: torch gives them no type of their own)."""
    if isinstance(exc, MemoryError):
        return True
    torch = sys.modules.get("torch")  # a job that never imported torch cannot have hit its allocator
    if torch is not None:
        oom = getattr(torch, "OutOfMemoryError", None) or torch.cuda.OutOfMemoryError  # top-level since torch 2.5
        if isinstance(exc, oom):
            return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and any(m in text for m in _ALLOCATOR_MESSAGES)
