"""Make sure the bundled demo studies are in the study database, so `radstation` opens on them."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from app.db.database import Database
from app.db.models import Study
from app.importer import ImportReport, ImportService
from viewer.demo import demo_dir, demo_studies


def demo_study_uids(root: Path | None = None) -> list[str]:
    """Study Instance UIDs of the demo studies, radiographs first (what a reader opens first)."""
    studies = demo_studies(root)
    radiograph = {s.study_uid: any(se.modality in ("DX", "CR") for se in s.series) for s in studies}
    return sorted(radiograph, key=lambda uid: not radiograph[uid])


def ensure_demo_imported(database: Database, root: Path | None = None) -> ImportReport | None:
    """Import the demo (through its DICOMDIR) unless every demo study is present; the report if it ran."""
    root = Path(root) if root is not None else demo_dir()
    dicomdir = root / "DICOMDIR"
    if not dicomdir.is_file():
        raise FileNotFoundError(f"no demo DICOMDIR at {dicomdir}")
    wanted = set(demo_study_uids(root))
    with database.session() as session:
        present = set(session.scalars(select(Study.study_uid).where(Study.study_uid.in_(wanted))))
    if present == wanted:
        return None
    return ImportService(database).run([dicomdir])
