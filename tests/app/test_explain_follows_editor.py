"""Explain follows the report on screen (the stale-explanation bug: an AI draft loaded into the editor left the
explanation of the old text in place), and the map in the viewer has a caption, a colour bar and a toggle."""

from __future__ import annotations

from PySide6.QtCore import Qt

from app.db.database import Database
from app.demo_studies import demo_study_uids, ensure_demo_imported


def _window(qtbot, tmp_path, monkeypatch):
    from app.main_window import MainWindow
    from app.reports.users import UserService
    from app.settings import Settings
    from engines.models.tiny import make_tiny_checkpoint

    monkeypatch.setenv("RADSTATION_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("RADSTATION_DB_URL", raising=False)
    database = Database.open(f"sqlite:///{tmp_path / 'rs.db'}", store_dir=tmp_path / "store")
    ensure_demo_imported(database)
    settings = Settings(tmp_path / "settings.json")
    settings.set("engine_model_path", str(make_tiny_checkpoint(tmp_path / "tiny")))
    settings.set("engine_device", "cpu")
    window = MainWindow(database, settings=settings)
    qtbot.addWidget(window)
    users = UserService.from_settings(database)
    users.add_user("rad", "correct horse battery", "radiologist")
    window.set_user(users.authenticate("rad", "correct horse battery"))
    window.open_study(demo_study_uids()[0])
    return window


def test_ai_draft_and_typing_make_the_explanation_stale(qtbot, tmp_path, monkeypatch) -> None:
    window = _window(qtbot, tmp_path, monkeypatch)
    try:
        editor, panel = window.report_editor, window.explain_panel
        editor.editors["findings"].setPlainText("Small right pleural effusion. Heart size normal.")
        editor.save_now()
        qtbot.waitUntil(lambda: panel.explain_button.isEnabled(), timeout=5000)
        with qtbot.waitSignal(panel.explanationReady, timeout=180_000):
            panel.explain()
        sentences = panel.explanation.sentences
        vp = window.workspace.active_viewport()
        missing = [i for i, s in enumerate(sentences) if s.pixel_map("attention") is None]
        if missing:  # e.g. a sentence beyond the tiny model's text length: no map, and the panel says why
            panel.select_sentence(missing[0])
            assert panel.map_note.text().startswith("No map: Attention ") and not vp.has_overlay()
        k = next(i for i, s in enumerate(sentences) if s.pixel_map("attention") is not None)
        panel.select_sentence(k)
        qtbot.waitUntil(vp.has_overlay, timeout=5000)
        shown = vp.overlay()
        words = sentences[k].text.split(":")[-1].strip()[:20]
        assert shown["caption"].startswith("Attention for \u201c") and words in shown["caption"]
        assert panel.map_note.text() == shown["caption"]
        assert shown["scale"] == ("0 low", "1 high") and shown["visible"]
        assert window.workspace._overlay_action.isEnabled() and window.workspace._overlay_action.isChecked()
        vp.setFocus()
        qtbot.keyClick(vp, Qt.Key.Key_Y)  # the viewer's toggle: the map hides, the image stays
        assert not vp.overlay_visible() and not window.workspace._overlay_action.isChecked()
        window.workspace._overlay_action.trigger()  # and the button brings it back
        assert vp.overlay_visible()

        # An AI draft replaces the text: the explanation of the old text must go, and Explain gets the new text.
        uid = demo_study_uids()[0]
        window._on_draft_ready(uid, {"findings": "Cardiomegaly. No pleural effusion.", "impression": "Cardiomegaly.",
                                     "provenance": {"engine": "diffusion", "weights_hash": "0" * 64, "seed": 0},
                                     "token_uncertainty": []})
        assert "Cardiomegaly" in editor.editors["findings"].toPlainText()
        assert panel.explanation is None and not vp.has_overlay()
        assert panel._study[2] == editor.current_text() and "No pleural effusion" in panel._study[2]
        assert "The report text changed" in panel.status.text()

        # Typing changes it again, before any autosave.
        editor.editors["impression"].setFocus()
        qtbot.keyClicks(editor.editors["impression"], " Stable.")
        assert panel._study[2] == editor.current_text() and "Stable." in panel._study[2]
    finally:
        window.ai.shutdown()
        window.close()
