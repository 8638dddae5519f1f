"""The import pipeline: sources -> candidate files -> validated headers -> managed store + database.

Files and received instances take the same path: probed (`probe_file`), staged into the store's private
staging area and hashed while copied, given their final name, and only then committed - a short write
transaction per chunk (`commit_every` files, or one network batch) that inserts rows and nothing else.
No file is copied or hashed while the database is locked, so a report autosave or an incoming C-STORE
waits milliseconds, not a chunk's copy time. `Committer` keeps one hierarchy cache (patient, study,
series ids) across the transactions of one import run or one association.

Duplicates (same SOP Instance UID, same content) are skipped and reported. The same UID with different
content is a conflict: the new copy is kept beside the first, recorded as an `InstanceConflict`, and the
study is flagged - never dropped, never overwriting. Objects cut short outside their pixel data are
stored marked incomplete and their study is flagged; an import cut off by a crash flags its studies when
the next import starts.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pydicom.dataset import Dataset
from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session

from app.db.base import utcnow
from app.db.database import Database, DatabaseBusyError, is_busy_error
from app.db.models import ImportBatch, ImportIssue, Instance, InstanceConflict, Patient, Series, Study
from app.db.study_flags import clear_flag, set_flag
from app.importer.probe import InstanceHeader, ProbedFile, RejectedFile, probe_file
from app.importer.report import FileIssue, ImportReport
from app.importer.sources import Candidate, SourceExpander, ZipLimits
from app.importer.store import ManagedStore, StagedFile, body_sha256, relative_path
from app.paths import private_dir

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]
ALREADY_PRESENT = "already present"
RESTORED = "already in the database; its missing file was put back"
CONFLICT_KEPT = ("same SOP Instance UID as a stored instance but different content: "
                 "kept beside it and the study flagged")
_STRICT_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")


@dataclass(frozen=True)
class DatasetOutcome:
    """Result of importing one object (a received instance, or one file of a batch)."""

    status: str  # imported | duplicate | conflict | failed
    sop_instance_uid: str = ""
    study_uid: str = ""
    reason: str = ""
    transient: bool = False  # failed for a reason that may pass (database busy, disk full): send again

    @property
    def ok(self) -> bool:
        return self.status in ("imported", "duplicate", "conflict")


@dataclass
class Incoming:
    """One validated object whose bytes are staged, waiting to be committed."""

    header: InstanceHeader
    staged: StagedFile | None  # None: found identical to a stored instance before staging
    display: str
    incomplete: str = ""
    transfer_syntax: str = ""
    duplicate_of: str = ""  # set when known to be an identical duplicate before staging


class _Conflict(ValueError):
    """The file's hierarchy contradicts what the database holds (e.g. a series under another study)."""


