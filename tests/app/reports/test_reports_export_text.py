"""Plain-text and FHIR DiagnosticReport exports."""

from __future__ import annotations

import base64
import json

from app.reports.document import build_document
from app.reports.export_fhir import export_fhir
from app.reports.export_text import export_text
from tests.support.reports_testing import PASSWORD, STUDY_UID


def test_text_and_fhir(env, radiologist):
    v = env.service.open_or_create(STUDY_UID, radiologist)
    env.service.save_draft(v.id, {**v.content.to_dict(), "impression": "Mild cardiomegaly."}, radiologist)
    draft_doc = build_document(env.service, v.id)
    assert "NOT SIGNED" in export_text(draft_doc)
    assert export_fhir(draft_doc)["status"] == "preliminary"
    env.service.sign(v.id, radiologist, PASSWORD)
    doc = build_document(env.service, v.id)
    text = export_text(doc)
    assert "IMPRESSION:\nMild cardiomegaly." in text and "signed by Dr Rad" in text
    pdf = env.service.signed_pdf(v.id)
    fhir = json.loads(json.dumps(export_fhir(doc, pdf)))
    assert fhir["resourceType"] == "DiagnosticReport" and fhir["status"] == "final"
    assert fhir["code"]["coding"][0]["code"] == "18748-4"
    assert fhir["subject"]["identifier"]["value"] == "PAT001"
    assert fhir["effectiveDateTime"] == "2026-11-20"  # no UTC offset recorded: date only, no invented 'Z'
    assert fhir["subject"]["identifier"]["system"]
    assert fhir["conclusion"] == "Mild cardiomegaly."
    assert base64.b64decode(fhir["presentedForm"][0]["data"]).decode() == text
    assert base64.b64decode(fhir["presentedForm"][1]["data"]) == pdf
