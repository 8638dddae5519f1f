"""Drafts per minute from the built-in engine served on Ray Serve with 1, 2 and 4 replicas, and the latency
the service adds over drafting in-process. Prints a table.

    python benchmarks/serve.py                               # shipped weights, CPU, 1 torch thread per replica
    python benchmarks/serve.py --replicas 1 2 --drafts 8 --device cuda --gpus-per-replica 0.25

A local Ray cluster (engines.serve.local_cluster) is started on loopback with as many logical CPUs as the
largest replica count, so 4 replicas on a 2-core machine share its cores (that is the measurement: what
this machine gives). Throughput: `--drafts` drafts of the demo radiographs (different seeds) kept
`2 x replicas` in flight through the `ray-serve` backend (the workstation's client), after one warm-up draft
per replica. Added latency: median of `--latency-runs` single drafts through the service (1 replica, nothing
else in flight) minus the median of the same drafts made in-process with the same weights and 1 thread.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def demo_images() -> list:
    """The demo study radiographs (DX), decoded as the workstation decodes them for the engine."""
    from app.ai.study_images import load_study_images, order_for_engine

    files = sorted(p for p in (REPO / "resources" / "demo").rglob("IM*") if p.is_file())
    images = [im for im in order_for_engine(load_study_images(files)) if im.modality in ("DX", "CR")]
    if not images:
        raise SystemExit("no demo radiograph found under resources/demo")
    return [im.pixels for im in images]


def timed_draft(backend, image, seed: int, steps: int | None) -> float:
    t0 = time.perf_counter()
    backend.draft([image], seed=seed, steps=steps)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--replicas", type=int, nargs="+", default=[1, 2, 4])
    p.add_argument("--drafts", type=int, default=12, help="drafts per replica count (throughput)")
    p.add_argument("--latency-runs", type=int, default=5, help="single drafts for the added-latency median")
    p.add_argument("--model", default="", help="weights folder (default: the shipped weights)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--gpus-per-replica", type=float, default=0.0)
    p.add_argument("--steps", type=int, default=None, help="sampling steps (default: the model's)")
    p.add_argument("--address", default="", help="an existing Ray cluster (default: start one on loopback)")
    args = p.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    from engines.backends import create_backend
    from engines.serve.launch import ServeSpec, deploy, stop
    from engines.serve.local_cluster import LocalRayCluster

    images = demo_images()
    config = {"device": args.device, **({"path": args.model} if args.model else {})}

    local = create_backend("diffusion", **config)
    timed_draft(local, images[0], 0, args.steps)  # warm-up (first-call allocations, caches)
    in_process = [timed_draft(local, images[k % len(images)], k, args.steps) for k in range(args.latency_runs)]
    weights_hash, device = local.weights_hash, local.device
    local.close()
    del local

    cluster = None
    env_saved = {k: os.environ.get(k) for k in ("RAY_AUTH_MODE", "RAY_USAGE_STATS_ENABLED")}
    os.environ.update({"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"})
    import ray
    from ray import serve

    rows = []
    served_single: list[float] = []
    try:
        address = args.address
        if not address:
            gpus = int(torch.cuda.device_count()) if args.gpus_per_replica else 0
            cluster = LocalRayCluster(num_cpus=max(args.replicas), num_gpus=gpus,
                                      env={"PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))})
            t0 = time.perf_counter()
            address = cluster.start()
            print(f"(local Ray cluster up in {time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
        ray.init(address=address, log_to_driver=False, namespace="serve")
        port = 18000 + os.getpid() % 1000
        for n in args.replicas:
            spec = ServeSpec(model=args.model, device=args.device, replicas=n, threads=1, port=port,
                             cpus_per_replica=1.0, gpus_per_replica=args.gpus_per_replica)
            t0 = time.perf_counter()
            url = deploy(spec)
            ready_s = time.perf_counter() - t0
            served = create_backend("ray-serve", url=url)
            assert served.weights_hash == weights_hash, "the service loaded other weights"
            with ThreadPoolExecutor(n) as pool:  # warm-up: one draft per replica
                list(pool.map(lambda k, b=served: timed_draft(b, images[k % len(images)], 100 + k, args.steps), range(n)))
            if n == 1:
                served_single = [timed_draft(served, images[k % len(images)], k, args.steps)
                                 for k in range(args.latency_runs)]
            by: set[str] = set()

            def one(k: int, served=served, by=by) -> float:
                t = time.perf_counter()
                out = served.draft([images[k % len(images)]], seed=1000 + k, steps=args.steps)
                by.add(out.extra.get("served_by", ""))
                return time.perf_counter() - t

            t0 = time.perf_counter()
            with ThreadPoolExecutor(2 * n) as pool:
                lat = list(pool.map(one, range(args.drafts)))
            wall = time.perf_counter() - t0
            rows.append((n, len(by), args.drafts, wall, args.drafts / wall * 60, statistics.median(lat), ready_s))
            print(f"(replicas={n}: {args.drafts / wall * 60:.1f} drafts/min)", file=sys.stderr, flush=True)
            served.close()
        stop()
    finally:
        if ray.is_initialized():
            try:
                serve.shutdown()
            finally:
                ray.shutdown()
        if cluster is not None:
            cluster.stop()
        for k, v in env_saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"\nbenchmarks/serve.py  device={device} ({platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, load {load:.1f})  weights={weights_hash[:12]}  1 torch thread per replica")
    print(f"{'replicas':>8} {'used':>4} {'drafts':>6} {'wall s':>7} {'drafts/min':>10} {'median s/draft':>14} "
          f"{'deploy s':>8}")
    for n, used, drafts, wall, per_min, med, ready in rows:
        print(f"{n:>8} {used:>4} {drafts:>6} {wall:>7.1f} {per_min:>10.1f} {med:>14.2f} {ready:>8.1f}")
    if served_single:
        a, b = statistics.median(in_process), statistics.median(served_single)
        print(f"\nsingle draft, median of {args.latency_runs}: in-process {a:.3f} s, through Ray Serve (1 replica) "
              f"{b:.3f} s, added {1000 * (b - a):+.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