class ImportService:
    def __init__(self, database: Database, *, commit_every: int = 200, zip_limits: ZipLimits | None = None) -> None:
        self.database = database
        self.store = ManagedStore(database.store_dir)
        self.commit_every = max(1, commit_every)
        self.zip_limits = zip_limits

    # ------------------------------------------------------------------ files
    def run(
        self,
        sources: Iterable[str | os.PathLike[str]],
        progress: Progress | None = None,
        cancel: threading.Event | None = None,
    ) -> ImportReport:
        """Import everything reachable from `sources`; never raises for bad files (see the report)."""
        started = time.perf_counter()
        sources = [str(s) for s in sources]
        report = ImportReport(sources=sources)
        self.recover_interrupted()
        report.batch_id = self._start_batch(sources)
        if progress:
            progress(0, 0)  # scanning: total not known yet
        tmp: Path | None = None
        committer = Committer(self.database, self.store, report.batch_id)
        try:
            workdir = private_dir(self.database.store_dir.parent / "import-work")
            _remove_stale_workdirs(workdir)
            tmp = Path(tempfile.mkdtemp(dir=workdir, prefix=f"batch-{os.getpid()}-"))  # 0700
            expander = SourceExpander(tmp, cancel, self.zip_limits)
            candidates = expander.expand(sources)
            report.issues.extend(expander.issues)
            report.failed += len(expander.issues)
            report.total = len(candidates)
            self._import_candidates(candidates, report, committer, progress, cancel)
        finally:
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)
            report.cancelled = bool(cancel is not None and cancel.is_set())
            report.seconds = time.perf_counter() - started
            self._finish_batch(report, committer)
        return report

    def _import_candidates(
        self,
        candidates: Sequence[Candidate],
        report: ImportReport,
        committer: Committer,
        progress: Progress | None,
        cancel: threading.Event | None,
    ) -> None:
        total = len(candidates)
        done = 0
        last_emit = 0.0
        studies: set[str] = set()

        def tick() -> None:
            nonlocal done, last_emit
            done += 1
            now = time.monotonic()
            if progress and (done == total or now - last_emit > 0.05):
                last_emit = now
                progress(done, total)

        if progress:
            progress(0, total)
        for start in range(0, total, self.commit_every):
            if cancel is not None and cancel.is_set():
                break
            chunk_started = time.perf_counter()
            probed: list[tuple[Candidate, ProbedFile]] = []
            for cand in candidates[start : start + self.commit_every]:
                if cancel is not None and cancel.is_set():
                    break
                try:
                    probed.append((cand, probe_file(cand.path)))
                except RejectedFile as exc:
                    report.failed += 1
                    report.issues.append(FileIssue(cand.display, str(exc)))
                    tick()
            incoming = self._stage_chunk(probed, report, tick)
            for item, outcome in zip(incoming, committer.commit(incoming), strict=True):
                self._count(report, item, outcome, studies)
                tick()
            report.batch_seconds.append(time.perf_counter() - chunk_started)
        report.study_uids = sorted(studies)

    def _stage_chunk(
        self, probed: list[tuple[Candidate, ProbedFile]], report: ImportReport, tick: Callable[[], None]
    ) -> list[Incoming]:
        """Copy the chunk's files into staging (no database lock held); identical duplicates of stored
        instances are recognised by hash first and not copied at all."""
        known = _stored_instances(self.database, [p.header.sop_instance_uid for _, p in probed])
        out: list[Incoming] = []
        for cand, item in probed:
            h = item.header
            stored_sha, stored_path = known.get(h.sop_instance_uid, (None, ""))
            try:
                # (a stored instance whose file is gone, evicted from the cache, is staged: _commit puts it back)
                if stored_sha is not None and item.rewrite is None and self.store.absolute(stored_path).is_file() \
                        and _file_sha(cand.path) == stored_sha:
                    out.append(Incoming(h, None, cand.display, duplicate_of=stored_sha))
                    continue
                staged = self.store.stage_dataset(item.rewrite) if item.rewrite is not None \
                    else self.store.stage_copy(cand.path)
            except OSError as exc:
                report.failed += 1
                report.issues.append(FileIssue(cand.display, f"cannot write to the store: {exc.strerror or exc}"))
                tick()
                continue
            except Exception as exc:  # noqa: BLE001 - e.g. a dataset pydicom cannot re-encode
                report.failed += 1
                report.issues.append(FileIssue(cand.display, f"cannot store: {type(exc).__name__}: {exc}"[:300]))
                tick()
                continue
            ts = h.transfer_syntax_uid or (
                str(item.rewrite.file_meta.TransferSyntaxUID) if item.rewrite is not None else ""
            )
            out.append(Incoming(h, staged, cand.display, item.incomplete, ts))
        return out

    @staticmethod
    def _count(report: ImportReport, item: Incoming, outcome: DatasetOutcome, studies: set[str]) -> None:
        h = item.header
        if outcome.status == "imported":
            report.imported += 1
            studies.add(h.study_uid)
            report.issues.extend(FileIssue(item.display, w, "warning") for w in h.warnings)
        elif outcome.status == "duplicate":
            report.duplicates += 1
            report.issues.append(FileIssue(item.display, outcome.reason or ALREADY_PRESENT, "duplicate"))
        elif outcome.status == "conflict":
            report.imported += 1
            studies.add(h.study_uid)
            report.issues.append(FileIssue(item.display, CONFLICT_KEPT, "warning"))
        else:
            report.failed += 1
            report.issues.append(FileIssue(item.display, outcome.reason))
        report.touched_studies.add(h.study_uid)

    # ---------------------------------------------------------------- network
    def import_dataset(self, ds: Dataset, *, source: str = "network") -> DatasetOutcome:
        """Store one decoded dataset (WADO-RS, C-GET without streaming, generated objects); thread-safe.

        It is encoded once into staging and then takes exactly the path a received file takes."""
        uid = str(ds.get("SOPInstanceUID", "") or "")
        study = str(ds.get("StudyInstanceUID", "") or "")
        try:
            staged = self.store.stage_dataset(ds)
        except OSError as exc:
            return DatasetOutcome("failed", uid, study, f"cannot write to the store: {exc.strerror or exc}", True)
        except Exception as exc:  # noqa: BLE001 - a malformed dataset is a failure, not a crash of the SCP
            return DatasetOutcome("failed", uid, study, f"unreadable dataset: {exc}"[:300])
        return self.import_staged(staged, source)

    def import_staged(self, staged: StagedFile, source: str, committer: Committer | None = None) -> DatasetOutcome:
        """Probe, place and commit one staged file (what a peer sent, as bytes); the staged file is
        always consumed (placed or removed)."""
        incoming = self.examine_staged(staged, source)
        if isinstance(incoming, DatasetOutcome):
            return incoming
        return (committer or Committer(self.database, self.store)).commit([incoming])[0]

    def examine_staged(self, staged: StagedFile, source: str, *, strict_uids: bool = True) -> Incoming | DatasetOutcome:
        """Validate a staged network object; a refusal (the staged file removed) or what to commit."""
        try:
            probed = staged.probed if staged.probed is not None else probe_file(staged.path)
            if strict_uids:
                _check_strict_uids(probed.header)
        except RejectedFile as exc:
            staged.discard()
            return DatasetOutcome("failed", reason=str(exc))
        except OSError as exc:
            staged.discard()
            return DatasetOutcome("failed", reason=f"cannot read the received data: {exc}", transient=True)
        h = probed.header
        return Incoming(h, staged, source, probed.incomplete, h.transfer_syntax_uid)

    # ------------------------------------------------------------------ batch
    def _start_batch(self, sources: list[str]) -> int:
        def work(session: Session) -> int:
            batch = ImportBatch(sources=sources, origin="files", owner=_owner())
            session.add(batch)
            session.flush()
            return batch.id

        return self.database.run_write(work)

    def _finish_batch(self, report: ImportReport, committer: Committer) -> None:
        def work(session: Session) -> None:
            batch = session.get(ImportBatch, report.batch_id)
            if batch is None:
                return
            batch.finished_at = utcnow()
            batch.imported, batch.duplicates, batch.failed = report.imported, report.duplicates, report.failed
            batch.cancelled = report.cancelled
            if report.issues:  # one executemany: 10,000 "already present" rows in well under a second
                session.execute(
                    insert(ImportIssue),
                    [{"batch_id": batch.id, "path": i.path, "reason": i.reason, "severity": i.severity}
                     for i in report.issues],
                )
            if not report.cancelled and report.touched_studies:
                # a finished import of these studies' files: an earlier interrupted import is made good
                for study_id in session.scalars(select(Study.id).where(Study.study_uid.in_(report.touched_studies))):
                    clear_flag(session, study_id, "import_interrupted")

        try:
            self.database.run_write(work)
        except SQLAlchemyError as exc:  # the import itself is committed; only its log is missing
            log.error("could not record the import report: %s", exc)

    def recover_interrupted(self) -> int:
        """Flag the studies of imports that stopped without finishing (their process is gone); returns
        how many such imports were found. Called at the start of every import."""
        host = socket.gethostname()
        with self.database.session() as session:
            open_batches = session.execute(
                select(ImportBatch.id, ImportBatch.owner, ImportBatch.sources, ImportBatch.started_at)
                .where(ImportBatch.finished_at.is_(None), ImportBatch.owner != "")
            ).all()
        dead = [(bid, sources) for bid, owner, sources, _ in open_batches if _owner_gone(owner, host)]
        if not dead:
            return 0

        def work(session: Session) -> None:
            for bid, sources in dead:
                batch = session.get(ImportBatch, bid)
                if batch is None or batch.finished_at is not None:
                    continue
                batch.finished_at = utcnow()
                batch.cancelled = True
                study_ids = session.scalars(
                    select(Series.study_db_id).join(Instance, Instance.series_db_id == Series.id)
                    .where(Instance.import_batch_id == bid).distinct()
                ).all()
                where = ", ".join(str(s) for s in (sources or [])) or "an unknown source"
                for study_id in study_ids:
                    set_flag(session, study_id, "import_interrupted",
                             f"the import from {where} stopped before it finished (the program ended); "
                             "images may be missing - import the same source again to complete the study")

        self.database.run_write(work)
        return len(dead)


