"""One line for the status bar from the worker's status dict (device, model, memory, state)."""

from __future__ import annotations

from pathlib import PurePath
from typing import Any


def format_status(status: dict[str, Any]) -> str:
    name = status.get("name") or "engine"
    state = status.get("state", "stopped")
    if state == "error":
        return f"AI engine '{name}': {status.get('error', 'error')}"
    if state == "starting":
        return f"AI engine '{name}': starting..."
    if state == "stopped":
        note = status.get("error")
        return f"AI engine '{name}': stopped - {note}" if note else f"AI engine '{name}': idle (starts on first job)"
    parts = [f"AI engine '{name}'", str(status.get("device", "?"))]
    model = status.get("model")
    if model:
        parts.append(PurePath(str(model)).name or str(model))
    memory = status.get("memory") or {}
    if "rss_mb" in memory:
        parts.append(f"RAM {memory['rss_mb'] / 1024:.1f} GiB" if memory["rss_mb"] >= 1024 else f"RAM {memory['rss_mb']:.0f} MiB")
    if "device_allocated_mb" in memory:
        parts.append(f"GPU {memory['device_allocated_mb']:.0f}/{memory.get('device_total_mb', 0):.0f} MiB")
    parts.append("busy" if state == "busy" else "ready")
    return " | ".join(parts)
