"""`python -m engines.worker`: serve the protocol on stdin/stdout (the app starts this process)."""

from __future__ import annotations

import os
import sys


def main() -> int:
    # Keep the protocol channel private: anything a library prints to stdout goes to stderr instead.
    proto_out = os.fdopen(os.dup(sys.stdout.fileno()), "wb", buffering=0)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    sys.stdout = sys.stderr
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
    os.environ.setdefault("TQDM_DISABLE", "1")
    from engines.worker.server import WorkerServer

    return WorkerServer(sys.stdin.buffer, proto_out).serve()


if __name__ == "__main__":
    sys.exit(main())
