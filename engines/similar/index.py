"""CaseIndex: studies (a site's signed reports, or curated development data) indexed by an image embedding.

Vectors live in a FAISS exact inner-product index (unit-norm embeddings, so cosine similarity; 100k studies
are searched in milliseconds, see benchmarks/similar.py) with 64-bit ids; the cases' reports, labels and where
their images are live beside it in a small SQLite file. Both are written to a folder and loaded back; a case
added again under the same id replaces the old one (an amended report). The embedding's name and size are
stored, so an index built with one embedding is never queried with another.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engines.labeler.findings import PATHOLOGIES
from engines.labeler.label import label_report, split_sentences

VECTORS = "vectors.faiss"
CASES = "cases.sqlite"


@dataclass
class CaseRecord:
    """One indexed study."""

    case_id: str  # a study instance UID for site cases, an image id for development cases
    findings: str
    impression: str
    origin: str = "site"  # "site" (signed at this site) or "dev" (curated training data)
    labels: dict[str, int] = field(default_factory=dict)  # labeler reading of the report (1/0/-1)
    image_ref: str = ""  # where the image is: a file path (dev) or "<study uid>/<sop uid>" (site)
    title: str = ""  # what the panel shows (patient/study description or image id)

    def __post_init__(self) -> None:
        if not self.labels:
            text = " ".join(t for t in (self.findings, self.impression) if t.strip())
            self.labels = dict(label_report(text).findings) if text.strip() else {}


@dataclass
class Hit(CaseRecord):
    score: float = 0.0  # cosine similarity to the query

    def sentences(self) -> list[tuple[str, str]]:
        """The report's sentences as (part, text)."""
        out = []
        for part, body in (("findings", self.findings), ("impression", self.impression)):
            out += [(part, body[a:b]) for a, b in split_sentences(body or "")]
        return out


def _vid(case_id: str) -> int:
    """A stable 63-bit id for FAISS from the case id."""
    return int.from_bytes(hashlib.sha1(case_id.encode()).digest()[:8], "big") & ((1 << 63) - 1)


