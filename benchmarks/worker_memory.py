"""Memory of the engine worker(s) with the shipped weights: one worker for every job (now) vs the previous
layout, a drafting worker plus a second worker loading the same weights for explanations and what-if.

Both layouts are started with today's client (engines.worker.client) so only the number of processes
differs. Each drafts once and explains once (k_drafts=1, few steps: memory, not speed, is measured); the
resident set (RSS) and unique set (USS, memory no other process shares) of every worker process are read
with psutil after the jobs. Prints a table; `--repeat N` runs each layout N times and reports medians.

    python benchmarks/worker_memory.py [--device cpu] [--repeat 1]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import psutil  # noqa: E402

from app.model_runner import JOB_MODULES  # noqa: E402
from engines.default_weights import DEFAULT_WEIGHTS  # noqa: E402
from engines.worker.client import WorkerClient  # noqa: E402
from engines.worker.requests import DraftRequest, ExplainStudyRequest  # noqa: E402

IMAGE = (np.random.default_rng(0).random((256, 256)) * 255).astype(np.uint8)
DRAFT = DraftRequest(images=(IMAGE,), seed=1, steps=4, override_scope=True)
EXPLAIN = ExplainStudyRequest(images=(IMAGE,), text="Heart size normal. No pleural effusion.", draft=None, k_drafts=1,
                              steps=4, ig_steps=2, override_scope=True)


def _mib(pid: int) -> tuple[float, float]:
    info = psutil.Process(pid).memory_full_info()
    return info.rss / 2**20, info.uss / 2**20


def run_layout(two_workers: bool, device: str) -> dict[str, float]:
    config = {"path": str(DEFAULT_WEIGHTS), "device": device, "threads": 1}
    drafting = WorkerClient("diffusion", config, jobs=() if two_workers else JOB_MODULES)
    explaining = WorkerClient("diffusion", config, jobs=JOB_MODULES) if two_workers else drafting
    t0 = time.perf_counter()
    try:
        drafting.start(timeout=600)
        drafting.run(DRAFT, timeout=600)
        explaining.run(EXPLAIN, timeout=900)
        pids = sorted({p for p in (drafting.pid, explaining.pid) if p is not None})
        sizes = [_mib(p) for p in pids]
    finally:
        drafting.close()
        if explaining is not drafting:
            explaining.close()
    return {"processes": len(pids), "rss": sum(r for r, _ in sizes), "uss": sum(u for _, u in sizes),
            "seconds": time.perf_counter() - t0}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--repeat", type=int, default=1)
    args = p.parse_args(argv)
    if not (DEFAULT_WEIGHTS / "model.safetensors").exists():
        print(f"no shipped weights at {DEFAULT_WEIGHTS}", file=sys.stderr)
        return 1
    rows = []
    for label, two in (("previous: drafting worker + explain/what-if worker", True),
                       ("now: one worker for every job", False)):
        runs = [run_layout(two, args.device) for _ in range(args.repeat)]
        rows.append((label, runs[0]["processes"], *(statistics.median(r[k] for r in runs)
                                                    for k in ("rss", "uss", "seconds"))))
    print(f"weights: {DEFAULT_WEIGHTS} ({(DEFAULT_WEIGHTS / 'model.safetensors').stat().st_size / 2**20:.1f} MiB "
          f"model.safetensors); device {args.device}; median of {args.repeat} run(s); after one draft and one "
          f"explanation")
    print("| layout | worker processes | RSS MiB (sum) | USS MiB (sum) | wall s |\n| --- | ---: | ---: | ---: | ---: |")
    for label, n, rss, uss, secs in rows:
        print(f"| {label} | {n} | {rss:.0f} | {uss:.0f} | {secs:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
