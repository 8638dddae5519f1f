"""Uncertain words in an AI draft: only those at or above the threshold (the 'uncertain_word_threshold' setting,
default chosen on train drafts) are marked, in a style that is not a spell-checker's, with a legend that says
what the shading means and at what score, and a tooltip that gives the engine's score."""

from __future__ import annotations

from PySide6.QtCore import QPoint
from PySide6.QtGui import QTextCharFormat

from app.settings import Settings
from app.settings_schema import BY_KEY, validate
from app.widgets.report_editor import UNCERTAIN_WORD_THRESHOLD, ReportEditor, uncertain_tip
from tests.support.reports_testing import STUDY_UID

PROV = {"engine": "diffusion", "weights_hash": "c0ffee" * 10, "seed": 3}


def _editor(qtbot, env, radiologist, settings: Settings | None = None) -> ReportEditor:
    ed = ReportEditor(env.db, STUDY_UID, lambda: radiologist, service=env.service, autosave_ms=100,
                      settings=settings)
    qtbot.addWidget(ed)
    ed.resize(1100, 700)
    ed.show()
    return ed


def test_only_words_above_the_threshold_are_marked_with_legend_and_score(qtbot, env, radiologist) -> None:
    ed = _editor(qtbot, env, radiologist)
    hi, mid = min(UNCERTAIN_WORD_THRESHOLD + 0.05, 1.0), UNCERTAIN_WORD_THRESHOLD - 0.05
    tokens = [{"text": "Small", "uncertainty": hi, "section": "findings"},
              {"text": "left", "uncertainty": mid, "section": "findings"},  # unsure, but not enough to mark
              {"text": "effusion", "uncertainty": 0.01, "section": "findings"}]
    ed.load_ai_draft("Small left pleural effusion.", "Effusion.", PROV, tokens)
    sels = ed.editors["findings"].extraSelections()
    assert [s.cursor.selectedText() for s in sels] == ["Small"]
    fmt = sels[0].format
    assert fmt.underlineStyle() == QTextCharFormat.UnderlineStyle.DotLine  # not the spell-checker's wave
    assert fmt.background().color().name() == "#ece3ff"
    legend = ed.uncertain_legend.text()
    assert ed.uncertain_legend.isVisible() and "unsure" in legend
    assert f"{UNCERTAIN_WORD_THRESHOLD:.2f} or more" in legend and "contradicted the image's labels" in legend
    assert ed._uncertain_spans["findings"] == [(0, 5, hi)]
    tip = uncertain_tip(hi)
    assert f"confidence {1 - hi:.0%}" in tip and f"{UNCERTAIN_WORD_THRESHOLD:.2f}" in tip
    editor = ed.editors["findings"]
    rect = editor.cursorRect(editor.document().find("Small"))
    filt = ed._tips[list(ed.editors).index("findings")]
    assert filt.editor is editor and editor.cursorForPosition(QPoint(rect.x() + 2, rect.center().y())).position() <= 5
    ed.accept_ai()  # reviewed: the marks and the legend go
    assert not ed.editors["findings"].extraSelections() and not ed.uncertain_legend.isVisible()


def test_the_threshold_is_a_setting(qtbot, env, radiologist, tmp_path) -> None:
    settings = Settings(tmp_path / "settings.json")
    settings.set("uncertain_word_threshold", 0.3)
    ed = _editor(qtbot, env, radiologist, settings)
    tokens = [{"text": "Small", "uncertainty": 0.95, "section": "findings"},
              {"text": "left", "uncertainty": 0.55, "section": "findings"},
              {"text": "effusion", "uncertainty": 0.05, "section": "findings"}]
    ed.load_ai_draft("Small left pleural effusion.", "Effusion.", PROV, tokens)
    assert [s.cursor.selectedText() for s in ed.editors["findings"].extraSelections()] == ["Small", "left"]
    legend = ed.uncertain_legend.text()
    assert "confidence below 70%" in legend and "contradicted" not in legend  # not the calibrated default
    assert ed._tips[0].threshold() == 0.3
    spec = BY_KEY["uncertain_word_threshold"]
    assert spec.page == "AI engine" and validate(spec, 1.5) and not validate(spec, 0.4)
    from app.widgets.settings_dialog import SettingsDialog

    dialog = SettingsDialog(settings)  # the entry holds the value with its two decimals and saves a new one
    qtbot.addWidget(dialog)
    box = dialog.editors["uncertain_word_threshold"]
    assert box.decimals() == 2 and box.value() == 0.3
    box.setValue(0.62)
    assert dialog.save() and Settings(tmp_path / "settings.json").get("uncertain_word_threshold") == 0.62
