"""A cheap, stable fingerprint of a weights directory, so every draft records which weights made it."""

from __future__ import annotations

import hashlib
from pathlib import Path

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".onnx", ".ckpt")
_CHUNK = 1 << 20


def weights_fingerprint(path: Path) -> str:
    """sha256 over each weights file's relative name, size and first and last MiB (hashing GBs would stall start-up)."""
    path = Path(path)
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in WEIGHT_SUFFIXES)
    digest = hashlib.sha256()
    for file in files:
        size = file.stat().st_size
        digest.update(f"{file.relative_to(path).as_posix()}:{size}".encode())
        with file.open("rb") as fh:
            digest.update(fh.read(_CHUNK))
            if size > 2 * _CHUNK:
                fh.seek(size - _CHUNK)
                digest.update(fh.read(_CHUNK))
    return digest.hexdigest()[:16]
