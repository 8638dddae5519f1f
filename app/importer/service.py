"""The import pipeline: sources -> candidate files -> validated headers -> managed store + database.

Files are processed in chunks committed together (one transaction per `commit_every` files), which
keeps 10,000-file imports fast without holding everything in one transaction: a cancel or a crash
loses at most the chunk in flight, and every committed Instance row points at a complete file.
Duplicates (same SOP Instance UID) are skipped and reported, never overwritten.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pydicom.dataset import Dataset
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from app.db.base import utcnow
from app.db.database import Database
from app.db.models import ImportBatch, ImportIssue, Instance, Patient, Series, Study
from app.importer.probe import InstanceHeader, ProbedFile, RejectedFile, probe_file
from app.importer.report import FileIssue, ImportReport
from app.importer.sources import Candidate, SourceExpander
from app.importer.store import ManagedStore, relative_path

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]
ALREADY_PRESENT = "already present"


@dataclass(frozen=True)
class DatasetOutcome:
    """Result of importing one dataset received from a network peer."""

    status: str  # imported | duplicate | failed
    sop_instance_uid: str = ""
    study_uid: str = ""
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.status in ("imported", "duplicate")


class _Conflict(ValueError):
    """The file's hierarchy contradicts what the database holds (e.g. a series under another study)."""


