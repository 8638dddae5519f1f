"""Fetch on open: the files of a study the shared database lists but this workstation lacks, from the PACS.

The database rows are the truth about what a study holds (they were written when the study was imported on
whichever workstation); the files are brought back from the configured PACS by WADO-RS or C-GET through the
PACS clients (app.pacs.clients), first image first so the viewer can show something at once, and each file
is placed at the path its row names only when its SHA-256 is the one recorded at import: a PACS that
returns other bytes for an instance (altered, re-encoded, forged) is refused with the instance named, and
nothing it sent is kept. Unlike a retrieval (app.pacs.retrieve), which skips instances already in the
database, this looks at the files on this workstation's disk.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from pydicom import dcmread
from pydicom.errors import InvalidDicomError
from sqlalchemy import select

from app.db.database import Database
from app.db.models import Instance, Series, Study
from app.importer.store import ManagedStore, StagedFile
from app.pacs.cancel import CancelToken
from app.pacs.clients import client_for
from app.pacs.dicomweb import DicomWebClient
from app.pacs.dimse import DimseClient
from app.pacs.errors import PacsError, RetrieveCancelled
from app.pacs.nodes import PacsNode

IN_PROGRESS = ("draft", "preliminary")


@dataclass(frozen=True)
class MissingInstance:
    sop_uid: str
    series_uid: str
    file_path: str  # where the row says the file lives, relative to the store
    sha256: str
    order: tuple  # series number, instance number: the first image is fetched first


@dataclass
class FetchResult:
    study_uid: str
    expected: int = 0  # instances missing on this workstation when the fetch began
    placed: int = 0
    refused: list[str] = field(default_factory=list)  # one sentence per instance whose bytes were refused
    message: str = ""

    @property
    def complete(self) -> bool:
        return self.placed == self.expected and not self.refused


FetchProgress = Callable[[int, int, str], None]  # (placed, expected, sentence)


class FetchError(PacsError):
    """The study could not be fetched (PACS down, not there, cancelled): the message says why, for the user."""


def studies_in_progress(db: Database) -> set[str]:
    """Studies whose report is being written (draft or preliminary): pinned in every workstation's cache."""
    with db.session() as s:
        return set(s.scalars(select(Study.study_uid).where(Study.report_status.in_(IN_PROGRESS))))


def report_status(db: Database, study_uid: str) -> str:
    """The study's report status as the worklist shows it ('none', 'draft', 'preliminary', 'final'...)."""
    with db.session() as s:
        return str(s.scalar(select(Study.report_status).where(Study.study_uid == study_uid)) or "none")


def missing_instances(db: Database, study_uid: str) -> list[MissingInstance]:
    """Instances of `study_uid` in the database whose file is not in this workstation's store."""
    with db.session() as s:
        rows = s.execute(
            select(Instance.sop_instance_uid, Series.series_uid, Instance.file_path, Instance.file_sha256,
                   Series.series_number, Instance.instance_number)
            .join(Series, Instance.series_db_id == Series.id).join(Study, Series.study_db_id == Study.id)
            .where(Study.study_uid == study_uid)).all()
    out = [MissingInstance(sop, series, path, sha or "", (sn if sn is not None else 1 << 30,
                                                           inn if inn is not None else 1 << 30, sop))
           for sop, series, path, sha, sn, inn in rows if path and not db.store_path(path).is_file()]
    return sorted(out, key=lambda m: m.order)


