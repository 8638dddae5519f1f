"""Which model made a what-if image, for its Secondary Capture header (never "model unknown")."""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path
from typing import Any


@functools.lru_cache(maxsize=8)
def _sha256(path: Path, size: int, mtime: int) -> str:  # size/mtime: a replaced file is hashed again
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def weights_sha256(folder: Path) -> str:
    weights = Path(folder) / "model.safetensors"
    if not weights.is_file():
        return ""
    st = weights.stat()
    return _sha256(weights, st.st_size, int(st.st_mtime))


def model_identity(runner: Any) -> str:
    """'<weights folder> weights sha256 <hash>' for the engine worker's weights; an in-process pipeline
    says its own weights hash; otherwise the runner's key (never empty when anything identifies it)."""
    runner = getattr(runner, "runner", runner)
    path = getattr(runner, "path", None)
    if path is not None:
        digest = weights_sha256(Path(path))
        name = Path(path).name or str(path)
        return f"{name} weights sha256 {digest}" if digest else name
    pipe = getattr(runner, "_pipe", None)
    digest = str(getattr(pipe, "weights_hash", "") or "")
    if digest:
        return f"weights {digest}"
    return str(getattr(runner, "key", "") or "")