class ImportService:
    def __init__(self, database: Database, *, commit_every: int = 200) -> None:
        self.database = database
        self.store = ManagedStore(database.store_dir)
        self.commit_every = max(1, commit_every)

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
        report.batch_id = self._start_batch(sources)
        if progress:
            progress(0, 0)  # scanning: total not known yet
        tmp: Path | None = None
        try:
            workdir = self.database.store_dir.parent / "import-work"
            workdir.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(dir=workdir, prefix="batch-"))
            expander = SourceExpander(tmp, cancel)
            candidates = expander.expand(sources)
            report.issues.extend(expander.issues)
            report.failed += len(expander.issues)
            report.total = len(candidates)
            self._import_candidates(candidates, report, progress, cancel)
        finally:
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)
            report.cancelled = bool(cancel is not None and cancel.is_set())
            report.seconds = time.perf_counter() - started
            self._finish_batch(report)
        return report

    def _import_candidates(
        self,
        candidates: Sequence[Candidate],
        report: ImportReport,
        progress: Progress | None,
        cancel: threading.Event | None,
    ) -> None:
        total = len(candidates)
        done = 0
        last_emit = 0.0
        seen: set[str] = set()
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
            self._store_chunk(probed, report, seen, studies, tick)
            report.batch_seconds.append(time.perf_counter() - chunk_started)
        report.study_uids = sorted(studies)

    def _store_chunk(
        self,
        probed: list[tuple[Candidate, ProbedFile]],
        report: ImportReport,
        seen: set[str],
        studies: set[str],
        tick: Callable[[], None],
    ) -> None:
        if not probed:
            return
        try:
            results = self._store_chunk_together(probed, report.batch_id, seen)
        except SQLAlchemyError as exc:
            # E.g. a network import added the same study at the same moment: redo file by file.
            log.info("chunk could not be committed (%s); importing its files one at a time", exc)
            results = [(c, i, self._store_one(i, report.batch_id, seen)) for c, i in probed]
        for cand, item, status in results:
            h = item.header
            if status == "imported":
                report.imported += 1
                studies.add(h.study_uid)
                report.issues.extend(FileIssue(cand.display, w, "warning") for w in h.warnings)
            elif status == "duplicate":
                report.duplicates += 1
                report.issues.append(FileIssue(cand.display, ALREADY_PRESENT, "duplicate"))
            else:
                report.failed += 1
                report.issues.append(FileIssue(cand.display, status.removeprefix("failed:")))
            tick()

    def _store_chunk_together(
        self, probed: list[tuple[Candidate, ProbedFile]], batch_id: int | None, seen: set[str]
    ) -> list[tuple[Candidate, ProbedFile, str]]:
        """One transaction for the chunk; `seen` learns the new UIDs only once it is committed."""
        uids = [p.header.sop_instance_uid for _, p in probed]
        added: set[str] = set()
        results: list[tuple[Candidate, ProbedFile, str]] = []
        with self.database.session() as session:
            existing = set(session.scalars(select(Instance.sop_instance_uid).where(Instance.sop_instance_uid.in_(uids))))
            cache = _HierarchyCache(session)
            for cand, item in probed:
                uid = item.header.sop_instance_uid
                if uid in existing or uid in seen or uid in added:
                    results.append((cand, item, "duplicate"))
                    continue
                try:
                    self._add_instance(session, cache, item, batch_id)
                except SQLAlchemyError:
                    raise
                except Exception as exc:  # noqa: BLE001 - one unwritable file never stops the import
                    results.append((cand, item, f"failed:{_describe(exc)}"))
                    continue
                added.add(uid)
                results.append((cand, item, "imported"))
        seen.update(added)
        return results

    def _store_one(self, item: ProbedFile, batch_id: int | None, seen: set[str]) -> str:
        h = item.header
        if h.sop_instance_uid in seen:
            return "duplicate"
        for _attempt in range(3):
            try:
                with self.database.session() as session:
                    if session.scalar(select(Instance.id).where(Instance.sop_instance_uid == h.sop_instance_uid)):
                        return "duplicate"
                    self._add_instance(session, _HierarchyCache(session), item, batch_id)
                seen.add(h.sop_instance_uid)
                return "imported"
            except IntegrityError:
                continue  # a concurrent writer created the same study/series: look again
            except SQLAlchemyError as exc:
                return f"failed:database error: {exc}"[:400]
            except Exception as exc:  # noqa: BLE001
                return f"failed:{_describe(exc)}"
        return "failed:could not be stored after 3 attempts (concurrent writes)"

    def _add_instance(self, session: Session, cache: _HierarchyCache, item: ProbedFile, batch_id: int | None) -> None:
        h = item.header
        rel = relative_path(h.study_uid, h.series_uid, h.sop_instance_uid)
        # The file first: if it cannot be written, no empty study/series rows are left behind.
        if item.rewrite is not None:
            size, sha = self.store.write_dataset(item.rewrite, rel)
        else:
            size, sha = self.store.copy_in(item.path, rel)
        try:
            series = cache.series_for(h)  # raises _Conflict before creating anything
        except _Conflict:
            self.store.absolute(rel).unlink(missing_ok=True)
            raise
        transfer_syntax = h.transfer_syntax_uid or (
            str(item.rewrite.file_meta.TransferSyntaxUID) if item.rewrite is not None else ""
        )
        session.add(_instance_row(h, series, rel, size, sha, batch_id, transfer_syntax))

    # ---------------------------------------------------------------- network
    def import_dataset(self, ds: Dataset) -> DatasetOutcome:
        """Store one dataset received from a network peer (C-STORE, STOW, C-GET); thread-safe."""
        try:
            header = InstanceHeader.from_dataset(ds)
        except RejectedFile as exc:
            uid = str(ds.get("SOPInstanceUID", "") or "")
            return DatasetOutcome("failed", uid, str(ds.get("StudyInstanceUID", "") or ""), str(exc))
        except Exception as exc:  # noqa: BLE001 - a malformed dataset is a failure, not a crash of the SCP
            return DatasetOutcome("failed", reason=f"unreadable dataset: {exc}")
        item = ProbedFile(Path("<network>"), header, rewrite=ds)
        status = self._store_one(item, None, set())
        reason = ALREADY_PRESENT if status == "duplicate" else status.removeprefix("failed:")
        state = status if status in ("imported", "duplicate") else "failed"
        return DatasetOutcome(state, header.sop_instance_uid, header.study_uid, "" if state == "imported" else reason)

    # ------------------------------------------------------------------ batch
    def _start_batch(self, sources: list[str]) -> int:
        with self.database.session() as session:
            batch = ImportBatch(sources=sources, origin="files")
            session.add(batch)
            session.flush()
            return batch.id

    def _finish_batch(self, report: ImportReport) -> None:
        with self.database.session() as session:
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


