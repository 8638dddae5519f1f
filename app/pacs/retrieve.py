"""Retrieving studies from a PACS into the local database, with per-study progress, cancel and resume.

Resume is by difference: the PACS lists the study's instances first, those already here (a database row
and its file on this workstation's disk: a file evicted from the local cache counts as missing, and the
importer puts the same bytes back where the row says) are skipped, and only the rest is requested (C-GET / C-MOVE identifiers or WADO-RS series). C-GET and
WADO-RS instances are streamed to staging as the bytes that arrived and committed in short batches on a
helper thread; a cancel, a timeout or a PACS that dies mid-transfer leaves a consistent database holding
the instances that arrived (what was staged is committed before the retrieval returns), and retrieving
again fetches the rest. A study left partial is flagged in the worklist until a retrieval completes it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from pydicom.dataset import Dataset
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from app import access_audit
from app.db.database import Database
from app.db.study_flags import clear_flag_by_uid, set_flag_by_uid
from app.importer import DatasetOutcome
from app.importer.store import StagedFile
from app.pacs.cancel import CancelToken
from app.pacs.clients import client_for
from app.pacs.dicomweb import DicomWebClient
from app.pacs.dimse import DimseClient
from app.pacs.errors import (
    PacsConfigError,
    PacsConnectionError,
    PacsError,
    PacsRemoteError,
    PartialRetrieveError,
    RetrieveCancelled,
)
from app.pacs.getscu import GetscuRetriever, StalledSmallInstances, choose_transport
from app.pacs.nodes import PacsNode, StorageScpConfig
from app.pacs.scope import RefusedInstance
from app.pacs.scp import StorageScp
from app.pacs.sink import BatchingImporter, ImportSink, local_sop_uids
from app.settings import current_settings

log = logging.getLogger(__name__)

STATES = ("queued", "listing", "running", "done", "partial", "failed", "cancelled")


@dataclass
class StudyProgress:
    """One study's row in the progress list; `total` is None until the PACS has listed the study."""

    study_uid: str
    state: str = "queued"
    done: int = 0
    total: int | None = None
    message: str = ""

    @property
    def finished(self) -> bool:
        return self.state in ("done", "partial", "failed", "cancelled")


@dataclass
class StudyRetrieveResult:
    study_uid: str
    state: str  # done | partial | failed | cancelled
    expected: int = 0
    already_present: int = 0
    imported: int = 0
    duplicates: int = 0
    failed: int = 0  # instances that arrived but the importer refused (same rules as files)
    message: str = ""
    first_refusal: str = ""  # why the first refused instance was refused (it names the instance)
    error: PacsError | None = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        return self.state == "done"

    @property
    def local(self) -> int:
        return self.already_present + self.imported + self.duplicates


ProgressCallback = Callable[[StudyProgress], None]


