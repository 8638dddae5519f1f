"""Uncertain words in an AI draft: only those above the threshold are marked, in a style that is not a
spell-checker's, with a legend and a tooltip that gives the engine's score."""

from __future__ import annotations

from PySide6.QtCore import QPoint
from PySide6.QtGui import QTextCharFormat

from app.widgets.report_editor import UNCERTAIN_WORD_THRESHOLD, ReportEditor, uncertain_tip
from tests.support.reports_testing import STUDY_UID

PROV = {"engine": "diffusion", "weights_hash": "c0ffee" * 10, "seed": 3}


def test_only_words_above_the_threshold_are_marked_with_legend_and_score(qtbot, env, radiologist) -> None:
    ed = ReportEditor(env.db, STUDY_UID, lambda: radiologist, service=env.service, autosave_ms=100)
    qtbot.addWidget(ed)
    ed.resize(1100, 700)
    ed.show()
    tokens = [{"text": "Small", "uncertainty": 0.95, "section": "findings"},
              {"text": "left", "uncertainty": 0.55, "section": "findings"},  # unsure, but not enough to mark
              {"text": "effusion", "uncertainty": 0.05, "section": "findings"}]
    ed.load_ai_draft("Small left pleural effusion.", "Effusion.", PROV, tokens)
    sels = ed.editors["findings"].extraSelections()
    assert [s.cursor.selectedText() for s in sels] == ["Small"]
    fmt = sels[0].format
    assert fmt.underlineStyle() == QTextCharFormat.UnderlineStyle.DotLine  # not the spell-checker's wave
    assert fmt.background().color().name() == "#ece3ff"
    assert ed.uncertain_legend.isVisible() and "unsure" in ed.uncertain_legend.text()
    assert ed._uncertain_spans["findings"] == [(0, 5, 0.95)]
    tip = uncertain_tip(0.95)
    assert "confidence 5%" in tip and f"{UNCERTAIN_WORD_THRESHOLD:.2f}" in tip
    editor = ed.editors["findings"]
    rect = editor.cursorRect(editor.document().find("Small"))
    filt = ed._tips[list(ed.editors).index("findings")]
    assert filt.editor is editor and editor.cursorForPosition(QPoint(rect.x() + 2, rect.center().y())).position() <= 5
    ed.accept_ai()  # reviewed: the marks and the legend go
    assert not ed.editors["findings"].extraSelections() and not ed.uncertain_legend.isVisible()
