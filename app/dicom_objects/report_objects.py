"""The DICOM objects that go with one signed report version, built from the database.

- KOS: the report's key images ("For Report Attachment") and the report SR itself;
- KOS "Of Interest": the images the reader flagged with K while reading (a second KOS, apart from the report's);
- AI results SR: when the report was drafted with the AI, the engine's findings on the AI draft text
  (labeler: present/absent/uncertain), with the reader's probability where the draft recorded one;
- GSPS and TID 1500: the study's measurements, with the display the reader used where the viewer gave it.

UIDs are derived from the report version (`ReportDocument.uid`), so the report SR can reference the KOS and
the AI SR before they are built, and sending twice replaces rather than duplicates.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import highdicom as hd
import pydicom
from pydicom.dataset import Dataset
from sqlalchemy import select

from app.db.database import Database
from app.db.measurement_store import DbMeasurementStore
from app.db.models import AiDraft, Instance, Measurement, Series, Study
from app.dicom_objects.ai_results import AiFinding, AiProvenance, build_ai_results_sr
from app.dicom_objects.annotations import AnnotatedImage
from app.dicom_objects.common import ImageRef, header_of
from app.dicom_objects.display import DisplayState
from app.dicom_objects.key_objects import build_kos
from app.dicom_objects.measurement_report import build_measurement_report
from app.dicom_objects.presentation_state import build_gsps
from app.reports.document import ReportDocument
from app.reports.identity_attributes import identity_attributes

STATE_OF_LABEL = {1: "present", 0: "absent", -1: "uncertain"}
COMPREHENSIVE_SR = "1.2.840.10008.5.1.4.1.1.88.33"


def procedure_concept(doc: ReportDocument) -> hd.sr.CodedConcept:
    code = doc.procedure_code or {}
    return hd.sr.CodedConcept(code.get("value", "18748-4"), code.get("scheme", "LN"),
                              code.get("meaning", "Diagnostic imaging study"))


def image_files(db: Database, sop_uids: list[str]) -> dict[str, Any]:
    """SOP Instance UID -> file path in the store, for the instances the database has."""
    if not sop_uids:
        return {}
    with db.session() as s:
        rows = s.execute(select(Instance.sop_instance_uid, Instance.file_path)
                         .where(Instance.sop_instance_uid.in_(sop_uids))).all()
    return {uid: db.store_path(path) for uid, path in rows}


def image_headers(db: Database, sop_uids: list[str]) -> list[Dataset]:
    """Headers (no pixels) of the images, in the given order; a missing file is left out."""
    files = image_files(db, sop_uids)
    out = []
    for uid in sop_uids:
        path = files.get(uid)
        if path is None or not path.is_file():
            continue
        out.append(header_of(pydicom.dcmread(path, stop_before_pixels=True)))
    return out


# -- key images -------------------------------------------------------------------------------------------
def report_kos(doc: ReportDocument, observer: str) -> hd.ko.KeyObjectSelectionDocument | None:
    """The report's key images and the report SR, or None when the report has no key image."""
    if not doc.key_images:
        return None
    refs = [ImageRef(r.study_uid, r.series_uid, r.sop_class_uid, r.sop_instance_uid) for r in doc.key_images]
    refs.append(ImageRef(doc.identity.study_uid, doc.uid("sr-series"), COMPREHENSIVE_SR, doc.uid("sr")))
    return build_kos(identity_attributes(doc), refs, series_uid=doc.uid("kos-series"), sop_uid=doc.uid("kos"),
                     observer=observer, purpose="report", institution=doc.institution,
                     description=f"Key images of the {doc.title} report, version {doc.version.version_no}",
                     instance_number=doc.version.version_no)


def interest_kos(db: Database, doc: ReportDocument, observer: str) -> hd.ko.KeyObjectSelectionDocument | None:
    """The study's images flagged "Of Interest" while reading, as a KOS titled (113000, DCM, "Of Interest");
    None when none is flagged."""
    from app.db.interest_store import DbInterestStore

    flags = DbInterestStore(db).load(doc.identity.study_uid)
    if not flags:
        return None
    refs = [ImageRef(f.study_uid, f.series_uid, f.sop_class_uid, f.sop_instance_uid) for f in flags]
    return build_kos(identity_attributes(doc), refs, series_uid=doc.uid("interest-kos-series"),
                     sop_uid=doc.uid("interest-kos"), observer=observer, purpose="interest",
                     institution=doc.institution, instance_number=doc.version.version_no,
                     description=f"Images flagged Of Interest while reading ({len(refs)})")


# -- AI results -------------------------------------------------------------------------------------------
def ai_findings(ai_draft: Mapping[str, Any]) -> list[AiFinding]:
    """The AI draft's findings as the labeler reads its text, with the reader's probabilities when recorded."""
    from engines.labeler import label_report

    text = "\n".join(str(ai_draft.get(k, "")) for k in ("findings", "impression"))
    labels = label_report(text).findings
    reading = _reading(ai_draft)
    return [AiFinding(name, STATE_OF_LABEL[int(v)], reading.get(name)) for name, v in labels.items()]