class _HierarchyCache:
    """Finds or creates Patient/Study/Series rows for a header within one session."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.patients: dict[str, Patient] = {}
        self.studies: dict[str, Study] = {}
        self.series: dict[str, Series] = {}

    def series_for(self, h: InstanceHeader) -> Series:
        series = self.series.get(h.series_uid)
        if series is None:
            series = self.session.scalar(select(Series).where(Series.series_uid == h.series_uid))
            if series is None:
                study = self._study_for(h)
                series = Series(
                    series_uid=h.series_uid,
                    study=study,
                    modality=h.modality,
                    series_number=h.series_number,
                    description=h.series_description,
                    body_part=h.body_part,
                    frame_of_reference_uid=h.frame_of_reference_uid,
                )
                self.session.add(series)
                _add_modality(study, h.modality)
            self.series[h.series_uid] = series
        if series.study.study_uid != h.study_uid:
            raise _Conflict(
                f"series {h.series_uid} already belongs to study {series.study.study_uid}, "
                f"this file says study {h.study_uid}"
            )
        return series

    def _study_for(self, h: InstanceHeader) -> Study:
        study = self.studies.get(h.study_uid)
        if study is None:
            study = self.session.scalar(select(Study).where(Study.study_uid == h.study_uid))
            if study is None:
                study = Study(
                    study_uid=h.study_uid,
                    patient=self._patient_for(h),
                    study_date=h.study_date,
                    study_time=h.study_time,
                    accession=h.accession,
                    description=h.study_description,
                    referring_physician=h.referring_physician,
                    modalities="",
                    report_status="none",
                )
                self.session.add(study)
            self.studies[h.study_uid] = study
        return study

    def _patient_for(self, h: InstanceHeader) -> Patient:
        if h.patient_id:
            key = f"id:{h.issuer}|{h.patient_id}"
        elif h.patient_name:
            key = f"name:{h.patient_name}|{h.birth_date}"
        else:
            key = f"study:{h.study_uid}"  # nothing identifies the patient: one per study, never merged
        patient = self.patients.get(key)
        if patient is None:
            patient = self.session.scalar(select(Patient).where(Patient.patient_key == key))
            if patient is None:
                patient = Patient(
                    patient_key=key,
                    patient_id=h.patient_id,
                    issuer=h.issuer,
                    name=h.patient_name,
                    name_search=name_search_text(h.patient_name),
                    birth_date=h.birth_date,
                    sex=h.sex,
                )
                self.session.add(patient)
            self.patients[key] = patient
        return patient


def _describe(exc: Exception) -> str:
    if isinstance(exc, _Conflict):
        return str(exc)
    if isinstance(exc, OSError):
        return f"cannot write to the store: {exc.strerror or exc}"
    return f"cannot store: {type(exc).__name__}: {exc}"[:300]


def name_search_text(name: str) -> str:
    """'Doe^John^^Dr' -> 'DOE JOHN DR': what name searches match against, word by word."""
    return " ".join(name.replace("^", " ").replace("=", " ").upper().split())


def _add_modality(study: Study, modality: str) -> None:
    if not modality:
        return
    mods = set(filter(None, (study.modalities or "").split("\\")))
    if modality not in mods:
        study.modalities = "\\".join(sorted(mods | {modality}))[:100]


def _instance_row(
    h: InstanceHeader, series: Series, rel: str, size: int, sha: str, batch_id: int | None, ts: str
) -> Instance:
    return Instance(
        sop_instance_uid=h.sop_instance_uid,
        sop_class_uid=h.sop_class_uid,
        series=series,
        instance_number=h.instance_number,
        number_of_frames=h.number_of_frames,
        rows=h.rows,
        columns=h.columns,
        image_position=list(h.image_position) if h.image_position else None,
        image_orientation=list(h.image_orientation) if h.image_orientation else None,
        slice_location=h.slice_location,
        transfer_syntax_uid=ts,
        file_path=rel,
        file_size=size,
        file_sha256=sha,
        import_batch_id=batch_id,
    )
