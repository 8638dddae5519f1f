"""Errors every backend raises, so the worker and the UI can tell a user's problem from a bug."""

from __future__ import annotations


class BackendError(RuntimeError):
    """A backend cannot be created or cannot run a job: the message is shown to the user as is."""


class ServiceUnavailable(BackendError):
    """A served engine cannot be reached or has nothing deployed: every further job would fail the same way
    until it is back, so a batch stops at the first one instead of repeating the message for each study."""


def is_out_of_memory(exc: BaseException) -> bool:
    """MemoryError, torch's OutOfMemoryError (CUDA/MPS) or a RuntimeError that says the allocator ran out."""
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "failed to allocate" in text)