def _reading(ai_draft: Mapping[str, Any]) -> dict[str, float]:
    raw = (ai_draft.get("extra") or {}).get("finding_probabilities")
    if not raw:
        return {}
    try:
        data = json.loads(raw) if isinstance(raw, str) else dict(raw)
        return {str(k): float(v) for k, v in data.items() if 0.0 <= float(v) <= 1.0}
    except (ValueError, TypeError):
        return {}


def ai_provenance(ai_draft: Mapping[str, Any]) -> AiProvenance:
    extra = ai_draft.get("extra") or {}
    model = str(extra.get("model", ""))
    params = {k: str(extra[k]) for k in ("steps", "told_findings", "device") if extra.get(k) not in (None, "")}
    return AiProvenance(engine=str(ai_draft.get("engine", "")) or "unknown engine",
                        version=model.rstrip("/").rsplit("/", 1)[-1] if model else "",
                        weights_sha256=str(ai_draft.get("weights_hash", "")), seed=str(ai_draft.get("seed", "") or ""),
                        parameters=params)


def _ai_images(db: Database, doc: ReportDocument, ai_draft: Mapping[str, Any]) -> list[Dataset]:
    uids: list[str] = []
    draft_id = (ai_draft.get("extra") or {}).get("draft_id")
    if draft_id not in (None, "", "None"):
        with db.session() as s:
            row = s.get(AiDraft, int(draft_id))
            uids = list(row.images_used or []) if row is not None else []
    if not uids:
        uids = [r.sop_instance_uid for r in doc.key_images[:1]]
    headers = image_headers(db, uids)
    if headers or not doc.key_images:
        return headers
    # the files are not in the store (e.g. a study listed but not yet fetched): reference by UID only
    from app.dicom_objects.key_objects import reference_dataset

    ref = doc.key_images[0]
    return [reference_dataset(identity_attributes(doc),
                              ImageRef(ref.study_uid, ref.series_uid, ref.sop_class_uid, ref.sop_instance_uid))]


def report_ai_sr(db: Database, doc: ReportDocument) -> hd.sr.Comprehensive3DSR | None:
    """The AI results SR of a report drafted with the AI, or None when the AI was not used."""
    ai = doc.version.ai_draft
    if not (doc.version.ai_generated and ai):
        return None
    findings = ai_findings(ai)
    if not findings:
        return None
    return build_ai_results_sr(identity_attributes(doc), findings, ai_provenance(ai), _ai_images(db, doc, ai),
                               series_uid=doc.uid("ai-sr-series"), sop_uid=doc.uid("ai-sr"),
                               procedure=procedure_concept(doc), institution=doc.institution,
                               instance_number=doc.version.version_no)


# -- measurements -----------------------------------------------------------------------------------------
def study_annotations(db: Database, study_uid: str,
                      displays: Mapping[str, DisplayState] | None = None) -> list[AnnotatedImage]:
    """Every image of the study with measurements, read in full (ROI statistics need the pixels)."""
    with db.session() as s:
        rows = s.execute(
            select(Instance.sop_instance_uid, Instance.file_path).join(Series, Series.id == Instance.series_db_id)
            .join(Study, Study.id == Series.study_db_id)
            .where(Study.study_uid == study_uid,
                   Instance.sop_instance_uid.in_(select(Measurement.sop_instance_uid).distinct()))
            .order_by(Series.series_number, Instance.instance_number)).all()
    store = DbMeasurementStore(db)
    out = []
    for uid, path in rows:
        records = store.load(uid)
        if not records:
            continue
        ds = pydicom.dcmread(db.store_path(path))
        out.append(AnnotatedImage.from_records(ds, records, (displays or {}).get(uid)))
    return out


def _greyscale(items: list[AnnotatedImage]) -> list[AnnotatedImage]:
    return [i for i in items if int(i.dataset.get("SamplesPerPixel", 1)) == 1]


def report_gsps(db: Database, doc: ReportDocument, observer: str,
                displays: Mapping[str, DisplayState] | None = None):
    """One GSPS per display polarity/orientation group of the study's measured greyscale images."""
    items = _greyscale(study_annotations(db, doc.identity.study_uid, displays))
    if not items:
        return None
    return build_gsps(items, series_uid=doc.uid("gsps-series"), sop_uid=doc.uid("gsps"), creator=observer,
                      institution=doc.institution, instance_number=doc.version.version_no)


def report_measurements(db: Database, doc: ReportDocument, observer: str):
    items = [i for i in study_annotations(db, doc.identity.study_uid) if i.has_measurements]
    if not items:
        return None
    return build_measurement_report(items, series_uid=doc.uid("tid1500-series"), sop_uid=doc.uid("tid1500"),
                                    observer=observer, procedure=procedure_concept(doc),
                                    institution=doc.institution, instance_number=doc.version.version_no)


def signer_name(doc: ReportDocument) -> str:
    v = doc.version
    return (v.signature.get("signer_name") if v.signature else "") or v.signer or v.author or "Unknown"