def fetch_study(db: Database, node: PacsNode, study_uid: str, progress: FetchProgress | None = None,
                cancel: CancelToken | None = None) -> FetchResult:
    """Bring the missing files of `study_uid` from `node`; raises FetchError when nothing can be fetched."""
    report = progress or (lambda _done, _total, _msg: None)
    missing = missing_instances(db, study_uid)
    result = FetchResult(study_uid, expected=len(missing))
    if not missing:
        result.message = "all images of this study are on this workstation"
        return result
    by_sop = {m.sop_uid: m for m in missing}
    store = ManagedStore(db.store_dir)
    lock = threading.Lock()
    where = node.describe()
    report(0, len(missing), f"fetching {len(missing)} image(s) of this study from {where}")

    placed: set[str] = set()

    def received(staged: StagedFile, _source: str) -> None:
        with lock:
            sop, problem = _place(store, staged, by_sop, placed)
            if problem:
                result.refused.append(problem)
            elif sop not in placed:  # (a copy that arrives twice on a retry is counted once)
                placed.add(sop)
                result.placed += 1
            report(result.placed, result.expected, problem)

    try:
        client = client_for(node)
        listed = {i.sop_uid: i for i in client.find_instances(study_uid)}
        wanted = [listed[m.sop_uid] for m in missing if m.sop_uid in listed]
        if not wanted:
            raise FetchError(f"{where} has none of the {len(missing)} image(s) of study {study_uid} that this "
                             "workstation lacks; they may have been deleted from the archive")
        everything = list(listed.values())
        for part in (wanted[:1], wanted[1:]):  # the first image alone first: the viewer opens on it
            if not part:
                continue
            if cancel is not None and cancel.cancelled:
                raise RetrieveCancelled("cancelled")
            if isinstance(client, DicomWebClient):
                client.retrieve(study_uid, part, everything, cancel=cancel, on_staged=received, store=store)
            elif isinstance(client, DimseClient):
                identifiers = DimseClient.retrieve_identifiers(study_uid, part, everything)
                client.get(identifiers, sop_classes=sorted({i.sop_class_uid for i in part if i.sop_class_uid}),
                           cancel=cancel, on_staged=received, store=store)
    except RetrieveCancelled as exc:
        raise FetchError(f"fetching study {study_uid} was cancelled; {result.placed} of {result.expected} "
                         "image(s) arrived and are kept") from exc
    except PacsError as exc:
        raise FetchError(f"cannot fetch study {study_uid} from {where}: {exc}"
                         + (f" ({result.placed} of {result.expected} image(s) arrived and are kept)"
                            if result.placed else "")) from exc
    still = len(missing_instances(db, study_uid))
    result.message = (f"{result.placed} image(s) fetched from {where}" if not still else
                      f"{result.placed} image(s) fetched from {where}; {still} still missing")
    if result.refused:
        result.message += f"; {len(result.refused)} refused: {result.refused[0]}"
    return result


def _place(store: ManagedStore, staged: StagedFile, by_sop: dict[str, MissingInstance],
           placed: set[str]) -> tuple[str, str]:
    """Put a fetched file where its database row says: (SOP UID, '') when placed, else (UID, why refused)."""
    try:
        try:
            sop = str(dcmread(staged.path, stop_before_pixels=True, specific_tags=["SOPInstanceUID"])
                      .get("SOPInstanceUID", ""))
        except (InvalidDicomError, OSError, ValueError) as exc:
            return "", f"the PACS sent a file that is not DICOM ({exc})"
        if sop in placed:
            return sop, ""
        want = by_sop.get(sop)
        if want is None:
            return sop, f"the PACS sent instance {sop or '(no UID)'}, which this study does not list"
        if want.sha256 and staged.sha256 != want.sha256:
            return sop, (f"the PACS returned other bytes for instance {sop} than were imported (SHA-256 "
                         f"{staged.sha256[:12]}… instead of {want.sha256[:12]}…); not used")
        if store.absolute(want.file_path).exists():
            return sop, f"cannot place instance {sop}: another file is at {want.file_path}"
        name = store.place(staged, want.file_path)
        if name != want.file_path:  # taken meanwhile (place never overwrites): drop ours, never mislabel
            store.remove(name)
            return sop, f"cannot place instance {sop}: another file is at {want.file_path}"
        return sop, ""
    finally:
        staged.discard()
