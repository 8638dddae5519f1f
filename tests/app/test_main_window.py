"""The main window drives real parts: demo import, worklist, viewer, the `gui` command."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from app.db.database import Database
from app.demo_studies import demo_study_uids, ensure_demo_imported


@pytest.fixture()
def database(tmp_path, monkeypatch) -> Database:
    monkeypatch.setenv("RADSTATION_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("RADSTATION_DB_URL", raising=False)
    return Database.open(f"sqlite:///{tmp_path / 'rs.db'}", store_dir=tmp_path / "store")


def test_demo_import_is_idempotent(database: Database) -> None:
    first = ensure_demo_imported(database)
    assert first is not None and first.imported > 0 and first.failed == 0, first.summary()
    assert ensure_demo_imported(database) is None  # all demo studies present: nothing to do


def test_open_demo_study_shows_it_in_the_viewer(qtbot, database: Database) -> None:
    from app.main_window import MainWindow

    ensure_demo_imported(database)
    window = MainWindow(database)
    qtbot.addWidget(window)
    window.show()
    window.worklist.refresh()
    uids = demo_study_uids()
    assert window.open_study(uids[0])
    assert window.tabs.currentWidget() is window.workspace
    image = window.workspace.current_image()
    assert image is not None and image.study_uid == uids[0]
    assert window.locked and "DEMO" not in window.windowTitle()  # nobody logged in: no name in the title
    from app.reports.users import UserService

    users = UserService.from_settings(database)
    users.add_user("drwho", "correct horse battery", "radiologist")
    window.set_user(users.authenticate("drwho", "correct horse battery"))
    assert not window.locked and "DEMO" in window.windowTitle()


def test_unknown_study_gives_a_message_not_a_crash(qtbot, database: Database, monkeypatch) -> None:
    from PySide6.QtWidgets import QMessageBox

    from app.main_window import MainWindow

    shown: list[str] = []
    monkeypatch.setattr(QMessageBox, "warning", lambda *a, **k: shown.append(a[2]))
    window = MainWindow(database)
    qtbot.addWidget(window)
    assert not window.open_study("1.2.3.4.5.999")
    assert shown and "not in the database" in shown[0]
    assert window.study is None


def test_gui_command_opens_demo_and_saves_a_screenshot(tmp_path: Path) -> None:
    """The console entry point end to end, as a user starts it (offscreen platform; a kiosk-mode site, so
    the demo study shows without logging in)."""
    import json

    shot = tmp_path / "main.png"
    (tmp_path / "home" / "config").mkdir(parents=True)
    (tmp_path / "home" / "config" / "settings.json").write_text(json.dumps({"kiosk_mode": True}))
    env = {"RADSTATION_HOME": str(tmp_path / "home"), "QT_QPA_PLATFORM": "offscreen", "PATH": "/usr/bin:/bin"}
    res = subprocess.run(
        [sys.executable, "-m", "app", "gui", "--demo", "--screenshot", str(shot), "--screenshot-delay", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert res.returncode == 0, res.stderr
    assert shot.exists() and shot.stat().st_size > 20_000  # a real picture, not an empty window


def test_report_editor_follows_the_logged_in_user(qtbot, database: Database) -> None:
    from app.main_window import MainWindow
    from app.reports.users import UserService

    ensure_demo_imported(database)
    window = MainWindow(database)
    qtbot.addWidget(window)
    window.open_study(demo_study_uids()[0])
    assert window.report_editor is not None
    assert window.report_editor.editors["findings"].isReadOnly()  # nobody logged in: nothing to lose
    users = UserService.from_settings(database)
    users.add_user("drwho", "correct horse battery", "radiologist", display_name="Dr Who")
    window.set_user(users.authenticate("drwho", "correct horse battery"))
    editor = window.report_editor
    assert not editor.editors["findings"].isReadOnly()
    editor.editors["findings"].setPlainText("Heart size normal. No effusion.")
    editor.save_now()
    window.open_study(demo_study_uids()[1])  # switching studies keeps what was typed
    window.open_study(demo_study_uids()[0])
    qtbot.waitUntil(lambda: not window.report_editor.opening, timeout=20000)
    assert "No effusion" in window.report_editor.editors["findings"].toPlainText()
    qtbot.waitUntil(lambda: window.open_lookups_ready and window.ai_images_ready, timeout=20000)


def test_switching_studies_never_shows_the_previous_patients_report_and_drops_a_late_read(
        qtbot, database: Database) -> None:
    """The next study's report is read off the GUI thread: until it is back the editor is empty and
    read-only (never the previous patient's text), and a read for a study no longer open is dropped."""
    from app.main_window import MainWindow
    from app.reports.users import UserService

    ensure_demo_imported(database)
    a, b = demo_study_uids()[:2]
    window = MainWindow(database)
    qtbot.addWidget(window)
    users = UserService.from_settings(database)
    users.add_user("drwho", "correct horse battery", "radiologist", display_name="Dr Who")
    window.set_user(users.authenticate("drwho", "correct horse battery"))
    window.open_study(a)
    editor = window.report_editor
    qtbot.keyClicks(editor.editors["findings"], "Patient A: pacemaker in place.")
    applied: list[str] = []  # the study on screen each time a report read was put into the editor
    apply = editor._apply_report
    editor._apply_report = lambda *args: (applied.append(editor.study_uid), apply(*args))[1]

    window.open_study(b)  # what was typed for A is saved first, then B's report is read in the background
    assert editor.opening and editor.study_uid == b
    assert all(e.toPlainText() == "" and e.isReadOnly() for e in editor.editors.values())
    window.open_study(a)  # back to A before B's read came back: B's result must not land on A
    qtbot.waitUntil(lambda: not editor.opening, timeout=20000)
    qtbot.waitUntil(lambda: window.open_lookups_ready and window.ai_images_ready, timeout=20000)
    qtbot.wait(200)  # B's read, if it finished after A's, has been polled too
    assert applied == [a]
    assert "pacemaker in place" in editor.editors["findings"].toPlainText()
    assert not editor.editors["findings"].isReadOnly()
    window.open_study(b)
    assert editor.opening
    provenance = {"engine": "medim-diffusion", "weights_hash": "c0ffee" * 10, "seed": 11}
    window._on_draft_ready(b, {"findings": "Small left pleural effusion.", "impression": "Left effusion.",
                               "provenance": provenance})  # an AI draft lands while B's report is opening
    assert "still opening" in window.statusBar().currentMessage()
    qtbot.waitUntil(lambda: not editor.opening, timeout=20000)
    qtbot.waitUntil(lambda: window.open_lookups_ready and window.ai_images_ready, timeout=20000)
    assert applied == [a, b]
    qtbot.waitUntil(lambda: "Small left pleural effusion." in editor.editors["findings"].toPlainText(),
                    timeout=10000)  # put in once the report was open, not lost
    assert "pacemaker" not in editor.editors["findings"].toPlainText()


def test_pacs_query_tab_retrieves_into_the_worklist(qtbot, database: Database, orthanc, tmp_path) -> None:
    """PACS menu -> query panel against the real Orthanc; a retrieved study appears in the worklist."""
    from pydicom import dcmread

    from app.main_window import MainWindow
    from app.pacs.nodes import NodeStore, PacsNode
    from app.settings import Settings
    from viewer.demo import demo_study_paths

    orthanc.clear()
    path = next(p for p in demo_study_paths() if dcmread(p, stop_before_pixels=True).Modality == "DX")
    orthanc.upload(path)
    study_uid = str(dcmread(path, stop_before_pixels=True).StudyInstanceUID)
    settings = Settings(tmp_path / "settings.json")
    NodeStore(settings).upsert(
        PacsNode(name="orthanc", ae_title=orthanc.aet, host=orthanc.host, port=orthanc.dicom_port,
                 calling_ae=orthanc.client_aet, retrieve="c-get")
    )
    window = MainWindow(database, settings=settings)
    qtbot.addWidget(window)
    window.show_pacs_query()
    panel = window.pacs_panel
    assert window.tabs.currentWidget() is panel
    with qtbot.waitSignal(panel.searchFinished, timeout=15000) as found:
        panel.search_button.click()
    assert found.args == [1]
    panel.study_view.selectRow(0)
    with qtbot.waitSignal(panel.retrievalFinished, timeout=30000) as done:
        panel.retrieve_button.click()
    assert [r.state for r in done.args[0]] == ["done"]
    qtbot.waitUntil(lambda: window.worklist.model.rowCount() == 1, timeout=5000)
    assert window.open_study(study_uid)


def _radiologist_on_demo_study(qtbot, database: Database, settings):
    """The main window with these settings, a radiologist logged in and the first demo study open."""
    from app.main_window import MainWindow
    from app.reports.users import UserService

    ensure_demo_imported(database)
    window = MainWindow(database, settings=settings)
    qtbot.addWidget(window)
    users = UserService.from_settings(database)
    users.add_user("rad", "correct horse battery", "radiologist")
    window.set_user(users.authenticate("rad", "correct horse battery"))
    window.open_study(demo_study_uids()[0])
    # the AI panels get the study's images from a background thread, after open_study has returned
    assert not window.ai_images_ready and "Reading the study's images" in window.ai_panel.images_label.text()
    qtbot.waitUntil(lambda: window.ai_images_ready, timeout=30_000)
    assert window.ai_panel.images and "in this study" in window.ai_panel.images_label.text()
    return window


def test_drafted_report_lands_in_the_editor_of_the_open_study(qtbot, database: Database, tmp_path) -> None:
    """Draft through the real worker process (a tiny local VLM chosen by settings) into the report."""
    from app.settings import Settings
    from tests.support.tiny_backends import build_tiny_llava

    settings = Settings(tmp_path / "settings.json")
    settings.set("engine", "hf-vlm")
    settings.set("engine_model_path", str(build_tiny_llava(tmp_path / "tiny-llava")))
    settings.set("engine_device", "cpu")
    settings.set("engine_options", {"max_new_tokens": 8, "threads": 1})
    window = _radiologist_on_demo_study(qtbot, database, settings)
    try:
        with qtbot.waitSignal(window.ai_panel.draftReady, timeout=120_000):
            window.ai_panel.draft_current()
        editor = window.report_editor
        assert editor.version is not None and editor.version.needs_ai_review  # marked as AI draft
        assert editor.editors["findings"].toPlainText().strip()
        assert "AI draft loaded" in window.statusBar().currentMessage()
    finally:
        window.ai.shutdown()


def test_explain_and_whatif_use_the_open_study_and_report(qtbot, database: Database, tmp_path) -> None:
    """Explain computes maps for the open study's report on a tiny checkpoint and overlays one on the
    viewer; What if opens beside it on the image on screen with the report text."""
    from app.settings import Settings
    from engines.models.tiny import make_tiny_checkpoint

    settings = Settings(tmp_path / "settings.json")
    settings.set("engine_model_path", str(make_tiny_checkpoint(tmp_path / "tiny")))
    settings.set("engine_device", "cpu")
    window = _radiologist_on_demo_study(qtbot, database, settings)
    window.report_editor.editors["findings"].setPlainText("Small right pleural effusion. Heart size normal.")
    window.report_editor.save_now()
    panel = window.explain_panel
    qtbot.waitUntil(lambda: panel.explain_button.isEnabled(), timeout=5000)
    overlays: list = []
    panel.overlayRequested.connect(lambda values, *_: overlays.append(values))
    with qtbot.waitSignal(panel.explanationReady, timeout=120_000):
        panel.explain()
    panel.select_sentence(0)
    qtbot.waitUntil(lambda: any(v is not None for v in overlays), timeout=5000)
    image = window.workspace.current_image()
    shown = next(v for v in overlays if v is not None)
    assert shown.shape == (image.rows, image.columns)

    window.show_whatif()
    assert window.tabs.currentWidget() is window.whatif_view
    assert "pleural effusion" in window.whatif_view.report_edit.toPlainText()
    window.close()


def test_switching_studies_quickly_gives_the_ai_panels_the_last_one(qtbot, database: Database, tmp_path) -> None:
    """Images are read in the background: a load that finishes after the next study was opened is dropped,
    so Draft never reads the previous patient's images."""
    from app.settings import Settings

    window = _radiologist_on_demo_study(qtbot, database, Settings(tmp_path / "settings.json"))
    first, second = demo_study_uids()[:2]
    window.open_study(first)
    window.open_study(second)
    assert window.qa_panel.study_uid == "" and not window.ai_panel.draft_button.isEnabled()  # nothing to read yet
    qtbot.waitUntil(lambda: window.ai_images_ready, timeout=30_000)
    qtbot.wait(300)  # the first load's result has arrived too by now, and was dropped
    assert window.ai_panel.study_uid == second and window.qa_panel.study_uid == second
    from app.ai.ai_store import study_images_from_db

    expected = [im.sop_instance_uid for im in study_images_from_db(database, second)]
    assert [im.sop_instance_uid for im in window.ai_panel.images] == expected
    window.close()
