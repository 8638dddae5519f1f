"""DICOM Comprehensive SR following TID 2000 (Basic Diagnostic Imaging Report), built with highdicom.

Layout: root CONTAINER "Diagnostic Imaging Report" (LOINC 18748-4, template 2000) with language and
observer context, then one CONTAINER per non-empty section (CID 7001 codes) holding a TEXT item (CID 7002),
key IMAGE references in Findings, the signer as Verifying Observer. The signature made at sign time
(canonical bytes, signature, certificate) rides along in a private block, so `verify` can prove an exported
file carries exactly the signed text without access to the database.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import highdicom as hd
from pydicom import Dataset, dcmread
from pydicom.sr.codedict import codes
from pydicom.uid import ComprehensiveSRStorage, ExplicitVRLittleEndian

from app.dicom_objects.common import person_name
from app.reports.content import ReportContent
from app.reports.document import ReportDocument
from app.reports.identity_attributes import identity_attributes, study_id
from app.reports.verify import Verification, check_signed_payload, compare_sections

PRIVATE_GROUP = 0x0071
PRIVATE_CREATOR = "RADSTATION SIGNED REPORT 1"
ROOT_CODE = hd.sr.CodedConcept("18748-4", "LN", "Diagnostic Imaging Report")
SECTION_CODES = {  # section -> (CID 7001 heading, CID 7002 text item)
    "indication": (codes.DCM.IndicationsForProcedure, codes.DCM.Comment),
    "technique": (codes.DCM.CurrentProcedureDescriptions, codes.DCM.ProcedureDescription),
    "comparison": (codes.DCM.PriorProcedureDescriptions, codes.DCM.PreviousFinding),
    "findings": (codes.DCM.Findings, codes.DCM.Finding),
    "impression": (codes.DCM.Impressions, codes.DCM.Impression),
    "addendum": (codes.DCM.Addendum, codes.DCM.Comment),
}
HEADING_TO_SECTION = {heading.value: key for key, (heading, _) in SECTION_CODES.items()}


class SRExportError(ValueError):
    """The report cannot be written as SR (e.g. not signed when a signed SR is required)."""


def _dicom_dt(iso: str) -> str:
    t = dt.datetime.fromisoformat(iso).astimezone(dt.UTC)
    return t.strftime("%Y%m%d%H%M%S") + "+0000"


def _evidence_datasets(doc: ReportDocument) -> tuple[list[Dataset], bool]:
    refs = doc.evidence or ()
    out = []
    for ref in refs or (None,):
        ds = identity_attributes(doc)
        if ref is not None:
            ds.SeriesInstanceUID = ref.series_uid
            ds.SOPClassUID = ref.sop_class_uid
            ds.SOPInstanceUID = ref.sop_instance_uid
        else:  # no images in the database: identity only, nothing recorded as evidence
            ds.SeriesInstanceUID = doc.uid("placeholder-series")
            ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
            ds.SOPInstanceUID = doc.uid("placeholder-instance")
        out.append(ds)
    return out, bool(refs)


def build_sr(doc: ReportDocument, require_signed: bool = True) -> hd.sr.ComprehensiveSR:
    v = doc.version
    if require_signed and not doc.signed:
        raise SRExportError("only a signed report can be exported as a final SR; sign it first")
    signer_name = v.signature.get("signer_name", v.signer) if v.signature else ""
    observer = hd.sr.ObserverContext(
        observer_type=codes.DCM.Person,
        observer_identifying_attributes=hd.sr.PersonObserverIdentifyingAttributes(
            name=person_name(signer_name or v.author or "Unknown")),
    )
    root = hd.sr.ContainerContentItem(name=ROOT_CODE, template_id="2000")
    items: list[hd.sr.ContentItem] = [
        hd.sr.CodeContentItem(name=codes.DCM.LanguageOfContentItemAndDescendants,
                              value=hd.sr.CodedConcept("en-US", "RFC5646", "English (United States)"),
                              relationship_type="HAS CONCEPT MOD"),
    ]
    items.extend(procedure_items(doc))
    for item in observer:
        item.RelationshipType = "HAS OBS CONTEXT"
        items.append(item)
    content = v.content
    for key, (heading, text_code) in SECTION_CODES.items():
        text = content.get(key).strip()
        if not text and not (key == "findings" and doc.key_images):
            continue
        section = hd.sr.ContainerContentItem(name=heading, relationship_type="CONTAINS")
        children: list[hd.sr.ContentItem] = []
        if text:
            children.append(hd.sr.TextContentItem(name=text_code, value=content.get(key),
                                                  relationship_type="CONTAINS"))
        if key == "findings":
            for ref in doc.key_images:
                children.append(hd.sr.ImageContentItem(
                    name=codes.DCM.BestIllustrationOfFinding, referenced_sop_class_uid=ref.sop_class_uid,
                    referenced_sop_instance_uid=ref.sop_instance_uid, relationship_type="CONTAINS"))
        section.ContentSequence = hd.sr.ContentSequence(children)
        items.append(section)
    root.ContentSequence = hd.sr.ContentSequence(items)
    evidence, record = _evidence_datasets(doc)
    previous = []
    if doc.supersedes_version_no:
        prev = Dataset()
        prev.StudyInstanceUID = doc.identity.study_uid
        prev.SeriesInstanceUID = doc.uid("sr-series")
        prev.SOPClassUID = ComprehensiveSRStorage
        prev.SOPInstanceUID = doc.previous_uid("sr", doc.supersedes_version_no)
        previous.append(prev)
    sr = hd.sr.ComprehensiveSR(
        evidence=evidence,
        content=root,
        series_instance_uid=doc.uid("sr-series"),
        series_number=900,
        sop_instance_uid=doc.uid("sr"),
        instance_number=v.version_no,
        manufacturer="RadStation",
        is_complete=True,
        is_final=doc.signed,
        is_verified=doc.signed,
        institution_name=doc.institution,
        verifying_observer_name=person_name(signer_name) if doc.signed else None,
        verifying_organization=doc.institution if doc.signed else None,
        previous_versions=previous or None,
        record_evidence=record,
        transfer_syntax_uid=ExplicitVRLittleEndian,
    )
    sr.SeriesDescription = "Radiology report"
    complete_study_header(sr, doc)
    if not record and "CurrentRequestedProcedureEvidenceSequence" in sr:
        del sr.CurrentRequestedProcedureEvidenceSequence  # only the identity placeholder was there
    if doc.signed:
        when = _dicom_dt(v.signed_at)
        sr.ContentDate, sr.ContentTime = when[:8], when[8:14]
        sr.VerifyingObserverSequence[0].VerificationDateTime = when
        block = sr.private_block(PRIVATE_GROUP, PRIVATE_CREATOR, create=True)
        block.add_new(0x01, "OB", v.signature["canonical"])
        block.add_new(0x02, "OB", v.signature["signature"])
        block.add_new(0x03, "OB", v.signature["certificate_der"])
        block.add_new(0x04, "LO", v.signature["algorithm"])
        # OB values are padded to even length: keep the true lengths to cut the padding off exactly
        block.add_new(0x05, "UL", [len(v.signature[k]) for k in ("canonical", "signature", "certificate_der")])
    return sr


# -- study context and related objects (issue 21) ------------------------------------------------------------
# Kept apart from the content tree above and from the signature: they only add to the dataset.
KOS_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.88.59"
AI_SR_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.88.34"  # Comprehensive 3D SR (TID 1500 with image library)


def _procedure(doc: ReportDocument) -> hd.sr.CodedConcept:
    code = doc.procedure_code or {}
    return hd.sr.CodedConcept(code.get("value", "18748-4"), code.get("scheme", "LN"),
                              code.get("meaning", "Diagnostic imaging study"))


def procedure_items(doc: ReportDocument) -> list[hd.sr.ContentItem]:
    """TID 2000 'Procedure reported': the exam's code from the report template (e.g. LOINC 36643-5)."""
    return [hd.sr.CodeContentItem(name=codes.DCM.ProcedureReported, value=_procedure(doc),
                                  relationship_type="HAS CONCEPT MOD")]


