"""Worker jobs for similar cases (engines.worker.jobs): `similar` finds the K most similar studies in the
site's index and a development index; `index_case` adds a signed study. Both embed in the worker, where the
model is (`MedimPipeline.embed`); the GUI never loads it.

similar:    {images, k, cases_dir, dev_index, exclude} -> {kind: "similar", hits: [case dicts, site first]}
index_case: {images, case_id, findings, impression, cases_dir, image_ref, title} -> {kind: "indexed", total}
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from engines.similar.embeddings import index_name
from engines.similar.index import CASES, VECTORS, CaseIndex, CaseRecord
from engines.worker.jobs import pipeline_of

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


def _embedding(backend: Any, params: dict[str, Any], job: str) -> tuple[Any, np.ndarray]:
    from engines.backends.base import check_images

    pipe = pipeline_of(backend, job)
    images = check_images(list(params.get("images") or []))
    return pipe, pipe.embed(images).mean(0)


def similar(backend: Any, params: dict[str, Any], progress: Any, cancel: Any) -> dict[str, Any]:
    from engines.backends import BackendError

    progress(0, 2)
    _, vec = _embedding(backend, params, "similar")
    progress(1, 2)
    k = max(int(params.get("k", 5)), 1)
    exclude = [str(x) for x in params.get("exclude") or []]
    hits: list[dict[str, Any]] = []
    notes: list[str] = []
    for key, origin in (("cases_dir", "site"), ("dev_index", "dev")):
        folder = params.get(key)
        if not folder:
            continue
        try:
            idx = _index(folder)
        except (OSError, ValueError) as exc:
            notes.append(f"{origin} index not used: {exc}")
            continue
        if idx is None:
            continue
        if idx.dim != vec.shape[0]:
            raise BackendError(f"the {origin} index at {folder} holds {idx.embedder} embeddings of size {idx.dim}; "
                               f"this engine's are {vec.shape[0]}: rebuild the index")
        hits += [asdict(h) for h in idx.search(vec, k, exclude=exclude)]
    progress(2, 2)
    return {"kind": "similar", "hits": hits, "notes": notes}


def index_case(backend: Any, params: dict[str, Any], progress: Any, cancel: Any) -> dict[str, Any]:
    from engines.backends import BackendError

    folder = params.get("cases_dir")
    case_id = str(params.get("case_id") or "")
    if not folder or not case_id:
        raise BackendError("index_case needs cases_dir and case_id")
    progress(0, 1)
    pipe, vec = _embedding(backend, params, "index_case")
    record = CaseRecord(case_id, str(params.get("findings") or ""), str(params.get("impression") or ""), "site",
                        {}, str(params.get("image_ref") or ""), str(params.get("title") or ""))
    total = 0
    # the panel searches by the engine's embedding; drafts may ground on another (a subfolder named for it)
    for kind, where in (("image-tokens", Path(folder)), ("pixels32", Path(folder) / "pixels32")):
        v = vec if kind == "image-tokens" else pipe.embed(list(params.get("images") or []), kind).mean(0)
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