@dataclass
class _HierarchyIds:
    """Patient/study/series ids known to exist (committed), by their keys."""

    patients: dict[str, int] = field(default_factory=dict)
    studies: dict[str, int] = field(default_factory=dict)
    series: dict[str, tuple[int, str]] = field(default_factory=dict)  # uid -> (id, study uid)

    def merge(self, other: _HierarchyIds) -> None:
        self.patients.update(other.patients)
        self.studies.update(other.studies)
        self.series.update(other.series)


def _patient_key(h: InstanceHeader) -> str:
    if h.patient_id:
        return f"id:{h.issuer}|{h.patient_id}"
    if h.patient_name:
        return f"name:{h.patient_name}|{h.birth_date}"
    return f"study:{h.study_uid}"  # nothing identifies the patient: one per study, never merged


def _chunks(values: list, size: int = 500):  # type: ignore[no-untyped-def]
    for start in range(0, len(values), size):
        yield values[start : start + size]


class _Lookup:
    """Finds or creates the hierarchy rows of a whole batch inside one transaction with a handful of
    set-based statements (a SELECT ... IN and an executemany INSERT per level), so the write lock is
    held for milliseconds even when a batch brings 200 new studies. Consults the committed cache first."""

    def __init__(self, session: Session, known: _HierarchyIds) -> None:
        self.session = session
        self.known = known
        self.new = _HierarchyIds()

    def _series(self, uid: str) -> tuple[int, str] | None:
        return self.new.series.get(uid) or self.known.series.get(uid)

    def _study(self, uid: str) -> int | None:
        return self.new.studies.get(uid) or self.known.studies.get(uid)

    def prepare(self, headers: list[InstanceHeader]) -> None:
        """Make sure every header's series exists (creating studies and patients as needed)."""
        s = self.session
        need = {h.series_uid: h for h in headers if self._series(h.series_uid) is None}
        for part in _chunks(list(need)):
            for uid, sid, study_uid in s.execute(
                select(Series.series_uid, Series.id, Study.study_uid).join(Study, Series.study_db_id == Study.id)
                .where(Series.series_uid.in_(part))
            ):
                self.new.series[uid] = (int(sid), str(study_uid))
        new_series = [h for uid, h in need.items() if uid not in self.new.series]
        if not new_series:
            return
        studies = {h.study_uid: h for h in new_series if self._study(h.study_uid) is None}
        for part in _chunks(list(studies)):
            for uid, sid in s.execute(select(Study.study_uid, Study.id).where(Study.study_uid.in_(part))):
                self.new.studies[uid] = int(sid)
        new_studies = [h for uid, h in studies.items() if uid not in self.new.studies]
        if new_studies:
            self._create_studies(new_studies)
        now = utcnow()
        s.execute(insert(Series), [{
            "series_uid": h.series_uid, "study_db_id": self._study(h.study_uid), "modality": h.modality,
            "series_number": h.series_number, "description": h.series_description, "body_part": h.body_part,
            "frame_of_reference_uid": h.frame_of_reference_uid,
        } for h in new_series])
        study_of = {h.series_uid: h.study_uid for h in new_series}
        for part in _chunks(list(study_of)):
            for uid, sid in s.execute(select(Series.series_uid, Series.id).where(Series.series_uid.in_(part))):
                self.new.series[uid] = (int(sid), study_of[uid])
        self._add_modalities(new_series, now)

    def _create_studies(self, headers: list[InstanceHeader]) -> None:
        s = self.session
        keys = {_patient_key(h): h for h in headers}
        wanted = [k for k in keys if k not in self.new.patients and k not in self.known.patients]
        for part in _chunks(wanted):
            for key, pid in s.execute(select(Patient.patient_key, Patient.id).where(Patient.patient_key.in_(part))):
                self.new.patients[key] = int(pid)
        missing = [k for k in wanted if k not in self.new.patients]
        if missing:
            s.execute(insert(Patient), [{
                "patient_key": k, "patient_id": keys[k].patient_id, "issuer": keys[k].issuer,
                "name": keys[k].patient_name, "name_search": name_search_text(keys[k].patient_name),
                "birth_date": keys[k].birth_date, "sex": keys[k].sex,
            } for k in missing])
            for part in _chunks(missing):
                for key, pid in s.execute(select(Patient.patient_key, Patient.id).where(Patient.patient_key.in_(part))):
                    self.new.patients[key] = int(pid)
        s.execute(insert(Study), [{
            "study_uid": h.study_uid,
            "patient_db_id": self.new.patients.get(_patient_key(h)) or self.known.patients[_patient_key(h)],
            "study_date": h.study_date, "study_time": h.study_time, "accession": h.accession,
            "description": h.study_description, "referring_physician": h.referring_physician,
            "modalities": "", "report_status": "none",
        } for h in headers])
        for part in _chunks([h.study_uid for h in headers]):
            for uid, sid in s.execute(select(Study.study_uid, Study.id).where(Study.study_uid.in_(part))):
                self.new.studies[uid] = int(sid)

    def _add_modalities(self, new_series: list[InstanceHeader], now: object) -> None:
        added: dict[int, set[str]] = {}
        for h in new_series:
            if h.modality:
                added.setdefault(int(self._study(h.study_uid) or 0), set()).add(h.modality)
        if not added:
            return
        current = dict(self.session.execute(select(Study.id, Study.modalities).where(Study.id.in_(list(added)))).all())
        updates = []
        for sid, mods in added.items():
            have = set(filter(None, (current.get(sid) or "").split("\\")))
            if not mods <= have:
                updates.append({"sid": sid, "mods": "\\".join(sorted(have | mods))[:100], "now": now})
        if updates:
            table = Study.__table__
            self.session.connection().execute(
                update(table).where(table.c.id == bindparam("sid"))
                .values(modalities=bindparam("mods"), updated_at=bindparam("now")), updates)

    def series_id(self, h: InstanceHeader) -> int:
        """The series row id for `h` (after `prepare`); _Conflict when the series is another study's."""
        hit = self._series(h.series_uid)
        if hit is None:  # pragma: no cover - prepare() creates every series it is given
            raise _Conflict(f"series {h.series_uid} could not be created")
        if hit[1] != h.study_uid:
            raise _Conflict(f"series {h.series_uid} already belongs to study {hit[1]}, this file says study {h.study_uid}")
        return hit[0]

    def study_id(self, h: InstanceHeader) -> int | None:
        return self._study(h.study_uid)