class RetrieveService:
    """Retrieves studies from `node` into `database` by the node's method (C-GET, C-MOVE or WADO-RS).

    C-MOVE needs RadStation's Storage SCP: pass the running one (`scp`), or a config from which a
    temporary SCP is started for the duration of the move (default: the `storage_scp` settings).
    """

    # C-GET / WADO-RS: received instances are committed in transactions of up to this many.
    commit_batch = 64

    def __init__(
        self,
        database: Database,
        node: PacsNode,
        *,
        sink: ImportSink | None = None,
        scp: StorageScp | None = None,
        scp_config: StorageScpConfig | None = None,
        cget_transport: str | None = None,
    ) -> None:
        if scp is not None and scp.sink.database is not database:
            raise PacsConfigError("the Storage SCP given for C-MOVE imports into another database")
        self.database = database
        self.node = node.validate()
        self.client = client_for(node)
        self.sink = sink or (scp.sink if scp is not None else ImportSink(database))
        self.scp = scp
        self.scp_config = scp_config
        # C-GET by pynetdicom or DCMTK's getscu (app.pacs.getscu); None: the pacs_cget_transport setting
        self.cget_transport = cget_transport if cget_transport is not None else str(
            current_settings().get("pacs_cget_transport", "auto") or "auto")

    # ------------------------------------------------------------------ many studies
    def retrieve_studies(
        self,
        study_uids: Sequence[str],
        progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
    ) -> list[StudyRetrieveResult]:
        """Retrieve each study; one study's failure does not stop the others, a lost PACS or a cancel does."""
        results: list[StudyRetrieveResult] = []
        stop_reason: tuple[str, PacsError] | None = None
        for uid in study_uids:
            if stop_reason is not None:
                state, err = stop_reason
                result = StudyRetrieveResult(uid, state, message=f"not attempted: {err}", error=err)
            elif cancel is not None and cancel.cancelled:
                err = RetrieveCancelled("cancelled before it started")
                result = StudyRetrieveResult(uid, "cancelled", message=str(err), error=err)
            else:
                result = self.retrieve_study_safely(uid, progress, cancel)
                if result.state == "cancelled" or isinstance(result.error, PacsConnectionError):
                    stop_reason = (result.state, result.error) if result.error else None
            if progress is not None and result.message.startswith(("not attempted", "cancelled before")):
                progress(StudyProgress(uid, result.state, 0, None, result.message))
            results.append(result)
        return results

    def retrieve_study_safely(
        self, study_uid: str, progress: ProgressCallback | None = None, cancel: CancelToken | None = None
    ) -> StudyRetrieveResult:
        """Like `retrieve_study` but a PacsError becomes a failed/cancelled result with a clear message."""
        last: dict[str, int | None] = {"total": None}

        def relay(p: StudyProgress) -> None:
            if p.total is not None:
                last["total"] = p.total
            if progress is not None:
                progress(p)

        try:
            return self.retrieve_study(study_uid, relay, cancel)
        except PacsError as exc:
            state = "cancelled" if isinstance(exc, RetrieveCancelled) else "failed"
            have = len(local_sop_uids(self.database, study_uid))
            total = last["total"]
            message = str(exc)
            if have:  # some of the patient's images did arrive
                access_audit.retrieved(self.database, self.node.describe(), study_uid, state, have)
            if have:
                of = f" of {total}" if total else ""
                message += f"; {have}{of} instance(s) of this study are in the database, retrieve again to resume"
            if progress is not None:
                progress(StudyProgress(study_uid, state, have, total, message))
            return StudyRetrieveResult(
                study_uid, state, expected=total or 0, already_present=have, message=message, error=exc
            )

    # ------------------------------------------------------------------ one study
    def retrieve_study(
        self, study_uid: str, progress: ProgressCallback | None = None, cancel: CancelToken | None = None
    ) -> StudyRetrieveResult:
        """Retrieve the instances of `study_uid` not yet in the database; raises PacsError on failure.

        A retrieval that ends with instances still missing returns state "partial" with the reason
        (`error` is a PartialRetrieveError); the instances that did arrive stay in the database.
        """
        report = progress or (lambda _p: None)
        report(StudyProgress(study_uid, "listing", message="asking the PACS what the study holds"))
        everything = self.client.find_instances(study_uid)
        if not everything:
            raise PacsRemoteError(f"{self.node.describe()} has no instances of study {study_uid}")
        present = local_sop_uids(self.database, study_uid)
        wanted = [i for i in everything if i.sop_uid not in present]
        total = len(everything)
        already = total - len(wanted)
        result = StudyRetrieveResult(study_uid, "running", expected=total, already_present=already)
        if not wanted:
            result.state, result.message = "done", f"all {total} instances were already in the database"
            report(StudyProgress(study_uid, "done", total, total, result.message))
            return result

        lock = threading.Lock()
        method = self.node.retrieve_method
        report(StudyProgress(study_uid, "running", already, total, f"retrieving {len(wanted)} instance(s) by {method}"))

        arrived = {"n": 0}
        refused_uids: set[str] = set()
        answered: set[str] = set()  # every instance that arrived, whatever became of it

        def count(outcome: DatasetOutcome) -> None:
            with lock:
                answered.add(outcome.sop_instance_uid)
                if outcome.status in ("imported", "conflict"):
                    result.imported += 1
                elif outcome.status == "duplicate":
                    result.duplicates += 1
                else:
                    result.failed += 1
                    if not result.first_refusal and outcome.reason:
                        result.first_refusal = outcome.reason
                done = already + max(arrived["n"], result.imported + result.duplicates + result.failed)
            report(StudyProgress(study_uid, "running", done, total))

        def received(staged: StagedFile, source: str) -> None:
            """Progress counts instances as they arrive; they are committed a moment later in a batch."""
            pipeline.put_staged(staged, source)
            with lock:
                arrived["n"] += 1
                done = already + max(arrived["n"], result.imported + result.duplicates + result.failed)
            report(StudyProgress(study_uid, "running", done, total))

        def refused(refusal: RefusedInstance) -> None:
            """An instance the PACS sent that was not the one announced or not part of this study: not
            stored, counted as failed, its reason kept for the message."""
            refused_uids.add(refusal.sop_instance_uid)
            count(self.sink.notify(DatasetOutcome("failed", refusal.sop_instance_uid, study_uid, str(refusal),
                                                  refusal.transient)))

        if cancel is not None and cancel.cancelled:
            raise RetrieveCancelled("cancelled before it started")
        if isinstance(self.client, DimseClient) and method == "c-move":
            identifiers = DimseClient.retrieve_identifiers(study_uid, wanted, everything)
            self._move(study_uid, identifiers, count, cancel)
            return self._finish(result, everything, report)
        # C-GET and WADO-RS: instances arrive as bytes, are staged as they come and committed in batches
        # on a helper thread (one transaction per batch, one hierarchy cache for the whole study).
        pipeline = BatchingImporter(self.sink, count, batch=self.commit_batch)
        try:
            if isinstance(self.client, DicomWebClient):
                self.client.retrieve(study_uid, wanted, everything, cancel=cancel, on_staged=received,
                                     store=self.sink.store, on_refused=refused)
            elif isinstance(self.client, DimseClient):
                identifiers = DimseClient.retrieve_identifiers(study_uid, wanted, everything)
                if choose_transport(self.cget_transport, self.node) == "dcmtk":
                    auto = self.cget_transport == "auto"
                    try:
                        GetscuRetriever(self.node, give_way_when_stalled=auto).get(
                            identifiers, store=self.sink.store, on_staged=received, on_refused=refused, cancel=cancel)
                        reason = "getscu did not deliver them (e.g. a transfer syntax or storage class it does not " \
                                 "propose)"
                    except StalledSmallInstances as stalled:
                        reason = str(stalled)
                    identifiers = []
                    if auto:  # under auto, what getscu left undelivered is asked for again by pynetdicom
                        pipeline.close()  # what getscu delivered is committed first
                        pipeline = BatchingImporter(self.sink, count, batch=self.commit_batch)
                        have = local_sop_uids(self.database, study_uid)
                        rest = [i for i in wanted if i.sop_uid not in have and i.sop_uid not in refused_uids
                                and i.sop_uid not in answered]  # one that arrived and was refused stays refused
                        if rest:
                            log.info("%d instance(s) of %s fetched by pynetdicom: %s", len(rest), study_uid, reason)
                            identifiers = DimseClient.retrieve_identifiers(study_uid, rest, everything)
                if identifiers:
                    sop_classes = [i.sop_class_uid for i in everything if i.sop_class_uid]
                    self.client.get(identifiers, sop_classes=sop_classes, cancel=cancel, on_staged=received,
                                    store=self.sink.store, on_refused=refused)
        finally:
            pipeline.close()  # what arrived is imported even after a cancel or an error
        return self._finish(result, everything, report)

    def _move(
        self,
        study_uid: str,
        identifiers: list[Dataset],
        count: Callable[[DatasetOutcome], None],
        cancel: CancelToken | None,
    ) -> None:
        assert isinstance(self.client, DimseClient)

        refused = {"n": 0}

        def on_outcome(outcome: DatasetOutcome) -> None:
            if outcome.study_uid == study_uid:
                count(outcome)
                if not outcome.ok:
                    refused["n"] += 1

        scp = self.scp
        temporary = scp is None
        if scp is None:
            scp = StorageScp(self.scp_config or StorageScpConfig.from_settings(), self.sink).start()
        elif not scp.running:
            scp.start()
        scp.sink.add_listener(on_outcome)
        try:
            with scp.allow_temporarily(self.node.ae_title):  # the PACS we asked may store its answer
                self.client.move(identifiers, self.node.destination_ae, cancel=cancel,
                                 local_failures=lambda: refused["n"])
        finally:
            scp.sink.remove_listener(on_outcome)
            if temporary:
                scp.stop()

    def _finish(
        self, result: StudyRetrieveResult, everything: list, report: ProgressCallback
    ) -> StudyRetrieveResult:
        have = local_sop_uids(self.database, result.study_uid)
        missing = [i for i in everything if i.sop_uid not in have]
        total = len(everything)
        if not missing:
            result.state = "done"
            result.message = f"{result.imported} instance(s) retrieved" + (
                f", {result.already_present} already present" if result.already_present else ""
            )
        else:
            result.state = "partial"
            why = (
                f"{result.failed} were refused on arrival (first: {result.first_refusal or 'see the import log'})"
                if result.failed
                else "the PACS did not send them"
            )
            result.message = (
                f"{total - len(missing)} of {total} instances are in the database; {len(missing)} missing: {why}. "
                "Retrieve again to fetch the rest."
            )
            result.error = PartialRetrieveError(result.message, total - len(missing), total)
        self._flag(result, len(missing), total)
        access_audit.retrieved(self.database, self.node.describe(), result.study_uid, result.state,
                               result.imported + result.duplicates)
        report(StudyProgress(result.study_uid, result.state, total - len(missing), total, result.message))
        return result

    def _flag(self, result: StudyRetrieveResult, missing: int, total: int) -> None:
        """A partial retrieval marks the study in the worklist; a complete one clears the mark."""

        def work(session: Session) -> None:
            if missing:
                set_flag_by_uid(session, result.study_uid, "retrieve_partial",
                                f"{total - missing} of {total} instances retrieved from {self.node.describe()}; "
                                "retrieve again to fetch the rest")
            else:
                clear_flag_by_uid(session, result.study_uid, "retrieve_partial")

        try:
            self.database.run_write(work)
        except SQLAlchemyError as exc:  # the images are in; only the worklist mark is missing
            log.warning("could not record the retrieval state of %s: %s", result.study_uid, exc)


def retrieve_studies(
    database: Database,
    node: PacsNode,
    study_uids: Sequence[str],
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
    **kwargs: object,
) -> list[StudyRetrieveResult]:
    """Convenience wrapper: `RetrieveService(database, node, **kwargs).retrieve_studies(...)`."""
    return RetrieveService(database, node, **kwargs).retrieve_studies(study_uids, progress, cancel)  # type: ignore[arg-type]
