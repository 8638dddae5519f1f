"""Settings given to the main window reach the modules that used to re-read settings.json on their own: the
signing roles, the audit key, trust roots and CRLs, the PDF fallback font, the report service's letterhead /
time-stamp / FHIR / token options, the report editor's templates, the outbox, PACS nodes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.db.database import Database
from app.paths import config_dir
from app.settings import Settings


@pytest.fixture()
def database(tmp_path, monkeypatch) -> Database:
    monkeypatch.setenv("RADSTATION_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("RADSTATION_DB_URL", raising=False)
    monkeypatch.delenv("RADSTATION_AUDIT_KEY_FILE", raising=False)
    return Database.open(f"sqlite:///{tmp_path / 'rs.db'}", store_dir=tmp_path / "store")


def _values(folder: Path, role: str) -> dict:
    return {"signing_roles": [role], "audit_key_file": str(folder / "audit.key"),
            "report_fallback_font": str(folder / "font.ttf"), "signing_trust_roots": [str(folder / "root.pem")],
            "signing_crls": [str(folder / "list.crl")], "report_letterhead": str(folder / "letterhead.json"),
            "fhir_patient_id_system": f"urn:{folder.name}", "tsa_url": f"http://{folder.name}.invalid/tsa",
            "site_templates_dir": str(folder / "templates")}


def test_settings_given_to_the_main_window_reach_every_module(qtbot, database, tmp_path) -> None:
    from app.main_window import MainWindow
    from app.pacs.nodes import NodeStore
    from app.reports import audit_key, export_pdf, trust
    from app.reports.authority import signing_roles
    from app.reports.service import ReportService
    from app.reports.templates import TemplateLibrary
    from app.widgets.report_editor import ReportEditor

    on_disk = tmp_path / "on-disk"
    (config_dir() / "settings.json").write_text(json.dumps(_values(on_disk, "radiologist")), encoding="utf-8")
    given_dir = tmp_path / "given"
    given = Settings(tmp_path / "given.json")
    for key, value in _values(given_dir, "resident").items():
        given.set(key, value)

    window = MainWindow(database, settings=given)
    qtbot.addWidget(window)

    assert "resident" in signing_roles()
    assert audit_key.audit_key_path() == given_dir / "audit.key"
    assert export_pdf.fallback_font() == given_dir / "font.ttf"
    assert trust._configured("signing_trust_roots", ()) == [given_dir / "root.pem"]
    assert trust._configured("signing_crls", ()) == [given_dir / "list.crl"]
    assert window.outbox.outbox.service.settings is given  # letterhead, TSA, trust roots, FHIR system
    assert NodeStore().settings is given
    assert TemplateLibrary.default().site_dir == given_dir / "templates"
    assert ReportService(database).settings is given
    editor = ReportEditor(database, "1.2.3.4", lambda: None, settings=given)
    qtbot.addWidget(editor)
    assert editor.service.settings is given and editor.template_library.site_dir == given_dir / "templates"


def test_without_a_main_window_the_settings_file_is_read(database, tmp_path) -> None:
    """The command line (no window) keeps reading settings.json, and sees a change made to it."""
    from app.reports import audit_key
    from app.reports.authority import signing_roles

    path = config_dir() / "settings.json"
    path.write_text(json.dumps(_values(tmp_path / "first", "resident")), encoding="utf-8")
    assert audit_key.audit_key_path() == tmp_path / "first" / "audit.key" and "resident" in signing_roles()
    path.write_text(json.dumps(_values(tmp_path / "second", "radiologist")), encoding="utf-8")
    assert audit_key.audit_key_path() == tmp_path / "second" / "audit.key"
    assert "resident" not in signing_roles()


def test_the_audit_key_place_is_read_from_the_file_only_when_it_changed(database, tmp_path, monkeypatch) -> None:
    """Every audit append asks for the key's place: outside the app it re-parsed settings.json each time; now
    once per change of the file. In the app, the settings object in use answers, and a change to it reaches
    the key's place at once."""
    from app.reports import audit_key
    from app.settings import use_settings

    reads: list[Path] = []
    real_reload = Settings.reload
    monkeypatch.setattr(Settings, "reload", lambda self: (reads.append(self.path), real_reload(self))[1])
    path = config_dir() / "settings.json"
    path.write_text(json.dumps(_values(tmp_path / "first", "resident")), encoding="utf-8")
    for _ in range(20):
        assert audit_key.audit_key_path() == tmp_path / "first" / "audit.key"
    assert reads.count(path) == 1
    path.write_text(json.dumps(_values(tmp_path / "the-second", "resident")), encoding="utf-8")
    assert audit_key.audit_key_path() == tmp_path / "the-second" / "audit.key"
    assert reads.count(path) == 2

    given = Settings(tmp_path / "given.json")
    given.set("audit_key_file", str(tmp_path / "given.key"))
    use_settings(given)
    reads.clear()
    assert audit_key.audit_key_path() == tmp_path / "given.key" and reads == []
    given.set("audit_key_file", str(tmp_path / "changed.key"))  # the Settings dialog changes the object in use
    assert audit_key.audit_key_path() == tmp_path / "changed.key"
