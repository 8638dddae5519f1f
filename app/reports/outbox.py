"""The outbox: report documents queued for a PACS, sent with retries, marked sent only on confirmation.

Items live in the database, so a crash never loses one: an item found in 'sending' at start-up was never
confirmed and goes back to 'retry'. Back-off doubles per attempt (base 5 s, at most 10 min).
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import or_, select

from app import access_audit
from app.pacs.errors import PacsError
from app.pacs.nodes import NodeStore, PacsNode
from app.reports import audit
from app.reports.models import OutboxItem
from app.reports.service import ReportError, ReportService
from app.reports.users import AuthSession

DOCUMENTS = ("sr", "pdf", "kos", "ai-sr", "gsps", "measurements", "interest-kos")
DOCUMENT_LABELS = {"sr": "Report SR", "pdf": "Report PDF", "kos": "Key images (KOS)", "ai-sr": "AI results SR",
                   "gsps": "Measurements (GSPS)", "measurements": "Measurements (TID 1500)",
                   "interest-kos": "Images of interest (KOS)"}


@dataclass(frozen=True)
class OutboxRow:
    id: int
    version_id: int
    document: str
    destination: str
    protocol: str
    state: str
    attempts: int
    max_attempts: int
    last_error: str
    sop_instance_uid: str
    created_at: dt.datetime | None
    sent_at: dt.datetime | None
    next_attempt_at: dt.datetime | None


def _aware(t: dt.datetime | None) -> dt.datetime | None:
    return t if t is None or t.tzinfo else t.replace(tzinfo=dt.UTC)


def build_payload(service: ReportService, version_id: int, document: str) -> tuple[bytes, str]:
    """DICOM Part 10 bytes for `document` of a signed version, and its SOP Instance UID. The SR and PDF are
    the documents stored (and DICOM-signed) at sign time, and so is the KOS of versions signed since it is
    signed too; AI results SR, GSPS and TID 1500 are built from the version now (their UIDs follow the
    version, so a resend replaces)."""
    from pydicom import dcmread

    from app.reports.exporting import signed_document

    if document not in DOCUMENTS:
        raise ReportError(f"document must be one of {DOCUMENTS}")
    if service.version(version_id).status != "final":
        raise ReportError("only signed reports are sent")
    if document in ("sr", "pdf"):
        data = signed_document(service, version_id, "sr" if document == "sr" else "pdf-dicom")
        return data, str(dcmread(io.BytesIO(data), stop_before_pixels=True).SOPInstanceUID)
    if document == "kos":  # signed at sign time; versions signed before that build it unsigned below
        from app.reports.artefacts import KIND_KOS

        data = service.artefact(version_id, KIND_KOS)
        if data is not None:
            return data, str(dcmread(io.BytesIO(data), stop_before_pixels=True).SOPInstanceUID)
    from app.reports.document import build_document

    ds = _related_object(service, build_document(service, version_id), document)
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue(), str(ds.SOPInstanceUID)


def _related_object(service: ReportService, doc, document: str):
    """The KOS, AI results SR, GSPS or TID 1500 of the signed version (app.dicom_objects.report_objects)."""
    from app.dicom_objects import report_objects as ro

    observer = ro.signer_name(doc)
    if document == "kos":
        ds = ro.report_kos(doc, observer)
    elif document == "ai-sr":
        ds = ro.report_ai_sr(service.db, doc)
    elif document == "gsps":
        ds = ro.report_gsps(service.db, doc, observer)
    elif document == "interest-kos":
        ds = ro.interest_kos(service.db, doc, observer)
    else:
        ds = ro.report_measurements(service.db, doc, observer)
    if ds is None:
        raise ReportError(f"this report has no {DOCUMENT_LABELS[document]} to send")
    return ds


def available_documents(service: ReportService, version_id: int) -> tuple[str, ...]:
    """What there is to send for a signed version: SR and PDF always; KOS with key images; the AI results
    SR when the AI drafted it; GSPS when the study has measurements or annotations, TID 1500 with measurements;
    a KOS "Of Interest" when the reader flagged images (K)."""
    from app.dicom_objects.report_objects import study_annotations
    from app.reports.document import build_document

    doc = build_document(service, version_id)
    out = ["sr"] + (["pdf"] if service.signed_pdf(version_id) is not None else [])
    if doc.key_images:
        out.append("kos")
    if doc.version.ai_generated and doc.version.ai_draft:
        out.append("ai-sr")
    try:
        items = study_annotations(service.db, doc.identity.study_uid)
    except (OSError, ValueError):  # an image file missing from the store: no measurement objects then
        items = []
    if items:
        out.append("gsps")
    if any(item.has_measurements for item in items):  # arrows and notes alone make no TID 1500
        out.append("measurements")
    from app.db.interest_store import DbInterestStore

    if DbInterestStore(service.db).load(doc.identity.study_uid):
        out.append("interest-kos")
    return tuple(out)


class Outbox:
    def __init__(self, service: ReportService, nodes: Callable[[str], PacsNode] | None = None,
                 sender: Callable[[PacsNode, bytes], str] | None = None, base_delay_s: float = 5.0,
                 max_delay_s: float = 600.0) -> None:
        from app.reports.send import send

        self.service = service
        self.db = service.db
        self.nodes = nodes or (lambda name: NodeStore(service.settings).get(name))
        self.sender = sender or send
        self.base_delay_s = base_delay_s
        self.max_delay_s = max_delay_s

    def enqueue(self, version_id: int, destination: str, user: AuthSession | None,
                documents: tuple[str, ...] = ("sr",), max_attempts: int = 5) -> list[int]:
        node = self.nodes(destination).validate()
        ids = []
        for document in documents:
            payload, uid = build_payload(self.service, version_id, document)
            created_by = user.username if user else access_audit.actor()[:64]

            def queue(s, document=document, payload=payload, uid=uid,  # type: ignore[no-untyped-def]
                      created_by=created_by) -> int:
                item = OutboxItem(version_id=version_id, document=document, destination=node.name,
                                  protocol="stow" if node.protocol == "dicomweb" else "cstore", payload=payload,
                                  sop_instance_uid=uid, created_by=created_by,
                                  max_attempts=max_attempts, state="queued",
                                  next_attempt_at=dt.datetime.now(dt.UTC))
                s.add(item)
                s.flush()
                audit.append(s, "send", item.created_by, "report_version", version_id,
                             {"outbox_item": item.id, "document": document, "destination": node.name,
                              "state": "queued"})
                return item.id

            ids.append(self.db.run_write(queue))  # the audit chain's read and append under one write lock
        return ids

    def items(self, include_sent: bool = True) -> list[OutboxRow]:
        with self.db.session() as s:
            q = select(OutboxItem).order_by(OutboxItem.id.desc())
            if not include_sent:
                q = q.where(OutboxItem.state != "sent")
            return [OutboxRow(i.id, i.version_id, i.document, i.destination, i.protocol, i.state, i.attempts,
                              i.max_attempts, i.last_error, i.sop_instance_uid, _aware(i.created_at),
                              _aware(i.sent_at), _aware(i.next_attempt_at)) for i in s.scalars(q)]

    def recover(self) -> int:
        """After a crash: items left 'sending' were never confirmed; queue them again."""
        def requeue(s) -> int:  # type: ignore[no-untyped-def]
            stuck = list(s.scalars(select(OutboxItem).where(OutboxItem.state == "sending")))
            for item in stuck:
                item.state, item.next_attempt_at = "retry", dt.datetime.now(dt.UTC)
            return len(stuck)

        return self.db.run_write(requeue)

    def retry_now(self, item_id: int) -> None:
        """Manual retry, also for items that used up their attempts."""
        def again(s) -> None:  # type: ignore[no-untyped-def]
            item = s.get(OutboxItem, item_id)
            if item is None:
                raise ReportError(f"no outbox item {item_id}")
            if item.state == "sent":
                return
            item.state, item.next_attempt_at = "retry", dt.datetime.now(dt.UTC)
            if item.attempts >= item.max_attempts:
                item.max_attempts = item.attempts + 1

        self.db.run_write(again)

    def process_due(self, now: dt.datetime | None = None, cancelled: Callable[[], bool] = lambda: False) -> int:
        """Try every item that is due; returns how many were confirmed sent."""
        now = now or dt.datetime.now(dt.UTC)
        with self.db.session() as s:
            due = [i.id for i in s.scalars(select(OutboxItem).where(
                OutboxItem.state.in_(("queued", "retry")),
                or_(OutboxItem.next_attempt_at.is_(None), OutboxItem.next_attempt_at <= now)).order_by(OutboxItem.id))]
        sent = 0
        for item_id in due:
            if cancelled():
                break
            sent += self.attempt(item_id)
        return sent

    def attempt(self, item_id: int) -> bool:
        def claim(s) -> tuple[bytes, str] | None:  # type: ignore[no-untyped-def]
            item = s.get(OutboxItem, item_id)
            if item is None or item.state not in ("queued", "retry"):
                return None
            item.state, item.attempts = "sending", item.attempts + 1
            item.updated_at = dt.datetime.now(dt.UTC)
            return item.payload, item.destination

        claimed = self.db.run_write(claim)  # read-then-write transactions begin holding the write lock
        if claimed is None:
            return False
        payload, destination = claimed
        try:
            node = self.nodes(destination)
            message = self.sender(node, payload)
            error = ""
        except (PacsError, OSError, ValueError) as exc:
            message, error = "", str(exc) or type(exc).__name__
        return self.db.run_write(lambda s: self._record_attempt(s, item_id, message, error))

    def _record_attempt(self, s, item_id: int, message: str, error: str) -> bool:  # type: ignore[no-untyped-def]
        """The attempt's outcome and its audit entry, in one write transaction (run again while busy)."""
        item = s.get(OutboxItem, item_id)
        now = dt.datetime.now(dt.UTC)
        item.updated_at = now
        details = {"outbox_item": item.id, "document": item.document, "destination": item.destination,
                   "attempt": item.attempts}
        if not error:
            item.state, item.sent_at, item.last_error = "sent", now, ""
            audit.append(s, "send", item.created_by, "report_version", item.version_id,
                         details | {"state": "sent", "peer": message})
            return True
        item.last_error = error
        if item.attempts >= item.max_attempts:
            item.state, item.next_attempt_at = "failed", None
        else:
            delay = min(self.max_delay_s, self.base_delay_s * 2 ** (item.attempts - 1))
            item.state, item.next_attempt_at = "retry", now + dt.timedelta(seconds=delay)
        audit.append(s, "send_failed", item.created_by, "report_version", item.version_id,
                     details | {"state": item.state, "error": error[:500]})
        return False
