"""Similar-case search speed: build a CaseIndex of N synthetic unit-norm embeddings (the engine's size, 160)
and time K-nearest queries. Prints a markdown table (median and 95th percentile per query, build time).

    python benchmarks/similar.py [--sizes 10000 100000] [--dim 160] [--k 10] [--queries 200] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time

import numpy as np


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    p.add_argument("--dim", type=int, default=160)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--queries", type=int, default=200)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    import faiss

    from engines.similar import CaseIndex, CaseRecord

    faiss.omp_set_num_threads(a.threads)
    rng = np.random.default_rng(0)
    rows = []
    for n in a.sizes:
        vecs = rng.standard_normal((n, a.dim)).astype(np.float32)
        records = [CaseRecord(f"case-{i}", "Heart size is normal.", "No acute abnormality.", "site", {"No Finding": 1})
                   for i in range(n)]
        t0 = time.perf_counter()
        idx = CaseIndex(a.dim)
        for s in range(0, n, 10_000):
            idx.add(records[s:s + 10_000], vecs[s:s + 10_000])
        build = time.perf_counter() - t0
        with tempfile.TemporaryDirectory() as d:
            t0 = time.perf_counter()
            idx.save(d)
            CaseIndex.load(d)
            io = time.perf_counter() - t0
        queries = rng.standard_normal((a.queries, a.dim)).astype(np.float32)
        idx.search(queries[0], a.k)  # warm-up
        times, cpu = [], []
        for q in queries:
            t0, c0 = time.perf_counter(), time.process_time()
            hits = idx.search(q, a.k)
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
            assert len(hits) == a.k
        times.sort()
        rows.append((n, statistics.median(times) * 1000, times[int(0.95 * (len(times) - 1))] * 1000,
                     statistics.median(cpu) * 1000, build, io))
    print(f"\nCaseIndex (FAISS IndexFlatIP, exact; SQLite metadata), dim {a.dim}, k {a.k}, {a.queries} queries, "
          f"{a.threads} thread(s), host {platform.processor() or platform.machine()}, faiss {faiss.__version__}\n")
    load = os.getloadavg()[0]
    print(f"(load average {load:.1f} on {os.cpu_count()} CPUs at the end: wall times include waiting for a CPU; "
          "the CPU time is the query's own cost)\n")
    print("| indexed studies | median query ms (wall) | p95 query ms (wall) | median query CPU ms | build s | "
          "save+load s |")
    print("|---:|---:|---:|---:|---:|---:|")
    for n, med, p95, cpu_ms, build, io in rows:
        print(f"| {n:,} | {med:.2f} | {p95:.2f} | {cpu_ms:.2f} | {build:.1f} | {io:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
