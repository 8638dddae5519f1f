"""FHIR export: a transaction Bundle validated with fhir.resources, and the HTTP exchange with a FHIR server.

No FHIR server installs offline here (HAPI FHIR is a download), so the server side is a loopback HTTP
server that validates what it receives with the same fhir.resources models and answers as a FHIR
server does (transaction-response, or an OperationOutcome with HTTP 422)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from app.reports.document import build_document
from app.reports.export_fhir import FhirError, effective_time, post_bundle, report_bundle, validate
from tests.support.reports_testing import PASSWORD, STUDY_UID, free_port


def _doc(env, user, impression="Mild cardiomegaly. No pleural effusion."):
    v = env.service.open_or_create(STUDY_UID, user)
    env.service.save_draft(v.id, {**v.content.to_dict(), "findings": "Heart enlarged.", "impression": impression},
                           user)
    v = env.service.sign(v.id, user, PASSWORD)
    return build_document(env.service, v.id), env.service.signed_pdf(v.id)


def test_bundle_has_report_observations_study_and_patient(env, radiologist):
    doc, pdf = _doc(env, radiologist)
    bundle = report_bundle(doc, pdf, patient_system="urn:oid:1.2.3.4.99")
    by_type: dict[str, list] = {}
    for e in bundle["entry"]:
        by_type.setdefault(e["resource"]["resourceType"], []).append(e)
    report = by_type["DiagnosticReport"][0]["resource"]
    assert report["status"] == "final" and report["effectiveDateTime"] == "2026-11-20"  # no offset known: date only
    assert report["subject"]["reference"] == by_type["Patient"][0]["fullUrl"]
    assert report["imagingStudy"][0]["reference"] == by_type["ImagingStudy"][0]["fullUrl"]
    assert [r["reference"] for r in report["result"]] == [e["fullUrl"] for e in by_type["Observation"]]
    assert {c["code"] for c in report["code"]["coding"]} == {"18748-4", "36643-5"}
    obs = {e["resource"]["code"]["text"]: e["resource"] for e in by_type["Observation"]}
    assert obs["Cardiomegaly"]["valueCodeableConcept"]["coding"][0]["code"] == "52101004"  # present
    assert obs["Pleural Effusion"]["valueCodeableConcept"]["coding"][0]["code"] == "272519000"  # absent
    assert obs["Cardiomegaly"]["code"]["coding"][0] == {"system": "http://snomed.info/sct", "code": "287272002",
                                                         "display": "Cardiomegaly"}
    patient = by_type["Patient"][0]["resource"]
    assert patient["identifier"] == [{"system": "urn:oid:1.2.3.4.99", "value": "PAT001"}]
    assert patient["gender"] == "female" and patient["birthDate"] == "1970-01-01"
    study = by_type["ImagingStudy"][0]["resource"]
    assert study["identifier"][0]["value"] == f"urn:oid:{STUDY_UID}"


def test_times_keep_the_source_offset_or_stay_dates():
    assert effective_time("20261120", "101500") == "2026-11-20"
    assert effective_time("20261120", "101500.123", "+0530") == "2026-11-20T10:15:00+05:30"
    assert effective_time("", "101500", "+0000") == ""


def test_invalid_resources_are_refused_with_the_reason():
    with pytest.raises(FhirError, match="code"):  # DiagnosticReport.code is required
        validate({"resourceType": "DiagnosticReport", "status": "final"})
    with pytest.raises(FhirError, match="effectiveDateTime"):
        validate({"resourceType": "DiagnosticReport", "status": "final", "code": {"text": "x"},
                  "effectiveDateTime": "20 Nov 2026"})


class _FhirServer(BaseHTTPRequestHandler):
    received: list = []
    answer_status = 200

    def do_POST(self) -> None:  # noqa: N802 - http.server API
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        from fhir.resources.R4B.bundle import Bundle

        Bundle.model_validate(body)  # what a FHIR server checks first
        self.received.append((self.headers["Content-Type"], self.headers.get("Authorization"), body))
        if self.answer_status != 200:
            out = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "invalid"}]}
        else:
            out = {"resourceType": "Bundle", "type": "transaction-response",
                   "entry": [{"response": {"status": "201 Created"}} for _ in body["entry"]]}
        data = json.dumps(out).encode()
        self.send_response(self.answer_status)
        self.send_header("Content-Type", "application/fhir+json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *_args) -> None:
        pass


def test_post_to_a_fhir_server_and_its_refusal(env, radiologist):
    doc, pdf = _doc(env, radiologist)
    bundle = report_bundle(doc, pdf)
    server = HTTPServer(("127.0.0.1", 0), _FhirServer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}/fhir"
    try:
        answer = post_bundle(url, bundle, token="s3cret")
        assert len(answer["entry"]) == len(bundle["entry"])
        ctype, auth, body = _FhirServer.received[-1]
        assert ctype == "application/fhir+json" and auth == "Bearer s3cret" and body == bundle
        _FhirServer.answer_status = 422
        with pytest.raises(FhirError, match="HTTP 422"):
            post_bundle(url, bundle)
    finally:
        _FhirServer.answer_status = 200
        server.shutdown()
        server.server_close()
    with pytest.raises(FhirError, match="cannot be reached"):
        post_bundle(f"http://127.0.0.1:{free_port()}/fhir", bundle, timeout=3)
    with pytest.raises(FhirError, match="http"):
        post_bundle("ftp://example/fhir", bundle)
