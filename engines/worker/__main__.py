"""`python -m engines.worker [--jobs MODULE ...]`: serve the protocol on stdin/stdout (the app starts
this process). `--jobs` adds the job kinds a module offers (engines.worker.jobs), e.g. explanations."""

from __future__ import annotations

import argparse
import os
import sys


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="engines.worker", description=__doc__)
    p.add_argument("--jobs", action="append", default=[], metavar="MODULE",
                   help="module whose WORKER_JOBS this worker also serves (repeatable)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Keep the protocol channel private: anything a library prints to stdout goes to stderr instead.
    proto_out = os.fdopen(os.dup(sys.stdout.fileno()), "wb", buffering=0)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    sys.stdout = sys.stderr
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
    os.environ.setdefault("TQDM_DISABLE", "1")
    from engines.worker.jobs import load_job_modules
    from engines.worker.server import WorkerServer

    try:
        jobs = load_job_modules(args.jobs)
    except ValueError as exc:
        print(f"engine worker: {exc}", file=sys.stderr, flush=True)
        return 2
    return WorkerServer(sys.stdin.buffer, proto_out, jobs=jobs).serve()


if __name__ == "__main__":
    sys.exit(main())