def related_documents(doc: ReportDocument) -> list[tuple[str, str, str, hd.sr.CodedConcept]]:
    """(SOP Class, SOP Instance, Series Instance UID, purpose) of the KOS and AI results SR that go with
    this report version; their UIDs are derived from the version, so they are known before they are built."""
    out = []
    if doc.key_images:
        out.append((KOS_SOP_CLASS, doc.uid("kos"), doc.uid("kos-series"),
                    hd.sr.CodedConcept(codes.DCM.KeyImages.value, "DCM", codes.DCM.KeyImages.meaning)))
    if doc.version.ai_generated and doc.version.ai_draft:
        out.append((AI_SR_SOP_CLASS, doc.uid("ai-sr"), doc.uid("ai-sr-series"),
                    hd.sr.CodedConcept(codes.DCM.ComputerAssistedDetectionDiagnosis.value, "DCM",
                                       codes.DCM.ComputerAssistedDetectionDiagnosis.meaning)))
    return out


def related_object_items(doc: ReportDocument) -> list[hd.sr.ContentItem]:
    """COMPOSITE references to the key object selection and the AI results SR (when the AI drafted)."""
    return [hd.sr.CompositeContentItem(name=purpose, referenced_sop_class_uid=cls,
                                       referenced_sop_instance_uid=uid, relationship_type="CONTAINS")
            for cls, uid, _series, purpose in related_documents(doc)]


