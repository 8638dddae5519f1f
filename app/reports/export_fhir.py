"""FHIR R4 export of a report: a transaction Bundle with the DiagnosticReport, one Observation per finding
the report states, the ImagingStudy it reads and the Patient, validated with fhir.resources (R4B models,
which R4 servers accept for these resources); optional POST to a configured FHIR server.

Times are written as the source gives them: DICOM study date/time carry no UTC offset unless
Timezone Offset From UTC was recorded, and FHIR requires an offset on any time, so an unknown offset
gives a date only (never an invented 'Z'). Patient identifiers carry a system: the issuer of the patient
ID when the study records one, else the site's configured system (`fhir_patient_id_system`).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import urllib.error
import urllib.request
import uuid
from typing import Any

from app.reports.document import ReportDocument
from app.reports.export_text import export_text

FHIR_STATUS = {"draft": "preliminary", "preliminary": "preliminary", "final": "final"}
LOCAL_PATIENT_SYSTEM = "urn:radstation:patient-id"
SNOMED = "http://snomed.info/sct"
STATE_CODES = {1: ("52101004", "Present"), 0: ("272519000", "Absent"), -1: ("82334004", "Indeterminate")}


class FhirError(ValueError):
    """The resource failed validation, or the server refused it (message says which and why)."""


def _pn(name: str) -> dict[str, Any]:
    parts = name.split("^")
    out: dict[str, Any] = {"text": " ".join(p for p in (parts[1:2] + parts[:1]) if p) or name}
    if parts and parts[0]:
        out["family"] = parts[0]
    if len(parts) > 1 and parts[1]:
        out["given"] = parts[1].split()
    return out


def _urn(doc: ReportDocument, what: str) -> str:
    return f"urn:uuid:{uuid.UUID(int=int(doc.uid(what).split('.')[-1]) % (1 << 128))}"


def effective_time(study_date: str, study_time: str, tz_offset: str = "") -> str:
    """FHIR dateTime from DICOM DA/TM (+ optional Timezone Offset From UTC '+HHMM'); date only without one."""
    if not study_date:
        return ""
    day = dt.datetime.strptime(study_date[:8], "%Y%m%d").date().isoformat()
    t = study_time.split(".")[0]
    if not tz_offset or len(t) < 4 or not t[:6].isdigit():
        return day
    t = t.ljust(6, "0")[:6]
    return f"{day}T{t[:2]}:{t[2:4]}:{t[4:6]}{tz_offset[:3]}:{tz_offset[3:5]}"


def patient_identifier(doc: ReportDocument, system: str = "") -> dict[str, str]:
    issuer = doc.identity.issuer
    if issuer:
        system = f"urn:oid:{issuer}" if all(p.isdigit() for p in issuer.split(".")) else f"urn:dicom:issuer:{issuer}"
    return {"system": system or LOCAL_PATIENT_SYSTEM, "value": doc.identity.patient_id}


def _status(doc: ReportDocument) -> str:
    v = doc.version
    status = FHIR_STATUS.get(v.status, "preliminary")
    if v.status == "final" and v.kind in ("amendment", "addendum"):
        status = "amended" if v.kind == "amendment" else "appended"
    return status


def diagnostic_report(doc: ReportDocument, pdf: bytes | None = None, *, patient_system: str = "",
                      patient_ref: str = "", study_ref: str = "", results: list[str] | None = None,
                      tz_offset: str = "") -> dict[str, Any]:
    """The DiagnosticReport resource (JSON-ready dict) with the report text and, if given, the signed PDF."""
    v, ident = doc.version, doc.identity
    text = export_text(doc)
    presented = [{"contentType": "text/plain; charset=utf-8", "language": "en",
                  "data": base64.b64encode(text.encode("utf-8")).decode("ascii"), "title": "Report (text)"}]
    if pdf:
        presented.append({"contentType": "application/pdf", "data": base64.b64encode(pdf).decode("ascii"),
                          "title": "Report (signed PDF)"})
    code = doc.procedure_code or {}
    coding = [{"system": "http://loinc.org", "code": "18748-4", "display": "Diagnostic imaging study"}]
    if code.get("scheme") == "LN" and code.get("value") and code.get("value") != "18748-4":
        coding.append({"system": "http://loinc.org", "code": code["value"], "display": code.get("meaning", "")})
    subject: dict[str, Any] = {"reference": patient_ref} if patient_ref else {}
    subject |= {"identifier": patient_identifier(doc, patient_system), "display": _pn(ident.patient_name)["text"]}
    res: dict[str, Any] = {
        "resourceType": "DiagnosticReport",
        "id": f"report-{v.report_id}-v{v.version_no}",
        "identifier": [{"system": "urn:dicom:uid", "value": f"urn:oid:{doc.uid('sr')}"}],
        "status": _status(doc),
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0074", "code": "RAD",
                                  "display": "Radiology"}]}],
        "code": {"coding": coding, "text": doc.title},
        "subject": subject,
        "imagingStudy": [{"reference": study_ref} if study_ref else {}],
        "conclusion": v.content.get("impression"),
        "presentedForm": presented,
    }
    res["imagingStudy"][0] |= {"identifier": {"system": "urn:dicom:uid", "value": f"urn:oid:{ident.study_uid}"},
                               "display": ident.study_description or doc.title}
    effective = effective_time(ident.study_date, ident.study_time, tz_offset)
    if effective:
        res["effectiveDateTime"] = effective
    if v.signed_at:
        res["issued"] = v.signed_at  # ISO 8601 with its offset, exactly as signed
        res["resultsInterpreter"] = [{"display": v.signature.get("signer_name") or v.signer}]
    if ident.accession:
        res["identifier"].append({"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                                                       "code": "ACSN"}]}, "value": ident.accession})
    if results:
        res["result"] = [{"reference": r} for r in results]
    return res


def observations(doc: ReportDocument, patient_ref: str, study_ref: str, tz_offset: str = "") -> list[dict[str, Any]]:
    """One Observation per finding the report states (labeler reading of findings + impression)."""
    from app.dicom_objects.ai_results import FINDING_CODES
    from engines.labeler import label_report

    v = doc.version
    labels = label_report(f"{v.content.get('findings')}\n{v.content.get('impression')}").findings
    out = []
    for name, value in labels.items():
        code = FINDING_CODES.get(name)
        coding = [{"system": SNOMED, "code": code.value, "display": code.meaning}] if code is not None and \
            code.scheme_designator == "SCT" else []
        state, display = STATE_CODES[int(value)]
        obs: dict[str, Any] = {
            "resourceType": "Observation",
            "status": "final" if _status(doc) in ("final", "amended", "appended") else "preliminary",
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                      "code": "imaging", "display": "Imaging"}]}],
            "code": {"coding": coding, "text": name} if coding else {"text": name},
            "subject": {"reference": patient_ref},
            "derivedFrom": [{"reference": study_ref}],
            "valueCodeableConcept": {"coding": [{"system": SNOMED, "code": state, "display": display}],
                                     "text": display.lower()},
        }
        effective = effective_time(doc.identity.study_date, doc.identity.study_time, tz_offset)
        if effective:
            obs["effectiveDateTime"] = effective
        out.append(obs)
    return out


def report_bundle(doc: ReportDocument, pdf: bytes | None = None, *, patient_system: str = "",
                  tz_offset: str = "") -> dict[str, Any]:
    """A transaction Bundle: Patient, ImagingStudy, Observations and the DiagnosticReport pointing at them;
    validated with fhir.resources (FhirError names the field when it is not valid FHIR)."""
    ident = doc.identity
    patient_ref, study_ref = _urn(doc, "fhir-patient"), _urn(doc, "fhir-study")
    pid = patient_identifier(doc, patient_system)
    patient: dict[str, Any] = {"resourceType": "Patient", "identifier": [pid], "name": [_pn(ident.patient_name)]}
    if ident.patient_birth_date:
        patient["birthDate"] = dt.datetime.strptime(ident.patient_birth_date[:8], "%Y%m%d").date().isoformat()
    gender = {"M": "male", "F": "female", "O": "other"}.get(ident.patient_sex)
    if gender:
        patient["gender"] = gender
    study: dict[str, Any] = {"resourceType": "ImagingStudy", "status": "available",
                             "identifier": [{"system": "urn:dicom:uid", "value": f"urn:oid:{ident.study_uid}"}],
                             "subject": {"reference": patient_ref}}
    started = effective_time(ident.study_date, ident.study_time, tz_offset)
    if started:
        study["started"] = started
    if ident.study_description:
        study["description"] = ident.study_description
    obs = observations(doc, patient_ref, study_ref, tz_offset)
    obs_refs = [_urn(doc, f"fhir-observation-{i}") for i in range(len(obs))]
    report = diagnostic_report(doc, pdf, patient_system=patient_system, patient_ref=patient_ref, study_ref=study_ref,
                               results=obs_refs, tz_offset=tz_offset)
    report.pop("id", None)
    entries = [(patient_ref, patient, f"Patient?identifier={pid['system']}|{pid['value']}"),
               (study_ref, study, f"ImagingStudy?identifier=urn:dicom:uid|urn:oid:{ident.study_uid}")]
    entries += [(ref, o, "") for ref, o in zip(obs_refs, obs, strict=True)]
    entries.append((_urn(doc, "fhir-report"), report,
                    f"DiagnosticReport?identifier=urn:dicom:uid|urn:oid:{doc.uid('sr')}"))
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": ref, "resource": res,
         "request": {"method": "POST", "url": res["resourceType"], **({"ifNoneExist": cond.split("?", 1)[1]}
                                                                      if cond else {})}}
        for ref, res, cond in entries]}
    validate(bundle)
    return bundle


def validate(resource: dict[str, Any]) -> None:
    """fhir.resources (R4B) validation of a resource or bundle; FhirError with pydantic's reasons."""
    from fhir.resources.R4B import get_fhir_model_class
    from pydantic import ValidationError

    try:
        get_fhir_model_class(resource["resourceType"]).model_validate(resource)
    except ValidationError as exc:
        raise FhirError(f"not valid FHIR {resource.get('resourceType')}: {exc}") from exc


