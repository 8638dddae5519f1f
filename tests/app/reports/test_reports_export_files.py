"""Report exports (text, FHIR, signed SR and PDF) are written 0600 whatever the umask, and an earlier
world-readable file of the same name is narrowed rather than kept."""

from __future__ import annotations

import os
import stat

from app.reports.exporting import export_version
from tests.support.reports_testing import PASSWORD, STUDY_UID


def test_report_export_files_are_0600(env, radiologist, tmp_path):
    v = env.service.open_or_create(STUDY_UID, radiologist)
    env.service.save_draft(v.id, {**v.content.to_dict(), "impression": "Mild cardiomegaly."}, radiologist)
    env.service.sign(v.id, radiologist, PASSWORD)
    old = os.umask(0o022)
    try:
        _export_all(env, v, tmp_path)
    finally:
        os.umask(old)


def _export_all(env, v, tmp_path):
    for fmt, name in (("text", "r.txt"), ("fhir", "r.json"), ("sr", "r.dcm"), ("pdf", "r.pdf")):
        out = tmp_path / name
        out.write_text("left by an earlier export")
        os.chmod(out, 0o644)  # an earlier, world-readable export of the same name is narrowed, not kept
        assert stat.S_IMODE(os.stat(export_version(env.service, v.id, fmt, out)).st_mode) == 0o600
        assert out.read_bytes() != b"left by an earlier export"