class CaseIndex:
    def __init__(self, dim: int, embedder: str = "medim-image-tokens") -> None:
        import faiss

        if dim < 1:
            raise ValueError(f"embedding size must be >= 1, got {dim}")
        self.dim, self.embedder = int(dim), str(embedder)
        self._faiss = faiss
        self.vectors = faiss.IndexIDMap2(faiss.IndexFlatIP(self.dim))
        self.db = sqlite3.connect(":memory:", check_same_thread=False)
        self._schema()
        self.folder: Path | None = None

    def _schema(self) -> None:
        self.db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
        self.db.execute("CREATE TABLE IF NOT EXISTS cases (vid INTEGER PRIMARY KEY, case_id TEXT UNIQUE NOT NULL, "
                        "origin TEXT, findings TEXT, impression TEXT, labels TEXT, image_ref TEXT, title TEXT)")
        self.db.execute("INSERT OR REPLACE INTO meta VALUES ('embedder', ?), ('dim', ?)",
                        (self.embedder, str(self.dim)))
        self.db.commit()

    def __len__(self) -> int:
        return int(self.vectors.ntotal)

    # -- writing --------------------------------------------------------------------------------------
    def add(self, records: Sequence[CaseRecord], vectors: np.ndarray) -> None:
        """Add (or replace) cases with their (N, dim) embeddings."""
        vecs = np.ascontiguousarray(np.asarray(vectors, dtype=np.float32).reshape(len(records), -1))
        if vecs.shape[1] != self.dim:
            raise ValueError(f"embeddings have size {vecs.shape[1]}, this index holds size {self.dim} "
                             f"({self.embedder})")
        if not np.isfinite(vecs).all():
            raise ValueError("embeddings contain NaN or infinity")
        norms = np.linalg.norm(vecs, axis=1, keepdims=True)
        vecs = vecs / np.where(norms > 0, norms, 1.0)
        ids = np.array([_vid(r.case_id) for r in records], dtype=np.int64)
        self.vectors.remove_ids(ids)
        self.vectors.add_with_ids(vecs, ids)
        self.db.executemany(
            "INSERT OR REPLACE INTO cases VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [(int(v), r.case_id, r.origin, r.findings, r.impression, json.dumps(r.labels), r.image_ref, r.title)
             for v, r in zip(ids, records, strict=True)])
        self.db.commit()

    def remove(self, case_ids: Iterable[str]) -> int:
        ids = np.array([_vid(c) for c in case_ids], dtype=np.int64)
        n = int(self.vectors.remove_ids(ids))
        self.db.executemany("DELETE FROM cases WHERE vid = ?", [(int(v),) for v in ids])
        self.db.commit()
        return n

    # -- reading --------------------------------------------------------------------------------------
    def search(self, query: np.ndarray, k: int = 5, *, origin: str | None = None,
               exclude: Iterable[str] = ()) -> list[Hit]:
        """The k cases most similar to `query` (dim,), best first; `origin` keeps one kind, `exclude` drops ids
        (the study itself)."""
        q = np.asarray(query, dtype=np.float32).reshape(1, -1)
        if q.shape[1] != self.dim:
            raise ValueError(f"query embedding has size {q.shape[1]}, this index holds size {self.dim}")
        if len(self) == 0 or k < 1:
            return []
        n = float(np.linalg.norm(q))
        q = q / n if n > 0 else q
        skip = {_vid(c) for c in exclude}
        want = min(len(self), k + len(skip) + (4 * k if origin else 0))
        while True:
            scores, vids = self.vectors.search(q, want)
            rows = [(float(s), int(v)) for s, v in zip(scores[0], vids[0], strict=True) if v >= 0 and v not in skip]
            hits = [h for h in (self._hit(v, s) for s, v in rows) if h is not None
                    and (origin is None or h.origin == origin)]
            if len(hits) >= k or want >= len(self):
                return hits[:k]
            want = min(len(self), want * 4)

    def _hit(self, vid: int, score: float) -> Hit | None:
        row = self.db.execute("SELECT case_id, origin, findings, impression, labels, image_ref, title FROM cases "
                              "WHERE vid = ?", (vid,)).fetchone()
        if row is None:
            return None
        return Hit(row[0], row[2] or "", row[3] or "", row[1], json.loads(row[4] or "{}"), row[5] or "",
                   row[6] or "", score)

    def get(self, case_id: str) -> CaseRecord | None:
        h = self._hit(_vid(case_id), 0.0)
        return None if h is None else CaseRecord(h.case_id, h.findings, h.impression, h.origin, h.labels,
                                                 h.image_ref, h.title)

    @staticmethod
    def label_share(hits: Sequence[CaseRecord]) -> dict[str, float]:
        """Per pathology (and No Finding, Support Devices) the share of the cases whose report states it."""
        if not hits:
            return {}
        names = ("No Finding", *PATHOLOGIES, "Support Devices")
        return {f: float(np.mean([h.labels.get(f) == 1 for h in hits])) for f in names}

    # -- persistence ----------------------------------------------------------------------------------
    def save(self, folder: Path | str) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / (VECTORS + ".tmp")
        self._faiss.write_index(self.vectors, str(tmp))
        tmp.replace(folder / VECTORS)
        dest = sqlite3.connect(str(folder / CASES))
        self.db.backup(dest)
        dest.close()
        self.folder = folder
        return folder

    @classmethod
    def load(cls, folder: Path | str) -> CaseIndex:
        import faiss

        folder = Path(folder)
        if not (folder / VECTORS).is_file() or not (folder / CASES).is_file():
            raise FileNotFoundError(f"{folder} holds no case index ({VECTORS} and {CASES})")
        src = sqlite3.connect(str(folder / CASES))
        try:
            meta = dict(src.execute("SELECT key, value FROM meta").fetchall())
        except sqlite3.DatabaseError as exc:
            raise ValueError(f"{folder / CASES}: not a case index ({exc})") from exc
        idx = cls(int(meta.get("dim", 0)), meta.get("embedder", "?"))
        src.backup(idx.db)
        src.close()
        try:
            idx.vectors = faiss.read_index(str(folder / VECTORS))
        except RuntimeError as exc:
            raise ValueError(f"{folder / VECTORS}: cannot read the vector index ({exc})") from exc
        if idx.vectors.d != idx.dim:
            raise ValueError(f"{folder}: vectors have size {idx.vectors.d}, metadata says {idx.dim}")
        idx.folder = folder
        return idx

    @classmethod
    def open_or_create(cls, folder: Path | str, dim: int, embedder: str) -> CaseIndex:
        folder = Path(folder)
        if (folder / VECTORS).is_file():
            idx = cls.load(folder)
            if idx.dim != dim or idx.embedder != embedder:
                raise ValueError(f"{folder} was built with {idx.embedder} ({idx.dim}), not {embedder} ({dim}); "
                                 "rebuild it")
            return idx
        idx = cls(dim, embedder)
        idx.folder = folder
        return idx
