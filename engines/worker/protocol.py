"""The worker's wire format: one JSON object per line over stdin/stdout, numpy arrays as base64 blocks.

JSON (not pickle) so a crashed or foreign process can never make the app execute code, and so a human
can read a captured session. Messages, app -> worker:
  {"type": "load", "backend": name, "config": {...}}   {"type": "job", "id", "kind", "params": {...}}
  {"type": "cancel", "id"}   {"type": "status"}   {"type": "shutdown"}
worker -> app:
  {"type": "ready", "status"}  {"type": "load_failed", "message"}  {"type": "progress", "id", "done", "total"}
  {"type": "result", "id", "result"}  {"type": "error", "id", "kind", "message"}  {"type": "cancelled", "id"}
  {"type": "status", "status"}
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import numpy as np

PROTOCOL_VERSION = 1
MAX_LINE_BYTES = 512 * 2**20


class ProtocolError(ValueError):
    """A line that is not a protocol message (a bug or a stray print, never user input)."""


def _default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        arr = np.ascontiguousarray(obj)
        return {"__ndarray__": base64.b64encode(arr.tobytes()).decode("ascii"), "dtype": arr.dtype.str,
                "shape": list(arr.shape)}
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    raise TypeError(f"cannot send {type(obj).__name__} to/from the engine worker")


_PLAIN_DTYPE = re.compile(r"[<>|=]?([biufc][0-9]{1,2}|[SU][0-9]{1,6})")


def _hook(obj: dict[str, Any]) -> Any:
    if "__ndarray__" in obj:
        # A malformed block (found by fuzzing: a missing "dtype" raised KeyError) is a protocol error.
        # Only plain numeric dtypes travel: numpy parses anything else as a structured-dtype mini-language
        # (found by fuzzing: '(,)i4' reached ast.literal_eval and raised SyntaxError).
        try:
            if not isinstance(obj["dtype"], str) or not _PLAIN_DTYPE.fullmatch(obj["dtype"]):
                raise ValueError(f"unsupported array dtype {str(obj['dtype'])[:40]!r}")
            dtype = np.dtype(obj["dtype"])
            data = base64.b64decode(obj["__ndarray__"])
            return np.frombuffer(data, dtype=dtype).reshape(obj["shape"]).copy()
        except (KeyError, TypeError, ValueError, OverflowError, MemoryError) as exc:
            raise ProtocolError(f"malformed array in a worker message: {exc}"[:200]) from exc
    return obj


def encode(message: dict[str, Any]) -> bytes:
    """One message as a newline-terminated UTF-8 JSON line."""
    return json.dumps(message, default=_default, separators=(",", ":")).encode("utf-8") + b"\n"


def decode(line: bytes | str) -> dict[str, Any]:
    """Parse one line; anything that is not a JSON object with a 'type' raises ProtocolError."""
    try:
        msg = json.loads(line, object_hook=_hook)
    except (ValueError, TypeError) as exc:
        raise ProtocolError(f"not a worker message: {str(line)[:120]!r}") from exc
    if not isinstance(msg, dict) or "type" not in msg:
        raise ProtocolError(f"not a worker message: {str(line)[:120]!r}")
    return msg