class Committer:
    """Commits staged objects in short write transactions. One per import run or network association:
    the hierarchy cache it keeps (ids of committed patients, studies and series) spares each batch the
    lookups. Thread-safe (one commit at a time)."""

    ATTEMPTS = 3  # whole-batch attempts after a uniqueness race with another writer

    def __init__(self, database: Database, store: ManagedStore, batch_id: int | None = None) -> None:
        self.database = database
        self.store = store
        self.batch_id = batch_id
        self.known = _HierarchyIds()
        self._lock = threading.Lock()

    def commit(self, items: Sequence[Incoming]) -> list[DatasetOutcome]:
        """Place and commit `items`; one outcome per item, in order. Every staged file is consumed."""
        with self._lock:
            return self._commit(list(items))

    def _commit(self, items: list[Incoming]) -> list[DatasetOutcome]:
        results: list[DatasetOutcome | None] = [None] * len(items)
        stored = _stored_instances(self.database, [i.header.sop_instance_uid for i in items])
        first_in_batch: dict[str, int] = {}
        conflicts: dict[int, str] = {}  # item index -> reason kept as a conflict
        placed: dict[int, str] = {}
        for i, item in enumerate(items):
            h = item.header
            uid = h.sop_instance_uid
            if item.staged is None:
                results[i] = _outcome("duplicate", h, ALREADY_PRESENT)
                continue
            earlier = first_in_batch.get(uid)
            if uid in stored and earlier is None and self._file_gone(stored[uid][1]) \
                    and item.staged.sha256 == stored[uid][0]:
                results[i] = self._restore(item, stored[uid][1])
                first_in_batch[uid] = i
                continue
            if uid in stored or earlier is not None:
                other_sha, other_path = stored[uid] if uid in stored else (
                    items[earlier].staged.sha256 if items[earlier].staged else "",  # type: ignore[index, union-attr]
                    placed.get(earlier, ""),  # type: ignore[arg-type]
                )
                if self._same_content(item.staged, other_sha, other_path):
                    item.staged.discard()
                    results[i] = _outcome("duplicate", h, ALREADY_PRESENT)
                    continue
                conflicts[i] = CONFLICT_KEPT
            else:
                first_in_batch[uid] = i
            target = relative_path(h.study_uid, h.series_uid, uid)
            if uid in stored and stored[uid][1] == target and self._file_gone(target):
                target = target.removesuffix(".dcm") + ".1.dcm"  # never where the stored row's evicted file goes
            try:
                placed[i] = self.store.place(item.staged, target)
            except OSError as exc:
                item.staged.discard()
                results[i] = _outcome("failed", h, f"cannot write to the store: {exc.strerror or exc}", transient=True)
        if placed:
            try:
                outcomes = self._transaction(items, placed, conflicts)
            except Exception as exc:  # noqa: BLE001 - nothing was committed: remove what was placed
                for rel in placed.values():
                    self.store.remove(rel)
                transient = isinstance(exc, DatabaseBusyError | OSError | OperationalError) or is_busy_error(exc)
                why = f"database error: {exc}" if isinstance(exc, SQLAlchemyError) else f"cannot store: {exc}"
                for i in placed:
                    results[i] = _outcome("failed", items[i].header, why[:400], transient=transient)
            else:
                for i, outcome in outcomes.items():
                    results[i] = outcome
                    if outcome.status in ("failed", "duplicate"):
                        self.store.remove(placed[i])
        return [r if r is not None else _outcome("failed", items[k].header, "not stored")
                for k, r in enumerate(results)]

    def _file_gone(self, relative: str) -> bool:
        return bool(relative) and not self.store.absolute(relative).exists()

    def _restore(self, item: Incoming, relative: str) -> DatasetOutcome:
        """The very bytes of a stored instance whose file is gone (evicted from this workstation's cache)
        arrived again: put them back where its row says, no new row."""
        assert item.staged is not None
        try:
            name = self.store.place(item.staged, relative)
        except OSError as exc:
            item.staged.discard()
            return _outcome("failed", item.header, f"cannot write to the store: {exc.strerror or exc}", transient=True)
        if name != relative:  # taken meanwhile (place never overwrites): the row's file is there after all
            self.store.remove(name)
        return _outcome("duplicate", item.header, RESTORED)

    def _same_content(self, staged: StagedFile | None, other_sha: str, other_path: str) -> bool:
        if staged is None or staged.sha256 == other_sha:
            return True
        if not other_path:
            return False
        try:
            return body_sha256(staged.path) == body_sha256(self.store.absolute(other_path))
        except OSError:
            return False  # the stored copy is unreadable: keep the new one too

    def _transaction(
        self, items: list[Incoming], placed: dict[int, str], conflicts: dict[int, str]
    ) -> dict[int, DatasetOutcome]:
        last: Exception | None = None
        lookups: list[_Lookup] = []

        def work(session: Session) -> dict[int, DatasetOutcome]:
            lookup = _Lookup(session, self.known)
            lookups.append(lookup)
            return self._write(session, lookup, items, placed, conflicts)

        for _attempt in range(self.ATTEMPTS):
            try:
                out = self.database.run_write(work)
            except IntegrityError as exc:  # another writer created the same row: look again
                last = exc
                self.known = _HierarchyIds()
                continue
            self.known.merge(lookups[-1].new)
            return out
        assert last is not None
        raise last

    def _write(
        self,
        session: Session,
        lookup: _Lookup,
        items: list[Incoming],
        placed: dict[int, str],
        conflicts: dict[int, str],
    ) -> dict[int, DatasetOutcome]:
        out: dict[int, DatasetOutcome] = {}
        uids = [items[i].header.sop_instance_uid for i in placed]
        present = set(session.scalars(select(Instance.sop_instance_uid).where(Instance.sop_instance_uid.in_(uids))))
        rows: list[dict] = []
        conflict_rows: list[tuple[int, str]] = []
        incomplete_studies: dict[int, str] = {}
        inserted: set[str] = set()
        lookup.prepare([items[i].header for i in placed
                        if i not in conflicts and items[i].header.sop_instance_uid not in present])
        for i, rel in placed.items():
            item = items[i]
            h = item.header
            uid = h.sop_instance_uid
            if i in conflicts or uid in present or uid in inserted:
                if i not in conflicts and uid not in inserted:
                    # stored by another writer since we looked: same bytes means a duplicate
                    sha = session.scalar(select(Instance.file_sha256).where(Instance.sop_instance_uid == uid))
                    if sha == (item.staged.sha256 if item.staged else ""):
                        out[i] = _outcome("duplicate", h, ALREADY_PRESENT)
                        continue
                conflict_rows.append((i, rel))
                continue
            try:
                series_id = lookup.series_id(h)
            except _Conflict as exc:
                out[i] = _outcome("failed", h, str(exc))
                continue
            assert item.staged is not None
            rows.append(_instance_row(h, series_id, rel, item.staged.size, item.staged.sha256, self.batch_id,
                                      item.transfer_syntax, item.incomplete))
            inserted.add(uid)
            out[i] = _outcome("imported", h, "")
            if item.incomplete:
                study_id = lookup.study_id(h)
                if study_id is None:
                    study_id = session.scalar(select(Study.id).where(Study.study_uid == h.study_uid))
                if study_id is not None:
                    incomplete_studies.setdefault(study_id, item.incomplete)
        if rows:
            session.execute(insert(Instance), rows)
        for study_id, example in incomplete_studies.items():
            n = session.scalar(
                select(func.count(Instance.id)).join(Series, Instance.series_db_id == Series.id)
                .where(Series.study_db_id == study_id, Instance.incomplete != "")
            )
            set_flag(session, study_id, "incomplete_objects",
                     f"{n} object(s) of this study are cut short and stored incomplete (e.g. {example})")
        if conflict_rows:
            self._record_conflicts(session, items, conflict_rows, out)
        return out

    def _record_conflicts(
        self, session: Session, items: list[Incoming], conflict_rows: list[tuple[int, str]], out: dict[int, DatasetOutcome]
    ) -> None:
        uids = {items[i].header.sop_instance_uid for i, _ in conflict_rows}
        firsts = dict(session.execute(
            select(Instance.sop_instance_uid, Instance.id).where(Instance.sop_instance_uid.in_(uids))
        ).all())
        flagged: set[int] = set()
        for i, rel in conflict_rows:
            item = items[i]
            h = item.header
            instance_id = firsts.get(h.sop_instance_uid)
            if instance_id is None:  # the first copy was refused in this same batch: nothing to attach to
                out[i] = _outcome("failed", h, "an earlier copy with this SOP Instance UID was refused")
                continue
            assert item.staged is not None
            session.add(InstanceConflict(
                instance_db_id=instance_id, sop_instance_uid=h.sop_instance_uid, study_uid=h.study_uid,
                series_uid=h.series_uid, file_path=rel, file_size=item.staged.size,
                file_sha256=item.staged.sha256, source=item.display[:1000],
            ))
            out[i] = _outcome("conflict", h, CONFLICT_KEPT)
            study_id = session.scalar(
                select(Series.study_db_id).join(Instance, Instance.series_db_id == Series.id)
                .where(Instance.id == instance_id)
            )
            if study_id is not None:
                flagged.add(study_id)
        session.flush()
        for study_id in flagged:
            n = session.scalar(
                select(func.count(InstanceConflict.id)).join(Instance, InstanceConflict.instance_db_id == Instance.id)
                .join(Series, Instance.series_db_id == Series.id).where(Series.study_db_id == study_id)
            )
            set_flag(session, study_id, "conflicting_copies",
                     f"{n} instance(s) arrived again with the same SOP Instance UID but different content; "
                     "both copies are kept (radstation conflicts)")


