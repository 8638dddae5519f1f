"""DIMSE client (pynetdicom): C-ECHO, C-FIND, C-GET and C-MOVE against one PACS node.

Every association failure is classified (port closed, timeout, unknown host, rejected with the PACS's
own reason, aborted) into a PacsError; DIMSE failure statuses become PacsRemoteError, so callers get one
clear sentence. Retrieved datasets are handed to `on_instance` one by one: the caller routes them into
the import path, and a failure there becomes a failure status for that single sub-operation.
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from pydicom.dataset import Dataset
from pydicom.uid import (
    JPEG2000,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLosslessSV1,
    RLELossless,
)
from pynetdicom import AE, StoragePresentationContexts, build_context, build_role, evt
from pynetdicom.sop_class import (
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
    Verification,
)

from app.importer.store import ManagedStore, StagedFile
from app.pacs.assoc_logging import drop_unlogged_handlers
from app.pacs.cancel import CancelToken
from app.pacs.errors import (
    AssociationRejectedError,
    PacsConnectionError,
    PacsError,
    PacsRemoteError,
    PacsTimeoutError,
    RetrieveCancelled,
)
from app.pacs.nodes import PacsNode
from app.pacs.query import InstanceResult, QueryFilter, SeriesResult, StudyResult
from app.pacs.receive import StreamingReceiver, guard_pdu_size, stream_to_staging
from app.pacs.scope import RefusalHandler, RefusedInstance, RequestedScope, vet_delivery
from app.pacs.store_response import answer_stores_directly
from app.pacs.tcp import tune_association_socket
from app.pacs.tls import PasswordSource, client_context

log = logging.getLogger(__name__)

# Transfer syntaxes we accept for retrieved images: pydicom decodes all of them with the installed
# pylibjpeg/gdcm plugins, so the PACS never has to transcode (or refuse) compressed studies.
RETRIEVE_SYNTAXES: list[str] = [
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLosslessSV1,
    JPEG2000Lossless,
    JPEG2000,
    RLELossless,
]
_MAX_CONTEXTS = 126  # 128 minus the Q/R context and one spare
CLIENT_MAX_PDU = 4 << 20  # what we advertise; a PACS sending larger PDUs is disconnected

InstanceHandler = Callable[[Dataset], None]
StagedHandler = Callable[[StagedFile, str], None]  # (bytes as they arrived, where from)
ProgressHandler = Callable[[int, int | None], None]  # (sub-operations done, total or None)


def _status_text(status: Dataset | None) -> str:
    if status is None or "Status" not in status:
        return "no response"
    comment = str(status.get("ErrorComment", "") or "").strip()
    text = f"status 0x{int(status.Status):04X}"
    return f"{text} ({comment})" if comment else text


def probe_tcp(host: str, port: int, timeout: float) -> None:
    """Raise the PacsError that says why host:port cannot be reached (returns if it can)."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return
    except socket.gaierror as exc:
        raise PacsConnectionError(f"host {host!r} could not be resolved ({exc.strerror})") from exc
    except ConnectionRefusedError as exc:
        raise PacsConnectionError(
            f"nothing is listening at {host}:{port}: is the PACS running and the port right?"
        ) from exc
    except TimeoutError as exc:
        raise PacsTimeoutError(f"{host}:{port} did not answer within {timeout:g} s") from exc
    except OSError as exc:
        raise PacsConnectionError(f"cannot connect to {host}:{port}: {exc.strerror or exc}") from exc


class _ClosedWhileNegotiating(PacsConnectionError):
    """The peer closed the connection before answering the association request."""


