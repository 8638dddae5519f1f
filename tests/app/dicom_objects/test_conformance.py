"""docs/conformance_statement.md is what the code generates: a changed object or default shows up here."""

from __future__ import annotations

from app.dicom_objects.conformance import render


def test_conformance_statement_matches_the_code(repo_root):
    path = repo_root / "docs" / "conformance_statement.md"
    assert path.read_text(encoding="utf-8") == render(), (
        "docs/conformance_statement.md is out of date: run "
        "`python -m app.dicom_objects.conformance --write docs/conformance_statement.md` and review the diff")
