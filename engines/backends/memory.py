"""Memory in use by this process and by its torch device, for the status bar."""

from __future__ import annotations

import os
import sys
from typing import Any

import psutil


def memory_report(device: str) -> dict[str, Any]:
    """Process RSS in MiB, and for a CUDA device the allocated / peak / total MiB on it."""
    out: dict[str, Any] = {"rss_mb": round(psutil.Process(os.getpid()).memory_info().rss / 2**20, 1)}
    if str(device).startswith("cuda") and "torch" in sys.modules:
        import torch

        if torch.cuda.is_available():
            dev = torch.device(device)
            out["device_allocated_mb"] = round(torch.cuda.memory_allocated(dev) / 2**20, 1)
            out["device_peak_mb"] = round(torch.cuda.max_memory_allocated(dev) / 2**20, 1)
            out["device_total_mb"] = round(torch.cuda.get_device_properties(dev).total_memory / 2**20, 1)
    return out


def resolve_device(device: str | None) -> str:
    """'auto' picks CUDA when present, else CPU; anything else is checked so a typo fails up front."""
    import torch

    from engines.backends.errors import BackendError

    want = (device or "auto").strip().lower()
    if want == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if want.startswith("cuda") and not torch.cuda.is_available():
        raise BackendError(f"device '{device}' was asked for but no CUDA GPU is available; use 'auto' or 'cpu'")
    try:
        torch.device(want)
    except RuntimeError as exc:
        raise BackendError(f"unknown device '{device}': use auto, cpu, cuda or cuda:N") from exc
    return want
