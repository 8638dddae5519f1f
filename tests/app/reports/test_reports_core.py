"""Canonical form, passwords, keys and raw signatures (no database)."""

from __future__ import annotations

import pytest

from app.reports.canonical import canonical_bytes
from app.reports.content import ReportContent, ReportContentError
from app.reports.keys import KeyError_, create_self_signed, load_p12, rewrap_p12
from app.reports.passwords import WeakPasswordError, check_policy, hash_password, verify_password
from app.reports.signing import sign_bytes, verify_bytes
from app.reports.templates import TemplateError, available_templates, load_template
from tests.support.reports_testing import FAST_HASHER


def test_canonical_is_order_and_normalisation_independent():
    a = canonical_bytes({"b": 1, "a": ["é", None, True]})
    b = canonical_bytes({"a": ["e\u0301", None, True], "b": 1})  # decomposed é
    assert a == b == '{"a":["é",null,true],"b":1}'.encode()
    with pytest.raises(TypeError):
        canonical_bytes({"x": 0.5})


def test_argon2id_hash_and_policy():
    h = hash_password("long enough pw", FAST_HASHER)
    assert h.startswith("$argon2id$")
    assert verify_password(h, "long enough pw", FAST_HASHER)
    assert not verify_password(h, "long enough pX", FAST_HASHER)
    assert not verify_password("garbage", "x", FAST_HASHER)
    with pytest.raises(WeakPasswordError):
        check_policy("short")


def test_p12_roundtrip_sign_and_detect_one_byte_change(tmp_path):
    path = tmp_path / "u.p12"
    ident = create_self_signed("Dr Who", "pw-123456", path)
    with pytest.raises(KeyError_):
        load_p12(path, "wrong-password")
    loaded = load_p12(path, "pw-123456")
    data = canonical_bytes({"findings": "No effusion."})
    sig, alg = sign_bytes(loaded, data)
    assert verify_bytes(ident.certificate_der, data, sig).valid
    tampered = data.replace(b"No", b"Mo")
    check = verify_bytes(ident.certificate_der, tampered, sig)
    assert not check.valid and "altered" in check.reason
    rewrap_p12(path, "pw-123456", "new-pass-789")
    assert load_p12(path, "new-pass-789").certificate_der == ident.certificate_der


def test_content_rejects_unknown_sections_and_renders_text():
    with pytest.raises(ReportContentError):
        ReportContent({"diagnosis": "x"})
    c = ReportContent({"findings": "Clear lungs.", "impression": "Normal."})
    assert c.as_text() == "FINDINGS:\nClear lungs.\n\nIMPRESSION:\nNormal.\n"


def test_templates_are_editable_files(tmp_path):
    tpls = available_templates()
    assert {"chest_xray", "ct_chest"} <= set(tpls)
    assert tpls["chest_xray"].content.get("technique")
    (tmp_path / "mri_knee.json").write_text('{"exam_type": "mri_knee", "sections": {"findings": "Menisci intact."}}')
    assert load_template("mri_knee", tmp_path).content.get("findings") == "Menisci intact."
    (tmp_path / "bad.json").write_text('{"exam_type": "bad", "sections": {"nonsense": ""}}')
    with pytest.raises(TemplateError):
        available_templates(tmp_path)