def post_bundle(base_url: str, bundle: dict[str, Any], token: str = "", timeout: float = 30.0) -> dict[str, Any]:
    """POST the transaction to a FHIR server's base URL; the server's transaction-response, or FhirError."""
    if not base_url.startswith(("http://", "https://")):
        raise FhirError(f"FHIR server URL must start with http:// or https://, got {base_url!r}")
    headers = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(base_url.rstrip("/"), data=json.dumps(bundle).encode("utf-8"), method="POST",
                                 headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            body = json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        detail = exc.read()[:500].decode("utf-8", "replace")
        raise FhirError(f"FHIR server {base_url} refused the report: HTTP {exc.code} {detail}") from exc
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        raise FhirError(f"FHIR server {base_url} cannot be reached: {exc}") from exc
    except ValueError as exc:
        raise FhirError(f"FHIR server {base_url} answered with something that is not JSON: {exc}") from exc
    if body.get("resourceType") != "Bundle" or body.get("type") != "transaction-response":
        raise FhirError(f"FHIR server {base_url} did not answer with a transaction-response")
    failed = [e.get("response", {}).get("status", "?") for e in body.get("entry", [])
              if not str(e.get("response", {}).get("status", "")).startswith("2")]
    if failed:
        raise FhirError(f"FHIR server {base_url} refused {len(failed)} entr(ies): {', '.join(failed)}")
    return body


def export_fhir(doc: ReportDocument, pdf: bytes | None = None) -> dict[str, Any]:
    """A FHIR R4 DiagnosticReport resource (JSON-ready dict) with text and, if given, the PDF; validated.
    The full exchange (Patient, ImagingStudy, Observations) is `report_bundle`."""
    res = diagnostic_report(doc, pdf)
    validate(res)
    return res
