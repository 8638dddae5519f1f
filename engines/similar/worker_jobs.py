"""Worker jobs for similar cases (engines.worker.jobs): `similar` finds the K most similar studies in the
site's index and a development index; `index_case` adds a signed study. Both embed in the worker, where the
model is (`MedimPipeline.embed`); the GUI never loads it.

similar:    SimilarRequest {images, k, cases_dir, cases_url, dev_index, exclude} -> SimilarCases {hits: [site first], notes}
index_case: IndexCaseRequest {images, case_id, findings, impression, cases_dir, cases_url, image_ref, title}
            -> {kind: "indexed", total}              (requests: engines.worker.requests)

`cases_url` (a PostgreSQL URL), when given, holds the site's index instead of the `cases_dir` folder
(engines.similar.pg_index: one index for all workstations of a department).
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from engines.similar.embeddings import index_name
from engines.similar.index import CASES, VECTORS, CaseIndex, CaseRecord
from engines.worker.job_results import SimilarCases
from engines.worker.jobs import pipeline_of
from engines.worker.requests import IndexCaseRequest, SimilarRequest

EMBEDDER = index_name("image-tokens")
_loaded: dict[str, tuple[tuple, CaseIndex]] = {}


def _index(folder: str | Path) -> CaseIndex | None:
    """The index in `folder`, loaded once and again when its files change; None when there is none."""
    folder = Path(folder)
    files = [folder / VECTORS, folder / CASES]
    if not all(f.is_file() for f in files):
        return None
    stamp = tuple(f.stat().st_mtime_ns for f in files)
    have = _loaded.get(str(folder))
    if have is None or have[0] != stamp:
        _loaded[str(folder)] = (stamp, CaseIndex.load(folder))
    return _loaded[str(folder)][1]


def _pg_index(url: str) -> Any:
    """The site's index in PostgreSQL; None while no case has been indexed there."""
    from engines.similar.pg_index import shared_index

    try:
        return shared_index(url, EMBEDDER)
    except LookupError:
        return None


def _shown(where: str | Path) -> str:
    """A folder as is, a database URL without its password."""
    from sqlalchemy.engine import make_url

    text = str(where)
    if "://" not in text:
        return text
    try:
        return make_url(text).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - not a URL after all
        return text


def _embedding(backend: Any, images: tuple[Any, ...], job: str) -> tuple[Any, np.ndarray]:
    from engines.backends.base import check_images

    pipe = pipeline_of(backend, job)
    images = check_images(list(images))
    return pipe, pipe.embed(images).mean(0)


def similar(backend: Any, params: dict[str, Any], progress: Any, cancel: Any) -> SimilarCases:
    from engines.backends import BackendError

    req = SimilarRequest.from_params(params)
    progress(0, 2)
    _, vec = _embedding(backend, req.images, "similar")
    progress(1, 2)
    k = max(int(req.k), 1)
    exclude = [str(x) for x in req.exclude]
    hits: list[dict[str, Any]] = []
    notes: list[str] = []
    for key, origin in (("cases_dir", "site"), ("dev_index", "dev")):
        on_pg = key == "cases_dir" and bool(req.cases_url)
        folder = req.cases_url if on_pg else getattr(req, key)
        if not folder:
            continue
        try:
            idx = _pg_index(folder) if on_pg else _index(folder)
        except (OSError, ValueError, RuntimeError) as exc:  # PgVectorMissing and ConnectionError included
            notes.append(f"{origin} index not used: {exc}")
            continue
        if idx is None:
            continue
        if idx.dim != vec.shape[0]:
            raise BackendError(f"the {origin} index at {_shown(folder)} holds {idx.embedder} embeddings of size "
                               f"{idx.dim}; this engine's are {vec.shape[0]}: rebuild the index")
        try:
            hits += [asdict(h) for h in idx.search(vec, k, exclude=exclude)]
        except OSError as exc:  # the department database went away: say so, still show the other index
            notes.append(f"{origin} index not used: {exc}")
    progress(2, 2)
    return SimilarCases(hits=hits, notes=notes)


def index_case(backend: Any, params: dict[str, Any], progress: Any, cancel: Any) -> dict[str, Any]:
    from engines.backends import BackendError

    req = IndexCaseRequest.from_params(params)
    folder, url, case_id = req.cases_dir, req.cases_url, req.case_id
    if not (folder or url) or not case_id:
        raise BackendError("index_case needs cases_dir (or cases_url) and case_id")
    progress(0, 1)
    pipe, vec = _embedding(backend, req.images, "index_case")
    record = CaseRecord(case_id, req.findings, req.impression, "site", {}, req.image_ref, req.title)
    total = 0
    # the panel searches by the engine's embedding; drafts may ground on another (a subfolder named for it)
    if url:
        from engines.similar.pg_index import shared_index

        for kind in ("image-tokens", "pixels32"):
            v = vec if kind == "image-tokens" else pipe.embed(list(req.images), kind).mean(0)
            try:
                idx = shared_index(url, index_name(kind), v.shape[0])
                idx.add([record], v[None])
            except (OSError, ValueError, RuntimeError) as exc:  # PgVectorMissing, ConnectionError included
                raise BackendError(f"cannot update the similar-case index in {_shown(url)}: {exc}") from exc
            total = total or len(idx)
        progress(1, 1)
        return {"kind": "indexed", "case_id": case_id, "total": total}
    for kind, where in (("image-tokens", Path(folder)), ("pixels32", Path(folder) / "pixels32")):
        v = vec if kind == "image-tokens" else pipe.embed(list(req.images), kind).mean(0)
        try:
            idx = CaseIndex.open_or_create(where, v.shape[0], index_name(kind))
            idx.add([record], v[None])
            idx.save(where)
        except (OSError, ValueError) as exc:
            raise BackendError(f"cannot update the similar-case index at {where}: {exc}") from exc
        _loaded.pop(str(where), None)
        total = total or len(idx)
    progress(1, 1)
    return {"kind": "indexed", "case_id": case_id, "total": total}


WORKER_JOBS = {"similar": similar, "index_case": index_case}
