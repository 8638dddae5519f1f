"""Every character of a report reaches the PDF, CJK included, or signing fails loudly."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from app.reports.export_pdf import PdfExportError
from tests.support.reports_testing import PASSWORD, STUDY_UID

CJK = "右下肺野に小結節影あり。경미한 흉막 삼출. 左侧少量胸腔积液。"
FONT = Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc")


def _draft(env, user):
    v = env.service.open_or_create(STUDY_UID, user)
    env.service.save_draft(v.id, {**v.content.to_dict(), "findings": CJK}, user)
    return v


def test_cjk_without_a_font_refuses_to_sign_and_keeps_the_draft(env, radiologist):
    v = _draft(env, radiologist)
    with pytest.raises(PdfExportError, match="U\\+53F3"):
        env.service.sign(v.id, radiologist, PASSWORD)
    after = env.service.version(v.id)
    assert after.status == "draft" and after.content.get("findings") == CJK  # nothing lost, nothing signed


def test_cjk_with_a_fallback_font_is_in_the_signed_pdf(env, radiologist, tmp_path):
    if not FONT.exists() or shutil.which("pdftotext") is None:
        pytest.skip("needs Debian fonts-wqy-microhei and poppler-utils")
    from app.settings import Settings

    settings = Settings()
    settings.set("report_fallback_font", str(FONT))
    settings.save()
    v = _draft(env, radiologist)
    env.service.sign(v.id, radiologist, PASSWORD)
    pdf = tmp_path / "r.pdf"
    pdf.write_bytes(env.service.signed_pdf(v.id))
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, timeout=60).stdout
    squashed = "".join(text.split())
    assert "".join(CJK.split()) in squashed, text
