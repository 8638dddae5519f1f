"""Copy a workstation's FAISS similar-case folder into the department's PostgreSQL index, for a site moving from
one workstation to many: the reports signed before the move stay findable.

    python -m engines.similar.copy_index --from DIR --to postgresql://USER@HOST/DB

DIR is the `similar_cases_dir` folder (the image-token index, and its `pixels32` subfolder when there is one);
each case keeps its id, report, labels and image reference, and the vectors are copied as stored (FAISS
reconstructs them by id), so searches answer as before. Cases already in the database are replaced.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from engines.similar.index import CASES, VECTORS, CaseIndex, CaseRecord

CHUNK = 2_000


def copy_folder(folder: Path | str, url: str) -> dict[str, int]:
    """Copy every index in `folder` (and `folder/pixels32`) to `url`; returns cases copied per embedding."""
    from engines.similar.pg_index import PgCaseIndex

    folder = Path(folder)
    copied: dict[str, int] = {}
    for where in (folder, folder / "pixels32"):
        if not ((where / VECTORS).is_file() and (where / CASES).is_file()):
            continue
        src = CaseIndex.load(where)
        rows = src.db.execute("SELECT vid, case_id, origin, findings, impression, labels, image_ref, title "
                              "FROM cases ORDER BY vid").fetchall()
        dest = PgCaseIndex.open(url, src.embedder, src.dim)
        try:
            for s in range(0, len(rows), CHUNK):
                part = rows[s:s + CHUNK]
                vecs = np.stack([src.vectors.reconstruct(int(r[0])) for r in part])
                dest.add([CaseRecord(r[1], r[3] or "", r[4] or "", r[2] or "site", json.loads(r[5] or "{}"),
                                     r[6] or "", r[7] or "") for r in part], vecs)
            copied[src.embedder] = len(rows)
        finally:
            dest.close()
    if not copied:
        raise FileNotFoundError(f"{folder} holds no case index ({VECTORS} and {CASES})")
    return copied


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m engines.similar.copy_index", description=__doc__.split("\n")[0])
    ap.add_argument("--from", dest="src", type=Path, required=True, help="the FAISS similar-case folder")
    ap.add_argument("--to", dest="url", required=True, help="the PostgreSQL URL (pgvector)")
    a = ap.parse_args(argv)
    try:
        copied = copy_folder(a.src, a.url)
    except (OSError, ValueError, RuntimeError) as exc:  # no index, pgvector missing, database down
        print(f"not copied: {exc}", file=sys.stderr)
        return 1
    for name, n in copied.items():
        print(f"{name}: {n} cases copied")
    return 0


if __name__ == "__main__":
    sys.exit(main())