def _outcome(status: str, h: InstanceHeader, reason: str, *, transient: bool = False) -> DatasetOutcome:
    return DatasetOutcome(status, h.sop_instance_uid, h.study_uid, reason, transient)


def _check_strict_uids(h: InstanceHeader) -> None:
    """Network peers must send real UIDs: anything but digits and dots (a path, '..') is refused."""
    for label, value in (("Study Instance UID", h.study_uid), ("Series Instance UID", h.series_uid),
                         ("SOP Instance UID", h.sop_instance_uid)):
        if not _STRICT_UID.match(value):
            raise RejectedFile(f"{label} {value[:80]!r} is not a valid DICOM UID (digits and dots only)")


def _stored_instances(database: Database, uids: list[str]) -> dict[str, tuple[str, str]]:
    """{uid: (sha256, relative path)} of the stored instances among `uids` (a read, no write lock)."""
    out: dict[str, tuple[str, str]] = {}
    unique = list(dict.fromkeys(uids))
    with database.session() as session:
        for start in range(0, len(unique), 500):
            rows = session.execute(
                select(Instance.sop_instance_uid, Instance.file_sha256, Instance.file_path)
                .where(Instance.sop_instance_uid.in_(unique[start : start + 500]))
            )
            out.update({uid: (sha or "", path or "") for uid, sha, path in rows})
    return out