def complete_study_header(sr: Dataset, doc: ReportDocument) -> None:
    """StudyDescription, StudyID, the request (accession, requested procedure code), the performed procedure
    code and the related KOS / AI SR as pertinent other evidence."""

    ident = doc.identity
    if ident.study_description:
        sr.StudyDescription = ident.study_description[:64]
    sr.StudyID = study_id(doc)
    proc = _procedure(doc)
    request = Dataset()
    request.StudyInstanceUID = ident.study_uid
    request.ReferencedStudySequence = []
    request.AccessionNumber = ident.accession
    request.PlacerOrderNumberImagingServiceRequest = ""
    request.FillerOrderNumberImagingServiceRequest = ident.accession[:16]
    request.RequestedProcedureID = ident.accession[:16]
    request.RequestedProcedureDescription = (ident.study_description or doc.title)[:64]
    request.RequestedProcedureCodeSequence = [hd.sr.CodedConcept(proc.value, proc.scheme_designator, proc.meaning)]
    sr.ReferencedRequestSequence = [request]
    sr.PerformedProcedureCodeSequence = [hd.sr.CodedConcept(proc.value, proc.scheme_designator, proc.meaning)]
    related = related_documents(doc)
    if related:
        _add_related_items(sr, doc)
        by_series: dict[str, list[Dataset]] = {}
        for cls, uid, series, _purpose in related:
            ref = Dataset()
            ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID = cls, uid
            by_series.setdefault(series, []).append(ref)
        study = Dataset()
        study.StudyInstanceUID = ident.study_uid
        study.ReferencedSeriesSequence = []
        for series, refs in by_series.items():
            item = Dataset()
            item.SeriesInstanceUID = series
            item.ReferencedSOPSequence = refs
            study.ReferencedSeriesSequence.append(item)
        sr.PertinentOtherEvidenceSequence = [study]


def _add_related_items(sr: Dataset, doc: ReportDocument) -> None:
    """Into the Findings section (made if the report has none): the references are not evidence, so they
    are added after highdicom built the tree (it requires evidence for every reference in the tree)."""
    findings_code = SECTION_CODES["findings"][0].value
    section = next((c for c in sr.ContentSequence if c.ValueType == "CONTAINER"
                    and c.ConceptNameCodeSequence[0].CodeValue == findings_code), None)
    if section is None:
        section = hd.sr.ContainerContentItem(name=SECTION_CODES["findings"][0], relationship_type="CONTAINS")
        section.ContentSequence = hd.sr.ContentSequence([])
        sr.ContentSequence.append(section)
    for item in related_object_items(doc):
        section.ContentSequence.append(item)


def write_sr(doc: ReportDocument, path: Path) -> Path:
    build_sr(doc).save_as(path, enforce_file_format=True)
    return path


def sr_content(ds: Dataset) -> ReportContent:
    """Parse section texts back out of a TID 2000 SR written by `build_sr` (or any similar one)."""
    sections: dict[str, str] = {}
    for item in getattr(ds, "ContentSequence", []):
        if item.ValueType != "CONTAINER":
            continue
        key = HEADING_TO_SECTION.get(item.ConceptNameCodeSequence[0].CodeValue)
        if key is None:
            continue
        texts = [c.TextValue for c in getattr(item, "ContentSequence", []) if c.ValueType == "TEXT"]
        sections[key] = "\n".join(str(t) for t in texts)
    return ReportContent(sections)


def verify_sr(source: Path | Dataset, pinned_cert_sha256: str | None = None) -> Verification:
    """The SR's text and identifiers must equal the signed content, and the signature must hold."""
    try:
        ds = source if isinstance(source, Dataset) else dcmread(source)
    except Exception as exc:  # noqa: BLE001 - any parse failure means a damaged file
        return Verification(str(source), problems=[f"not a readable DICOM file: {exc}"])
    result = Verification(f"DICOM SR {ds.get('SOPInstanceUID', '?')}")
    try:
        block = ds.private_block(PRIVATE_GROUP, PRIVATE_CREATOR)
        lengths = list(block[0x05].value)
        canonical, signature, cert = (bytes(block[i].value)[:n] for i, n in zip((0x01, 0x02, 0x03), lengths,
                                                                                  strict=True))
    except (KeyError, ValueError, TypeError):
        result.problems.append("the SR carries no RadStation signature (unsigned or signature removed)")
        return result
    payload = check_signed_payload(result, canonical, signature, cert, pinned_cert_sha256)
    if payload is None:
        return result
    try:
        compare_sections(result, payload.get("sections", {}), sr_content(ds), "SR", dicom_text=True)
    except (AttributeError, ValueError, IndexError) as exc:
        result.problems.append(f"SR content tree cannot be read: {exc}")
    checks = (("Study Instance UID", ds.get("StudyInstanceUID", ""), payload["study"]["uid"]),
              ("Patient ID", ds.get("PatientID", ""), payload["patient"]["id"]),
              ("Patient Name", str(ds.get("PatientName", "")), payload["patient"]["name"]),
              ("Accession Number", ds.get("AccessionNumber", ""), payload["study"]["accession"]))
    for name, actual, signed in checks:
        if str(actual) != str(signed):
            result.problems.append(f"{name} {actual!r} differs from the signed {signed!r}")
    if ds.get("VerificationFlag") != "VERIFIED":
        result.problems.append("SR is not flagged VERIFIED")
    return result