class DimseClient:
    """Talks to one DIMSE node; every call opens its own association (safe to use from any thread)."""

    def __init__(self, node: PacsNode, *, key_password: PasswordSource | None = None) -> None:
        self.node = node.validate()
        if node.protocol != "dimse":
            raise PacsError(f"{node.describe()} is not a DIMSE node")
        self.key_password = key_password

    # -- associations ----------------------------------------------------------------------------------
    def _ae(self) -> AE:
        ae = AE(ae_title=self.node.calling_ae)
        t = float(self.node.timeout)
        ae.acse_timeout = t
        ae.dimse_timeout = t
        ae.network_timeout = t
        ae.connection_timeout = min(t, 15.0)
        ae.maximum_pdu_size = CLIENT_MAX_PDU  # large PDUs for bulk retrieval, but bounded (see guard below)
        return ae

    def _open(self, contexts: Sequence[Any], roles: Sequence[Any], handlers: Sequence[tuple]) -> Any:
        """One association attempt; every way it can fail becomes a classified PacsError."""
        ae = self._ae()
        for cx in contexts:
            ae.add_requested_context(cx.abstract_syntax, cx.transfer_syntax)
        seen: dict[str, Any] = {"opened": False, "reject": None}

        def on_open(_event: Any) -> None:
            seen["opened"] = True

        def on_acse(event: Any) -> None:
            prim = getattr(event, "primitive", None)
            kind = type(prim).__name__
            if kind == "A_ASSOCIATE" and prim.result not in (None, 0):
                seen["reject"] = prim
            elif kind in ("A_ABORT", "A_P_ABORT") and event.assoc is not None:
                # A_ABORT: the PACS chose to abort; A_P_ABORT: the connection itself failed
                event.assoc.radstation_abort = kind

        def on_connect(event: Any) -> None:
            on_open(event)
            guard_pdu_size(event, CLIENT_MAX_PDU + 1024)

        all_handlers = [
            (evt.EVT_CONN_OPEN, on_connect),
            (evt.EVT_ACSE_RECV, on_acse),
            (evt.EVT_ESTABLISHED, tune_association_socket),
            (evt.EVT_ESTABLISHED, drop_unlogged_handlers),
            *handlers,
        ]
        node = self.node
        tls_args = None
        if node.tls:
            tls_args = (client_context(node.tls_ca_certificates, node.tls_certificate, node.tls_private_key,
                                       check_hostname=node.tls_check_hostname, password=self.key_password), node.host)
        started = time.monotonic()
        try:
            assoc = ae.associate(
                node.host, node.port, ae_title=node.ae_title, ext_neg=list(roles), evt_handlers=all_handlers,
                tls_args=tls_args,
            )
        except ssl.SSLError as exc:
            raise PacsConnectionError(
                f"{node.describe()}: the TLS handshake failed ({exc.reason or exc}): check the PACS's certificate "
                "against the configured CAs, and our client certificate"
            ) from exc
        except (OSError, RuntimeError) as exc:
            raise PacsConnectionError(f"{node.describe()}: cannot open an association: {exc}") from exc
        if not assoc.is_established:
            if assoc.is_rejected or seen["reject"] is not None:
                prim = seen["reject"]
                why = f"{prim.reason_str} ({prim.result_str}, from {prim.source_str})" if prim else "no reason given"
                hint = ""
                if prim is not None and prim.diagnostic == 7:
                    hint = f"; check the called AE title {node.ae_title!r}"
                elif prim is not None and prim.diagnostic == 3:
                    hint = f"; the PACS does not know RadStation's AE title {node.calling_ae!r}"
                raise AssociationRejectedError(f"{node.describe()} rejected the association: {why}{hint}")
            if not seen["opened"]:
                probe_tcp(node.host, node.port, min(float(node.timeout), 15.0))
                raise PacsTimeoutError(f"{node.describe()}: the connection could not be opened in time")
            if getattr(assoc, "radstation_abort", "") == "A_ABORT":
                raise PacsRemoteError(f"{node.describe()} aborted the association request")
            if time.monotonic() - started < 0.9 * float(node.timeout):
                raise _ClosedWhileNegotiating(
                    f"{node.describe()} closed the connection while negotiating the association "
                    f"(does it accept the called AE {node.ae_title!r} and calling AE {node.calling_ae!r}?)"
                )
            raise PacsTimeoutError(
                f"{node.describe()} accepted the connection but did not answer the association request "
                f"within {node.timeout:g} s (is it a DICOM port?)"
            )
        return assoc

    @contextmanager
    def associate(
        self,
        contexts: Sequence[Any],
        roles: Sequence[Any] = (),
        handlers: Sequence[tuple] = (),
    ) -> Iterator[Any]:
        """An established association, released (or aborted on error) afterwards."""
        try:
            assoc = self._open(contexts, roles, handlers)
        except _ClosedWhileNegotiating:
            # Some archives send their A-ASSOCIATE-RJ and close at once; now and then the close wins the
            # race and the reason is lost. One more attempt gets the reason (or the same clear error).
            assoc = self._open(contexts, roles, handlers)
        try:
            yield assoc
        except BaseException:
            if assoc.is_established:
                assoc.abort()
            raise
        else:
            if assoc.is_established:
                assoc.release()

    def _check_context(self, assoc: Any, abstract_syntax: str, what: str) -> None:
        if not any(cx.abstract_syntax == abstract_syntax for cx in assoc.accepted_contexts):
            raise AssociationRejectedError(f"{self.node.describe()} does not accept {what} requests")

    def _raise_lost(self, assoc: Any, what: str, tail: str = "") -> None:
        """The association ended without a final response: say whether the PACS aborted it or the
        connection was lost / timed out."""
        node = self.node.describe()
        deadline = time.monotonic() + 1.0  # the abort primitive is processed on the reactor thread
        while not getattr(assoc, "radstation_abort", "") and time.monotonic() < deadline:
            time.sleep(0.01)
        if getattr(assoc, "radstation_abort", "") == "A_ABORT":
            raise PacsRemoteError(
                f"{node} aborted the association during {what}: it refused or could not process the request "
                f"(does it allow {what} from AE title {self.node.calling_ae!r}?){tail}"
            )
        raise PacsConnectionError(
            f"{node} stopped answering during {what} (connection lost or no reply within "
            f"{self.node.timeout:g} s){tail}"
        )

    @staticmethod
    def _dropped(assoc: Any) -> bool:
        return assoc.is_aborted or not assoc.is_established

    # -- C-ECHO ----------------------------------------------------------------------------------------
    def echo(self) -> str:
        """C-ECHO; returns a short success message or raises a PacsError."""
        with self.associate([build_context(Verification)]) as assoc:
            status = assoc.send_c_echo()
            if status is None or "Status" not in status:
                raise PacsConnectionError(f"{self.node.describe()} did not answer the C-ECHO")
            if int(status.Status) != 0:
                raise PacsRemoteError(f"{self.node.describe()} answered the C-ECHO with {_status_text(status)}")
        return f"C-ECHO to {self.node.describe()} succeeded"

    # -- C-FIND ----------------------------------------------------------------------------------------
    def _find(self, identifier: Dataset, limit: int | None = None) -> list[Dataset]:
        model = StudyRootQueryRetrieveInformationModelFind
        out: list[Dataset] = []
        with self.associate([build_context(model)]) as assoc:
            self._check_context(assoc, model, "C-FIND")
            for status, ident in assoc.send_c_find(identifier, model):
                if status is None or "Status" not in status:
                    self._raise_lost(assoc, "C-FIND")
                code = int(status.Status)
                if code in (0xFF00, 0xFF01):
                    if ident is not None and (limit is None or len(out) < limit):
                        out.append(ident)
                elif code == 0x0000:
                    break
                else:
                    raise PacsRemoteError(f"{self.node.describe()} failed the C-FIND: {_status_text(status)}")
        return out

    def find_studies(self, query: QueryFilter) -> list[StudyResult]:
        q = query.normalized()
        ds = Dataset()
        ds.QueryRetrieveLevel = "STUDY"
        ds.PatientName = q.name_pattern()
        ds.PatientID = q.patient_id
        ds.PatientBirthDate = ""
        ds.StudyDate = q.date_range
        ds.StudyTime = ""
        ds.AccessionNumber = q.accession
        ds.StudyDescription = q.description_pattern()
        ds.ModalitiesInStudy = q.modality
        ds.StudyInstanceUID = ""
        ds.NumberOfStudyRelatedSeries = None
        ds.NumberOfStudyRelatedInstances = None
        results = [StudyResult.from_dataset(r) for r in self._find(ds, q.limit)]
        if q.modality:  # some archives ignore ModalitiesInStudy matching; filter again to be sure
            results = [r for r in results if not r.modalities or q.modality in r.modality_list]
        return results

    def find_series(self, study_uid: str) -> list[SeriesResult]:
        ds = Dataset()
        ds.QueryRetrieveLevel = "SERIES"
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = ""
        ds.Modality = ""
        ds.SeriesNumber = None
        ds.SeriesDescription = ""
        ds.NumberOfSeriesRelatedInstances = None
        out = [SeriesResult.from_dataset(r, study_uid) for r in self._find(ds)]
        return sorted(out, key=lambda s: (s.number is None, s.number or 0, s.series_uid))

    def find_instances(self, study_uid: str) -> list[InstanceResult]:
        ds = Dataset()
        ds.QueryRetrieveLevel = "IMAGE"
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = ""
        ds.SOPInstanceUID = ""
        ds.SOPClassUID = ""
        return [InstanceResult.from_dataset(r, study_uid) for r in self._find(ds)]

    # -- retrieval identifiers -------------------------------------------------------------------------
    @staticmethod
    def retrieve_identifiers(
        study_uid: str, wanted: Sequence[InstanceResult] | None, everything: Sequence[InstanceResult] | None
    ) -> list[Dataset]:
        """Smallest set of C-GET/C-MOVE identifiers that fetches `wanted` (None: the whole study).

        A whole study is one STUDY-level request; a series missing entirely is one SERIES-level request;
        the rest are IMAGE-level requests listing SOP Instance UIDs (list matching on unique keys).
        """
        if wanted is None or (everything is not None and len(wanted) == len(everything)):
            ds = Dataset()
            ds.QueryRetrieveLevel = "STUDY"
            ds.StudyInstanceUID = study_uid
            return [ds]
        by_series: dict[str, list[str]] = {}
        for inst in wanted:
            by_series.setdefault(inst.series_uid, []).append(inst.sop_uid)
        series_size: dict[str, int] = {}
        for inst in everything or ():
            series_size[inst.series_uid] = series_size.get(inst.series_uid, 0) + 1
        out: list[Dataset] = []
        for series_uid, sops in by_series.items():
            ds = Dataset()
            ds.StudyInstanceUID = study_uid
            ds.SeriesInstanceUID = series_uid
            if series_size.get(series_uid) == len(sops):
                ds.QueryRetrieveLevel = "SERIES"
                out.append(ds)
                continue
            for start in range(0, len(sops), 100):  # keep each identifier well under PDU limits
                part = Dataset()
                part.QueryRetrieveLevel = "IMAGE"
                part.StudyInstanceUID = study_uid
                part.SeriesInstanceUID = series_uid
                part.SOPInstanceUID = sops[start : start + 100]
                out.append(part)
        return out

    @staticmethod
    def _storage_contexts(sop_classes: Sequence[str]) -> list[Any]:
        classes = sorted({c for c in sop_classes if c})
        if not classes:
            classes = [cx.abstract_syntax for cx in StoragePresentationContexts]
        return [build_context(c, RETRIEVE_SYNTAXES) for c in classes[:_MAX_CONTEXTS]]

    # -- C-GET -----------------------------------------------------------------------------------------
    def get(
        self,
        identifiers: Sequence[Dataset],
        on_instance: InstanceHandler | None = None,
        *,
        sop_classes: Sequence[str] = (),
        cancel: CancelToken | None = None,
        progress: ProgressHandler | None = None,
        on_staged: StagedHandler | None = None,
        store: ManagedStore | None = None,
        on_refused: RefusalHandler | None = None,
    ) -> int:
        """C-GET each identifier on one association; returns the number of instances stored locally.

        With `on_staged` (and the `store` to stage into) each instance is streamed to a staging file as
        it arrives and handed over as bytes - never decoded here; otherwise `on_instance` gets datasets.
        A staged instance whose data set is not the one its C-STORE request announced, or that lies
        outside the identifier being retrieved (another study, series or instance), is refused with a
        failure status and discarded (`app.pacs.scope`); `on_refused` hears why.
        """
        if (on_staged is None) == (on_instance is None) or (on_staged is not None and store is None):
            raise ValueError("give on_instance, or on_staged together with store")
        model = StudyRootQueryRetrieveInformationModelGet
        storage = self._storage_contexts(sop_classes)
        roles = [build_role(cx.abstract_syntax, scp_role=True) for cx in storage]
        counter = {"stored": 0, "failed": 0, "error": ""}
        lock = threading.Lock()
        receiver = StreamingReceiver(store, None, lambda: self.node.ae_title) if store is not None else None
        source = f"C-GET from {self.node.describe()}"
        requested = {"scope": RequestedScope("")}  # the identifier being retrieved

        def failed(exc: Exception | str) -> int:
            with lock:
                counter["failed"] += 1
                counter["error"] = str(exc)
            log.warning("could not store a retrieved instance: %s", exc)
            return 0xA700

        def on_store(event: Any) -> int | Dataset:
            staged = None
            if receiver is not None:
                received = receiver.take(int(event.request.MessageID))
                staged = received.staged if received is not None else None
                if staged is None:
                    return failed(received.error if received is not None else "no data set")
            if cancel is not None and cancel.cancelled:
                # Offered after the user cancelled: refused, so the cancel stops the import at once
                # instead of when the PACS gets round to the C-CANCEL (it may stream the whole study first).
                if staged is not None:
                    staged.discard()
                return 0xA700
            if staged is not None:
                req = event.request
                try:
                    vet_delivery(staged, requested["scope"], source,
                                 announced_instance=str(req.AffectedSOPInstanceUID or ""),
                                 announced_class=str(req.AffectedSOPClassUID or ""))
                except RefusedInstance as refusal:
                    failed(refusal)
                    if on_refused is not None:
                        on_refused(refusal)
                    return refusal.response()
            try:  # an instance that already arrived is kept even if the user just cancelled
                if staged is not None:
                    assert on_staged is not None
                    on_staged(staged, source)
                else:
                    ds = event.dataset
                    ds.file_meta = event.file_meta
                    assert on_instance is not None
                    on_instance(ds)
            except Exception as exc:  # noqa: BLE001 - reported as a sub-operation failure, never a crash
                return failed(exc)
            with lock:
                counter["stored"] += 1
            return 0x0000

        def on_established(event: Any) -> None:
            answer_stores_directly(event.assoc)
            if receiver is not None:
                stream_to_staging(event.assoc, receiver)

        handlers = [(evt.EVT_C_STORE, on_store), (evt.EVT_ESTABLISHED, on_established)]
        try:
            with self.associate([build_context(model), *storage], roles=roles, handlers=handlers) as assoc:
                self._check_context(assoc, model, "C-GET")
                for ident in identifiers:
                    requested["scope"] = RequestedScope.from_identifier(ident)
                    self._run_retrieve(
                        assoc.send_c_get(ident, model), "C-GET", assoc, cancel, progress,
                        local_failures=lambda: int(counter["failed"]),
                    )
        finally:
            if receiver is not None:
                receiver.close()
        return int(counter["stored"])

    # -- C-MOVE ----------------------------------------------------------------------------------------
    def move(
        self,
        identifiers: Sequence[Dataset],
        destination_ae: str,
        *,
        cancel: CancelToken | None = None,
        progress: ProgressHandler | None = None,
        local_failures: Callable[[], int] | None = None,
    ) -> None:
        """C-MOVE each identifier to `destination_ae` (RadStation's Storage SCP, which imports them)."""
        model = StudyRootQueryRetrieveInformationModelMove
        with self.associate([build_context(model)]) as assoc:
            self._check_context(assoc, model, "C-MOVE")
            for ident in identifiers:
                responses = assoc.send_c_move(ident, destination_ae, model)
                self._run_retrieve(responses, "C-MOVE", assoc, cancel, progress, destination_ae, local_failures)

    def _run_retrieve(
        self,
        responses: Iterator[tuple[Dataset, Dataset | None]],
        what: str,
        assoc: Any,
        cancel: CancelToken | None,
        progress: ProgressHandler | None,
        destination: str = "",
        local_failures: Callable[[], int] | None = None,
    ) -> None:
        """Drive one retrieve's responses. Sub-operations that failed because RadStation refused the
        instance (the importer's rules) are not a PACS error: the caller reports them as partial."""
        node = self.node.describe()
        for status, _ident in responses:
            if status is None or "Status" not in status:
                if cancel is not None and cancel.cancelled:
                    raise RetrieveCancelled(f"{what} from {node} cancelled")
                self._raise_lost(assoc, what, "; what arrived so far is kept")
            code = int(status.Status)
            done = sum(int(status.get(k, 0) or 0) for k in (
                "NumberOfCompletedSuboperations", "NumberOfFailedSuboperations", "NumberOfWarningSuboperations"))
            remaining = status.get("NumberOfRemainingSuboperations")
            if code in (0xFF00, 0xFF01):
                if cancel is not None and cancel.cancelled:
                    assoc.abort()  # stops the PACS at once; instances already imported stay
                    raise RetrieveCancelled(f"{what} from {node} cancelled")
                if progress is not None:
                    progress(done, done + int(remaining) if remaining is not None else None)
                continue
            if code == 0x0000:
                return
            if code == 0xFE00:
                raise RetrieveCancelled(f"{what} from {node} cancelled")
            failed = int(status.get("NumberOfFailedSuboperations", 0) or 0)
            if failed and local_failures is not None and local_failures() >= failed:
                return  # every failure was our own refusal: partial, explained by the importer
            if code == 0xB000:  # sub-operations failed: partial; the caller compares counts
                log.warning("%s from %s finished with %d failed sub-operations", what, node, failed)
                return
            if code == 0xA801:
                raise PacsRemoteError(
                    f"{node} does not know the move destination {destination!r}: add RadStation's AE title, "
                    "host and port to the PACS's list of DICOM peers"
                )
            if what == "C-MOVE" and failed:
                raise PacsRemoteError(
                    f"{node} could not send the images to {destination!r} ({failed} failed, "
                    f"{_status_text(status)}): check that the PACS has RadStation's Storage SCP address "
                    "and that the SCP is reachable from it"
                )
            if code in (0xA701, 0xA702):
                raise PacsRemoteError(f"{node} ran out of resources during {what}: {_status_text(status)}")
            if what == "C-MOVE":
                raise PacsRemoteError(
                    f"{node} failed the C-MOVE to move destination {destination!r}: {_status_text(status)}. "
                    "Most often the PACS does not know that AE title: add RadStation's AE title, host and "
                    "Storage SCP port to the PACS's list of DICOM peers"
                )
            raise PacsRemoteError(f"{node} failed the {what}: {_status_text(status)}")
        if self._dropped(assoc):
            raise PacsConnectionError(f"{node} dropped the connection during {what}; what arrived so far is kept")
