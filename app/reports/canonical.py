"""Deterministic JSON bytes: the one form that is hashed and signed.

Sorted keys, no insignificant whitespace, UTF-8 without escaping, NFC-normalised strings: the same logical
content always gives the same bytes, on any machine and any Python version.
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from typing import Any


def _normalise(value: Any) -> Any:
    if isinstance(value, str):
        return unicodedata.normalize("NFC", value)
    if isinstance(value, dict):
        return {str(k): _normalise(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_normalise(v) for v in value]
    if isinstance(value, float) and not value.is_integer():
        raise TypeError("non-integral floats are not allowed in canonical content (use strings)")
    if value is None or isinstance(value, bool | int | float):
        return int(value) if isinstance(value, float) else value
    raise TypeError(f"cannot canonicalise a {type(value).__name__}")


def canonical_bytes(content: Any) -> bytes:
    """The canonical serialisation of JSON-like `content`."""
    return json.dumps(
        _normalise(content), sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
