"""Similar-case search speed: build a CaseIndex of N synthetic unit-norm embeddings (the engine's size, 160)
and time K-nearest queries. Prints a markdown table (median and 95th percentile per query, build time).

    python benchmarks/similar.py [--sizes 10000 100000] [--dim 160] [--k 10] [--queries 200] [--threads 1]
    python benchmarks/similar.py --backend both --url postgresql://USER@HOST:PORT/DB   # FAISS and pgvector

`--backend pgvector` times the department index (engines/similar/pg_index.py: PostgreSQL, HNSW cosine) in the
database at `--url` (pgvector installed); its rows go under the embedder name "benchmark-synthetic" and are
deleted at the end. For pgvector the table also gives recall@K against the exact answer (HNSW is
approximate) per HNSW candidate-list size (`--ef-search`, the recall/speed knob), and the build: rows added in
chunks of 5,000, then the HNSW index built once (as an admin loads an archive), or with `--incremental` the
index kept up to date row by row, as signing fills it.
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
    p.add_argument("--backend", choices=("faiss", "pgvector", "both"), default="faiss")
    p.add_argument("--url", default="", help="PostgreSQL URL for --backend pgvector/both")
    p.add_argument("--like", default="",
                   help="an .npz with real embeddings (key 'emb', e.g. radstation-eval's embeddings_train_*.npz): "
                        "draw the synthetic ones from a Gaussian with their mean and covariance instead of N(0, I)")
    p.add_argument("--incremental", action="store_true",
                   help="pgvector: add rows with the HNSW index in place (as signing does) instead of building it after")
    p.add_argument("--ef-search", type=int, nargs="+", default=None,
                   help="pgvector HNSW candidate list sizes to time (default: the index's own)")
    a = p.parse_args(argv)
    if a.backend != "faiss" and not a.url:
        p.error("--backend pgvector needs --url postgresql://...")
    if a.like:
        real = np.load(a.like)["emb"].astype(np.float64)
        a.dim = real.shape[1]
        a.sampler = _like(real)
    else:
        a.sampler = lambda rng, n, dim: rng.standard_normal((n, dim)).astype(np.float32)
    if a.backend in ("faiss", "both"):
        _faiss(a)
    if a.backend in ("pgvector", "both"):
        _pgvector(a)
    return 0


def _like(real: np.ndarray):
    """A sampler of vectors with the mean and covariance of `real` (the engine's embeddings are far from
    isotropic: a few directions hold most of their variance, which is what makes HNSW work on them)."""
    mean = real.mean(0)
    cov = np.cov(real - mean, rowvar=False) + 1e-9 * np.eye(real.shape[1])
    chol = np.linalg.cholesky(cov)

    def sample(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
        return (mean + rng.standard_normal((n, dim)) @ chol.T).astype(np.float32)

    sample.source = f"like {real.shape[0]} real embeddings"
    return sample


def _source(a: argparse.Namespace) -> str:
    return getattr(a.sampler, "source", "N(0, I)")


def _faiss(a: argparse.Namespace) -> None:
    import faiss

    from engines.similar import CaseIndex, CaseRecord

    faiss.omp_set_num_threads(a.threads)
    rng = np.random.default_rng(0)
    rows = []
    for n in a.sizes:
        vecs = a.sampler(rng, n, a.dim)
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
        queries = a.sampler(rng, a.queries, a.dim)
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
    print(f"\nCaseIndex (FAISS IndexFlatIP, exact; SQLite metadata), embeddings {_source(a)}, dim {a.dim}, k {a.k}, {a.queries} queries, "
          f"{a.threads} thread(s), host {platform.processor() or platform.machine()}, faiss {faiss.__version__}\n")
    load = os.getloadavg()[0]
    print(f"(load average {load:.1f} on {os.cpu_count()} CPUs at the end: wall times include waiting for a CPU; "
          "the CPU time is the query's own cost)\n")
    print("| indexed studies | median query ms (wall) | p95 query ms (wall) | median query CPU ms | build s | "
          "save+load s |")
    print("|---:|---:|---:|---:|---:|---:|")
    for n, med, p95, cpu_ms, build, io in rows:
        print(f"| {n:,} | {med:.2f} | {p95:.2f} | {cpu_ms:.2f} | {build:.1f} | {io:.1f} |")


def _pgvector(a: argparse.Namespace) -> None:
    import sqlalchemy as sa

    from engines.similar import CaseRecord
    from engines.similar.pg_index import (
        EF_SEARCH,
        HNSW_EF_CONSTRUCTION,
        HNSW_M,
        PgCaseIndex,
        engine_for,
    ensure_hnsw,
    ensure_schema,
        hnsw_index_name,
    )

    name = "benchmark-synthetic"
    engine = engine_for(a.url)
    with engine.begin() as conn:
        ensure_schema(conn)  # a database RadStation never migrated: the tables (and pgvector) first
    rows = []
    try:
        for n in a.sizes:
            with engine.begin() as conn:
                conn.execute(sa.text("DELETE FROM similar_index WHERE embedder = :e"), {"e": name})
                conn.execute(sa.text(f"DROP INDEX IF EXISTS {hnsw_index_name(name)}"))  # rebuilt empty by open
            rng = np.random.default_rng(0)
            vecs = a.sampler(rng, n, a.dim)
            idx = PgCaseIndex.open(engine, name, a.dim)
            t0 = time.perf_counter()
            if not a.incremental:  # as an admin loads an archive: rows first, then the HNSW index in one build
                with engine.begin() as conn:
                    conn.execute(sa.text(f"DROP INDEX {hnsw_index_name(name)}"))
            for s in range(0, n, 5_000):
                idx.add([CaseRecord(f"case-{i}", "Heart size is normal.", "No acute abnormality.", "site",
                                    {"No Finding": 1}) for i in range(s, min(s + 5_000, n))], vecs[s:s + 5_000])
            load = time.perf_counter() - t0
            if not a.incremental:
                with engine.begin() as conn:
                    conn.execute(sa.text("SET LOCAL maintenance_work_mem = '1GB'"))  # the graph fits in memory
                    ensure_hnsw(conn, name, a.dim)
            build = (load, time.perf_counter() - t0 - load)
            with engine.begin() as conn:
                conn.execute(sa.text("ANALYZE similar_case"))  # what autovacuum does after a load
            unit = vecs / np.linalg.norm(vecs, axis=1, keepdims=True)
            queries = a.sampler(rng, a.queries, a.dim)
            exact = [{f"case-{i}" for i in np.argpartition(-(unit @ q), a.k)[:a.k]} for q in queries]
            for ef in a.ef_search or [EF_SEARCH]:
                idx.ef_search = ef
                idx.search(queries[0], a.k)  # warm-up
                times, recall = [], []
                for q, truth in zip(queries, exact, strict=True):
                    t0 = time.perf_counter()
                    hits = idx.search(q, a.k)
                    times.append(time.perf_counter() - t0)
                    assert len(hits) == a.k
                    recall.append(len(truth & {h.case_id for h in hits}) / a.k)
                t0 = time.perf_counter()
                for q in queries[:20]:
                    idx.search(q, a.k, origin="site", exclude=["case-0"])
                filtered = (time.perf_counter() - t0) / 20
                times.sort()
                rows.append((n, ef, statistics.median(times) * 1000, times[int(0.95 * (len(times) - 1))] * 1000,
                             filtered * 1000, float(np.mean(recall)), build))
        with engine.connect() as conn:
            server = conn.execute(sa.text("SHOW server_version")).scalar()
            version = conn.execute(sa.text("SELECT extversion FROM pg_extension WHERE extname = 'vector'")).scalar()
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM similar_index WHERE embedder = :e"), {"e": name})
        engine.dispose()
    print(f"\nPgCaseIndex (PostgreSQL {server}, pgvector {version}, HNSW m={HNSW_M} ef_construction="
          f"{HNSW_EF_CONSTRUCTION}, cosine), embeddings {_source(a)}, dim {a.dim}, k {a.k}, {a.queries} queries over "
          f"a loopback connection, host {platform.processor() or platform.machine()}\n")
    print(f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs at the end; the server has no "
          "thread limit, wall times include waiting for a CPU)\n")
    print("| indexed studies | ef_search | median query ms (wall) | p95 query ms (wall) | filtered query ms (mean) | "
          f"recall@{a.k} | rows s | HNSW build s |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n, ef, med, p95, filt, rec, (load, index) in rows:
        print(f"| {n:,} | {ef} | {med:.2f} | {p95:.2f} | {filt:.2f} | {rec:.3f} | {load:.1f} | "
              f"{'(during rows)' if a.incremental else f'{index:.1f}'} |")


if __name__ == "__main__":
    raise SystemExit(main())
