"""PgCaseIndex: the similar-case index in the site's PostgreSQL database (pgvector), so that every
workstation of a department searches and extends one index.

Same interface as CaseIndex (add/replace, remove, get, search top-K by cosine with `origin` and `exclude`,
label_share, len, dim, embedder); there is nothing to save or load, every change is committed at once.
One table `similar_case` holds all embeddings (the panel's image-token one and the drafts' pixels32 one),
keyed by (embedder, case_id); the `vector` column has no fixed size, and each embedder gets its own partial
HNSW index over `embedding::vector(dim)` (pgvector's documented way to index vectors of several sizes in one
column), created when the embedder is first used. `similar_index` records each embedder's size, so an index
built with one embedding is never queried with another. Vectors are stored unit-norm, so cosine distance
ranks exactly as FAISS's inner product does; HNSW is approximate (recall@10 0.999 at 100k embeddings
distributed like the engine's, far lower on isotropic noise: docs/similar_cases_postgres.md), with
pgvector >= 0.8's iterative scans so a filter (origin, the study itself) still returns K rows.

The tables are created by migration 0008_similar_cases; `ensure_schema` (the same statements) creates them
when that migration could not (pgvector missing then) and raises PgVectorMissing with what the database
administrator has to run. SQLAlchemy Core only; no app import (the app passes the URL).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from engines.similar.index import CaseIndex, CaseRecord, Hit

SCHEMA_STATEMENTS = (
    "CREATE TABLE IF NOT EXISTS similar_index (embedder VARCHAR(64) PRIMARY KEY, dim INTEGER NOT NULL "
    "CHECK (dim > 0 AND dim <= 16000))",
    "CREATE TABLE IF NOT EXISTS similar_case (embedder VARCHAR(64) NOT NULL REFERENCES similar_index(embedder) "
    "ON DELETE CASCADE, case_id VARCHAR(128) NOT NULL, origin VARCHAR(16) NOT NULL DEFAULT 'site', "
    "findings TEXT NOT NULL DEFAULT '', impression TEXT NOT NULL DEFAULT '', labels JSONB NOT NULL DEFAULT '{}', "
    "image_ref TEXT NOT NULL DEFAULT '', title TEXT NOT NULL DEFAULT '', embedding vector NOT NULL, "
    "indexed_at TIMESTAMPTZ NOT NULL DEFAULT now(), PRIMARY KEY (embedder, case_id))",
)
HNSW_M, HNSW_EF_CONSTRUCTION = 16, 64  # pgvector's defaults
CONNECT_TIMEOUT_S = 5
EF_SEARCH = 100  # candidates an HNSW query looks at (pgvector default 40); more = better recall, slower
_NAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class PgVectorMissing(RuntimeError):
    """The database has no pgvector extension and this user may not create it."""


def engine_for(url: str) -> Engine:
    """A SQLAlchemy engine for a PostgreSQL URL; plain `postgresql://` means psycopg 3 (as the app's database)."""
    parsed = sa.engine.make_url(url.replace("postgres://", "postgresql://", 1) if url.startswith("postgres://")
                                else url)
    if parsed.get_backend_name() != "postgresql":
        raise ValueError(f"the pgvector similar-case index needs a PostgreSQL URL, not {parsed.drivername}")
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    # connect_timeout: an unreachable server is a message after seconds, not a draft that hangs
    return sa.create_engine(parsed, pool_pre_ping=True, pool_size=2, max_overflow=2,
                            connect_args={"connect_timeout": CONNECT_TIMEOUT_S})


def _database(conn: Connection) -> str:
    return str(conn.execute(sa.text("SELECT current_database()")).scalar())


def ensure_extension(conn: Connection) -> str:
    """Create the `vector` extension when it is missing and this user may; returns its version. Runs in a
    savepoint, so a refusal leaves the caller's transaction (a migration) usable."""
    have = conn.execute(sa.text("SELECT extversion FROM pg_extension WHERE extname = 'vector'")).scalar()
    if have:
        return str(have)
    db = _database(conn)
    available = conn.execute(sa.text("SELECT default_version FROM pg_available_extensions "
                                     "WHERE name = 'vector'")).scalar()
    if not available:
        raise PgVectorMissing(
            f"the PostgreSQL server of database {db!r} has no pgvector extension: the database administrator "
            "installs it on the server (Debian/PGDG: apt install postgresql-15-pgvector; or .ci/install_pgvector.sh"
            f") and runs CREATE EXTENSION vector; in database {db!r}, or set \"similar_backend\": \"faiss\"")
    try:
        with conn.begin_nested():
            conn.execute(sa.text("CREATE EXTENSION IF NOT EXISTS vector"))
    except sa.exc.DBAPIError as exc:
        raise PgVectorMissing(
            f"the similar-case index needs the pgvector extension in database {db!r} and this user may not create "
            f"it ({str(exc.orig).strip().splitlines()[0]}): a database superuser runs CREATE EXTENSION vector; "
            f"in database {db!r}, or set \"similar_backend\": \"faiss\"") from exc
    return str(available)


def ensure_schema(conn: Connection) -> str:
    """The extension and the two tables (idempotent; DDL only when something is missing, so a workstation
    user without CREATE rights can open an index the migration made); returns pgvector's version."""
    version = ensure_extension(conn)
    if conn.execute(sa.text("SELECT to_regclass('similar_case') IS NULL OR to_regclass('similar_index') IS NULL")
                    ).scalar():
        for stmt in SCHEMA_STATEMENTS:
            conn.execute(sa.text(stmt))
    return version


def hnsw_index_name(embedder: str) -> str:
    return f"ix_similar_case_hnsw_{hashlib.sha1(embedder.encode()).hexdigest()[:12]}"


def ensure_hnsw(conn: Connection, embedder: str, dim: int) -> None:
    """The partial HNSW cosine index over this embedder's rows (its vectors cast to their fixed size)."""
    if not _NAME.match(embedder):
        raise ValueError(f"embedding name {embedder!r} must be 1-64 letters, digits, '.', '_' or '-'")
    if conn.execute(sa.text("SELECT to_regclass(:n) IS NOT NULL"), {"n": hnsw_index_name(embedder)}).scalar():
        return
    conn.execute(sa.text(
        f"CREATE INDEX IF NOT EXISTS {hnsw_index_name(embedder)} ON similar_case USING hnsw "
        f"((embedding::vector({int(dim)})) vector_cosine_ops) WITH (m = {HNSW_M}, "
        f"ef_construction = {HNSW_EF_CONSTRUCTION}) WHERE embedder = '{embedder}'"))


@contextmanager
def _db_errors(engine: Engine) -> Iterator[None]:
    """A database that is down, unreachable or refuses a statement: ConnectionError naming it (no traceback)."""
    try:
        yield
    except sa.exc.DBAPIError as exc:
        first = str(exc.orig or exc).strip().splitlines()[0] if str(exc.orig or exc).strip() else type(exc).__name__
        raise ConnectionError(f"similar-case database {engine.url.render_as_string()}: {first}") from exc


def _vector_text(v: np.ndarray) -> str:
    return "[" + ",".join(f"{x:.8g}" for x in v.tolist()) + "]"


class PgCaseIndex:
    """One embedder's cases in a PostgreSQL database (see the module docstring)."""

    label_share = staticmethod(CaseIndex.label_share)

    def __init__(self, engine: Engine, embedder: str, dim: int, version: str) -> None:
        self.engine, self.embedder, self.dim, self.pgvector_version = engine, embedder, int(dim), version
        self.ef_search = EF_SEARCH
        self._iterative = tuple(int(p) for p in re.findall(r"\d+", version)[:2]) >= (0, 8)

    @property
    def url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    @classmethod
    def open(cls, url: str | Engine, embedder: str, dim: int | None = None) -> PgCaseIndex:
        """The index of `embedder` in the database at `url`. With `dim` it is created when new (and must have that
        size when not); without, it must exist. Raises PgVectorMissing, or ValueError for a size mismatch."""
        engine = url if isinstance(url, Engine) else engine_for(url)
        if not _NAME.match(embedder):
            raise ValueError(f"embedding name {embedder!r} must be 1-64 letters, digits, '.', '_' or '-'")
        with _db_errors(engine), engine.begin() as conn:
            version = ensure_schema(conn)
            have = conn.execute(sa.text("SELECT dim FROM similar_index WHERE embedder = :e"),
                                {"e": embedder}).scalar()
            if have is None and dim is None:
                raise LookupError(f"database {_database(conn)!r} holds no {embedder} similar cases yet")
            if have is not None and dim is not None and int(have) != int(dim):
                raise ValueError(f"the similar-case index in database {_database(conn)!r} holds {embedder} "
                                 f"embeddings of size {have}, not {dim}: clear it (DELETE FROM similar_index "
                                 f"WHERE embedder = '{embedder}') and re-index")
            if have is None:
                conn.execute(sa.text("INSERT INTO similar_index (embedder, dim) VALUES (:e, :d) "
                                     "ON CONFLICT (embedder) DO NOTHING"), {"e": embedder, "d": int(dim)})
                have = conn.execute(sa.text("SELECT dim FROM similar_index WHERE embedder = :e"),
                                    {"e": embedder}).scalar()
            ensure_hnsw(conn, embedder, int(have))
        return cls(engine, embedder, int(have), version)

    def __len__(self) -> int:
        with _db_errors(self.engine), self.engine.connect() as conn:
            return int(conn.execute(sa.text("SELECT count(*) FROM similar_case WHERE embedder = :e"),
                                    {"e": self.embedder}).scalar())

    # -- writing --------------------------------------------------------------------------------------
    def add(self, records: Sequence[CaseRecord], vectors: np.ndarray) -> None:
        """Add (or replace: an amended report) cases with their (N, dim) embeddings, in one transaction."""
        vecs = np.asarray(vectors, dtype=np.float32).reshape(len(records), -1)
        if vecs.shape[1] != self.dim:
            raise ValueError(f"embeddings have size {vecs.shape[1]}, this index holds size {self.dim} "
                             f"({self.embedder})")
        if not np.isfinite(vecs).all():
            raise ValueError("embeddings contain NaN or infinity")
        norms = np.linalg.norm(vecs, axis=1, keepdims=True)
        vecs = vecs / np.where(norms > 0, norms, 1.0)
        rows = [{"e": self.embedder, "c": r.case_id, "o": r.origin, "f": r.findings or "", "i": r.impression or "",
                 "l": json.dumps(r.labels), "r": r.image_ref or "", "t": r.title or "", "v": _vector_text(v)}
                for r, v in zip(records, vecs, strict=True)]
        for r in records:
            if not r.case_id or len(r.case_id) > 128:
                raise ValueError(f"case id must be 1-128 characters, got {r.case_id!r}")
        if not rows:
            return
        with _db_errors(self.engine), self.engine.begin() as conn:
            conn.execute(sa.text(
                "INSERT INTO similar_case (embedder, case_id, origin, findings, impression, labels, image_ref, title, "
                "embedding) VALUES (:e, :c, :o, :f, :i, CAST(:l AS jsonb), :r, :t, CAST(:v AS vector)) "
                "ON CONFLICT (embedder, case_id) DO UPDATE SET origin = EXCLUDED.origin, findings = EXCLUDED.findings, "
                "impression = EXCLUDED.impression, labels = EXCLUDED.labels, image_ref = EXCLUDED.image_ref, "
                "title = EXCLUDED.title, embedding = EXCLUDED.embedding, indexed_at = now()"), rows)

    def remove(self, case_ids: Iterable[str]) -> int:
        ids = [str(c) for c in case_ids]
        with _db_errors(self.engine), self.engine.begin() as conn:
            res = conn.execute(sa.text("DELETE FROM similar_case WHERE embedder = :e AND case_id = ANY(:ids)"),
                               {"e": self.embedder, "ids": ids})
            return int(res.rowcount)

    # -- reading --------------------------------------------------------------------------------------
    def search(self, query: np.ndarray, k: int = 5, *, origin: str | None = None,
               exclude: Iterable[str] = ()) -> list[Hit]:
        """The k cases most similar to `query` (dim,), best first; `origin` keeps one kind, `exclude` drops ids
        (the study itself)."""
        q = np.asarray(query, dtype=np.float32).reshape(1, -1)
        if q.shape[1] != self.dim:
            raise ValueError(f"query embedding has size {q.shape[1]}, this index holds size {self.dim}")
        if not np.isfinite(q).all():
            raise ValueError("query embedding contains NaN or infinity")
        if k < 1:
            return []
        n = float(np.linalg.norm(q))
        q = q / n if n > 0 else q
        skip = [str(c) for c in exclude]
        where = ["embedder = :e"]
        params: dict[str, Any] = {"e": self.embedder, "q": _vector_text(q[0]), "k": int(k)}
        if origin is not None:
            where.append("origin = :o")
            params["o"] = origin
        if skip:
            where.append("case_id <> ALL(:skip)")
            params["skip"] = skip
        dist = f"embedding::vector({self.dim}) <=> CAST(:q AS vector({self.dim}))"
        sql = (f"SELECT case_id, origin, findings, impression, labels, image_ref, title, {dist} AS d "
               f"FROM similar_case WHERE {' AND '.join(where)} ORDER BY {dist} LIMIT :k")
        with _db_errors(self.engine), self.engine.begin() as conn:
            ef = max(int(self.ef_search), 2 * (k + len(skip)))
            conn.execute(sa.text(f"SET LOCAL hnsw.ef_search = {min(ef, 1000)}"))
            if self._iterative:  # a filter drops rows after the HNSW scan: keep scanning until K rows pass
                conn.execute(sa.text("SET LOCAL hnsw.iterative_scan = relaxed_order"))
            rows = conn.execute(sa.text(sql), params).all()
        hits = [Hit(r[0], r[2], r[3], r[1], dict(r[4] or {}), r[5], r[6], float(1.0 - r[7])) for r in rows]
        hits.sort(key=lambda h: -h.score)  # relaxed order: re-sort the K rows exactly
        return hits

    def get(self, case_id: str) -> CaseRecord | None:
        with _db_errors(self.engine), self.engine.connect() as conn:
            r = conn.execute(sa.text("SELECT case_id, origin, findings, impression, labels, image_ref, title "
                                     "FROM similar_case WHERE embedder = :e AND case_id = :c"),
                             {"e": self.embedder, "c": case_id}).first()
        return None if r is None else CaseRecord(r[0], r[2], r[3], r[1], dict(r[4] or {}), r[5], r[6])

    def close(self) -> None:
        self.engine.dispose()


_opened: dict[tuple[str, str], PgCaseIndex] = {}


def shared_index(url: str, embedder: str, dim: int | None = None) -> PgCaseIndex:
    """PgCaseIndex.open, once per (database, embedder) in this process (the worker keeps its connections)."""
    idx = _opened.get((url, embedder))
    if idx is None or (dim is not None and idx.dim != dim):
        idx = _opened[(url, embedder)] = PgCaseIndex.open(url, embedder, dim)
    return idx