def _file_sha(path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _owner_gone(owner: str, host: str) -> bool:
    """True when the process that owns a batch has certainly ended (same host, pid not running)."""
    owner_host, _, pid_text = owner.rpartition(":")
    if owner_host != host or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _remove_stale_workdirs(workdir: Path) -> None:
    """Extraction folders of imports whose process is gone (a killed zip import) are deleted."""
    host = socket.gethostname()
    try:
        entries = list(workdir.iterdir())
    except OSError:
        return
    for entry in entries:
        parts = entry.name.split("-")
        if len(parts) >= 3 and parts[0] == "batch" and parts[1].isdigit() and _owner_gone(f"{host}:{parts[1]}", host):
            shutil.rmtree(entry, ignore_errors=True)


def name_search_text(name: str) -> str:
    """'Doe^John^^Dr' -> 'DOE JOHN DR': what name searches match against, word by word."""
    return " ".join(name.replace("^", " ").replace("=", " ").upper().split())


def _instance_row(
    h: InstanceHeader, series_id: int, rel: str, size: int, sha: str, batch_id: int | None, ts: str, incomplete: str
) -> dict:
    return {
        "sop_instance_uid": h.sop_instance_uid,
        "sop_class_uid": h.sop_class_uid,
        "series_db_id": series_id,
        "instance_number": h.instance_number,
        "number_of_frames": h.number_of_frames,
        "rows": h.rows,
        "columns": h.columns,
        "image_position": list(h.image_position) if h.image_position else None,
        "image_orientation": list(h.image_orientation) if h.image_orientation else None,
        "slice_location": h.slice_location,
        "transfer_syntax_uid": ts,
        "file_path": rel,
        "file_size": size,
        "file_sha256": sha,
        "incomplete": incomplete[:2000],
        "import_batch_id": batch_id,
        "imported_at": utcnow(),
    }
