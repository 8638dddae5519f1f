"""Device choice: CUDA when present, else CPU; any explicit torch device string overrides. CPU threads:
as many as the machine has idle cores, measured when the model loads.
"""

from __future__ import annotations

import math
import os

import torch

MAX_THREADS = 4


def threads_for_load(max_threads: int = MAX_THREADS, sample_s: float = 0.25) -> int:
    """Torch threads for the load measured now: the idle cores (CPU use over `sample_s`, and the 1-minute
    run queue, whichever leaves fewer), at least 1 and at most `max_threads`.

    On a busy 2-core workstation a draft at 2 threads was 4x slower and 4x more CPU-hungry than at 1
    (the OpenMP threads spin at barriers waiting for a core), so threads are only given where a core is free."""
    import psutil

    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    busy = psutil.cpu_percent(interval=sample_s) / 100.0 * (os.cpu_count() or cores)
    idle = cores - busy
    try:
        idle = min(idle, cores - os.getloadavg()[0])
    except OSError:  # no load average on this platform
        pass
    return max(1, min(max_threads, math.floor(idle + 0.5)))


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise ValueError(f"unknown device {device!r} (use 'auto', 'cpu', 'cuda' or 'cuda:N')") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available here")
    return dev
