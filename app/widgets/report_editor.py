"""The report editor: five sections from a template, fields and macros, autosave off the GUI thread,
AI-draft marking, diff, findings list and version history.

Embedding (main window):
    editor = ReportEditor(database, study_uid, user_provider)   # user_provider() -> AuthSession | None
    editor.load_ai_draft(findings, impression, provenance, token_uncertainty)
    editor.signed.connect(on_signed)                             # version id of the new signed version

A study without a report shows the template that fits the exam (switchable in the Template box) and saves
nothing until the radiologist types, picks a field, accepts defaults or loads an AI draft: opening a study
never creates a "normal" draft that could be signed unread. Template [fields] must all be filled before the
Sign button is enabled.

After the first edit every change is written to the database at most `autosave_ms` (default 1000) after
it happened (the timer is not restarted by further typing), on a worker thread so a busy database never
freezes typing; a failed save says why in words and retries with back-off, keeping the text. Signing,
switching study and closing save synchronously first. Reopening a study whose draft was autosaved shows a
"recovered draft" banner.

Many workstations, one database: opening an unsigned report claims it (app/reports/claims.py) and the
claim is renewed while the editor is open; a report claimed by someone else opens read-only with "being
read by Dr X", and becomes editable here once their claim is released or lapses. Every save says which
revision its text is based on, so a save over someone else's newer text is refused with a clear banner
and the typed text stays in the editor.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QEvent, QObject, Qt, QTimer, Signal
from PySide6.QtGui import (
    QColor,
    QGuiApplication,
    QKeyEvent,
    QKeySequence,
    QShortcut,
    QTextCharFormat,
    QTextCursor,
)
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QSizePolicy,
    QSplitter,
    QTabWidget,
    QTextBrowser,
    QTextEdit,
    QVBoxLayout,
    QWidget,
)

from app.formatting import format_datetime
from app.reports.claims import ClaimService, ClaimView, ReportClaimedError
from app.reports.content import SECTION_KEYS, SECTION_TITLES, ReportContent
from app.reports.diff import sections_diff_html
from app.reports.exam import exam_info
from app.reports.exporting import FORMATS, export_version
from app.reports.fields import blank_fields, describe_unfilled
from app.reports.macros import Macro, MacroLibrary
from app.reports.models import ImmutableVersionError
from app.reports.service import ReportConflictError, ReportError, ReportService, VersionView
from app.reports.templates import ExamInfo, ReportTemplate, TemplateError, TemplateLibrary, load_template
from app.reports.users import AuthSession, SessionExpiredError, UserService
from app.settings import Settings, current_settings
from app.settings_schema import BY_KEY as SETTING_BY_KEY
from app.widgets.report_autosave import BackgroundSaver, SaveResult
from app.widgets.report_fields import FieldAssist, replace_all_text
from app.widgets.report_versions import VersionHistory
from viewer.widgets.background import BackgroundRunner

AI_TINT = "#fff4d6"
BANNER_STYLES = {
    "ai": "background:#ffe8b3;color:#5a3b00;border:1px solid #e0b050;padding:6px;border-radius:4px;",
    "ok": "background:#e3f1e3;color:#174d17;border:1px solid #9cc89c;padding:6px;border-radius:4px;",
    "warn": "background:#fde2e2;color:#7a1111;border:1px solid #e09a9a;padding:6px;border-radius:4px;",
    "info": "background:#e6eef9;color:#1b3a66;border:1px solid #a8c0e4;padding:6px;border-radius:4px;",
}
FINDING_VALUE_TEXT = {1: "present", 0: "absent", -1: "uncertain"}
FINDING_VALUE_COLOUR = {1: "#b3261e", 0: "#2e7d32", -1: "#b26a00"}
HEALTHY_FINDINGS = ("No Finding",)  # "present" here is good news: never shown in alarm red
SECTION_HEIGHTS = {"indication": 54, "technique": 54, "comparison": 46}
# Uncertain words: only those the engine was this unsure of (uncertainty = 1 - token confidence), shaded
# lavender with a dotted underline - never the red wave of a spell-checker. The threshold is the
# 'uncertain_word_threshold' setting; its default is chosen on train drafts against the image labels
# (`radstation-eval uncertain-words`, lab.eval.uncertain_sentences).
UNCERTAIN_WORD_THRESHOLD = float(SETTING_BY_KEY["uncertain_word_threshold"].default)
UNCERTAIN_SHADE, UNCERTAIN_LINE = "#ece3ff", "#6a3fb5"
RETRY_DELAYS_S = (1, 2, 5, 10, 30)


def _label_findings(text: str) -> Any | None:
    """The labeler's result for `text`, or None when the labeler is not available."""
    try:
        from engines.labeler import label_report
    except ImportError:
        return None
    return label_report(text)


def _short_reason(exc: BaseException) -> str:
    """The database's own words without the SQL statement SQLAlchemy appends."""
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).strip().splitlines()[0] if str(orig or exc).strip() else ""
    return (text or type(exc).__name__)[:160]


def _no_wide(label: QLabel) -> QLabel:
    """Labels that wrap instead of widening the dock when their text grows."""
    label.setWordWrap(True)
    label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
    label.setMinimumWidth(50)
    return label


class _SectionFilter(QObject):
    """Focus tracking and the editor's own keys on every section box: F6 / Shift+F6 next / previous field,
    Ctrl+Space macro. Handled here, not as window shortcuts, so they never clash with menu keys."""

    def __init__(self, on_in: Callable[[QObject], None], on_out: Callable[[], None],
                 on_key: Callable[[QKeyEvent], bool]) -> None:
        super().__init__()
        self.on_in, self.on_out, self.on_key = on_in, on_out, on_key

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt override
        if event.type() == QEvent.Type.FocusIn:
            self.on_in(obj)
        elif event.type() == QEvent.Type.FocusOut:
            self.on_out()
        elif event.type() in (QEvent.Type.KeyPress, QEvent.Type.ShortcutOverride):
            if self.on_key(event):
                event.accept()
                return event.type() == QEvent.Type.KeyPress
        return False


class _UncertainTips(QObject):
    """Tooltips over an editor's uncertain words: the engine's confidence for the word under the mouse."""

    def __init__(self, editor: QPlainTextEdit, spans: Callable[[], list[tuple[int, int, float]]],
                 threshold: Callable[[], float] = lambda: UNCERTAIN_WORD_THRESHOLD) -> None:
        super().__init__(editor)
        self.editor, self.spans, self.threshold = editor, spans, threshold

    def eventFilter(self, _obj: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt override
        if event.type() != QEvent.Type.ToolTip:
            return False
        pos = self.editor.cursorForPosition(event.pos()).position()
        for start, end, score in self.spans():
            if start <= pos <= end:
                from PySide6.QtWidgets import QToolTip

                QToolTip.showText(event.globalPos(), uncertain_tip(score, self.threshold()), self.editor)
                return True
        from PySide6.QtWidgets import QToolTip

        QToolTip.hideText()
        return True


def uncertain_tip(score: float, threshold: float = UNCERTAIN_WORD_THRESHOLD) -> str:
    return (f"The engine was unsure of this: confidence {1 - score:.0%} (uncertainty {score:.2f}; text at "
            f"{threshold:.2f} or above is marked)")


def uncertain_legend_html(threshold: float) -> str:
    """What the shading means and at what score; the default's calibration is stated only for the default."""
    calibrated = (" Chosen on training drafts: a sentence at this score or above contradicted the image's labels "
                  "more often than not." if abs(threshold - UNCERTAIN_WORD_THRESHOLD) < 1e-9 else "")
    return (f"<span style='background:{UNCERTAIN_SHADE};border-bottom:1px dotted {UNCERTAIN_LINE}'>&nbsp;shaded"
            f"&nbsp;</span> text: the engine was unsure of it (confidence below {1 - threshold:.0%}, uncertainty "
            f"{threshold:.2f} or more; Settings &gt; AI engine).{calibrated} Hover for the score.")


class ReportEditor(QWidget):
    textChanged = Signal()
    signed = Signal(int)
    autosaved = Signal(int)  # revision number, emitted after the database committed it
    versionChanged = Signal(int)
    queuedForSending = Signal(list)  # outbox item ids
    saveFailed = Signal(str)  # the human message shown (tests, status bar)
    reportOpened = Signal(str)  # study UID: its report (or template) is on screen, after a background open too

    def __init__(self, database, study_uid: str, user_provider: Callable[[], AuthSession | None],
                 parent: QWidget | None = None, *, autosave_ms: int = 1000, service: ReportService | None = None,
                 exam_type: str | None = None, templates: TemplateLibrary | None = None,
                 macros: MacroLibrary | None = None, claims: ClaimService | None = None,
                 settings: Settings | None = None) -> None:
        super().__init__(parent)
        self.database = database
        self.study_uid = study_uid
        self.user_provider = user_provider
        self.settings = settings if settings is not None else current_settings()
        self.service = service or ReportService(database, UserService.from_settings(database, self.settings),
                                                self.settings)
        self.template_library = templates or TemplateLibrary.default(self.settings)
        self.macro_library = macros or MacroLibrary(self.template_library)
        self.claims = claims or ClaimService(database)
        self.claim: ClaimView | None = None  # our claim on the report while we may edit it
        self.claimed_by: ClaimView | None = None  # someone else's live claim: read-only here
        self.conflict = ""  # set when a save was refused because the stored text moved on
        self._claim_renewed = dt.datetime.min.replace(tzinfo=dt.UTC)
        self._base_revision = 0  # the stored revision the text on screen is based on (checked by every save)
        self._exam_type = exam_type
        self._exam: ExamInfo = ExamInfo()
        self._version: VersionView | None = None
        self._template: ReportTemplate | None = None  # what a not-yet-saved report starts from
        self._templates: list[ReportTemplate] = []
        self._opened_for = ""  # user the report was opened for ('' = not opened yet)
        self._open_seq = 0  # the newest background open; an older one's result is dropped
        self._opening = False  # a background open is on its way (editors empty and read-only meanwhile)
        self._open_runner = BackgroundRunner(self)
        self._loading = False
        self._dirty = False
        self._last_error = ""
        self._retry_index = 0
        self._applied_seq = 0
        self._save_again = False
        self._last_focus: QPlainTextEdit | None = None
        self.last_saved_at: dt.datetime | None = None

        self._saver = BackgroundSaver(self._persist, self)
        self._saver.finished.connect(self._on_background_saved)
        self._autosave = QTimer(self)
        self._autosave.setSingleShot(True)
        self._autosave.setInterval(max(10, min(int(autosave_ms), 1000)))
        self._autosave.timeout.connect(self._save_in_background)
        self._retry = QTimer(self)
        self._retry.setSingleShot(True)
        self._retry.timeout.connect(self._save_in_background)
        self._relabel = QTimer(self)
        self._relabel.setSingleShot(True)
        self._relabel.setInterval(250)
        self._relabel.timeout.connect(self._update_findings)
        self._session_check = QTimer(self)
        self._session_check.setInterval(5000)
        self._session_check.timeout.connect(self._check_session)
        self._session_check.start()

        self._build_ui()
        self._open()

    # -- construction ---------------------------------------------------------------------------------------
    def _build_ui(self) -> None:
        self.status_label = _no_wide(QLabel())
        self.status_label.setObjectName("reportStatus")
        self.saved_label = QLabel()
        self.saved_label.setStyleSheet("color:#666;")
        self.template_combo = QComboBox()
        self.template_combo.setObjectName("templateCombo")
        self.template_combo.setToolTip("Report template: chosen from the exam's modality, body part and "
                                       "description; pick another to switch (Undo brings the text back)")
        self.template_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.template_combo.setMinimumContentsLength(14)
        self.template_combo.activated.connect(self._template_picked)
        self.undo_button = QPushButton("Undo")
        self.redo_button = QPushButton("Redo")
        self.macros_button = QPushButton("Macros")
        self.macros_button.setToolTip("AutoText: type a macro name and press Ctrl+Space, or pick one here")
        self._macro_menu = QMenu(self.macros_button)
        self._macro_menu.aboutToShow.connect(self._fill_macro_menu)
        self.macros_button.setMenu(self._macro_menu)
        self.defaults_button = QPushButton("Fill defaults")
        self.defaults_button.setToolTip("Fill every [pick-list] field with its first choice: you accept the "
                                        "template's wording for everything you have not chosen yet")
        self.accept_button = QPushButton("Accept AI draft")
        self.accept_button.setToolTip("Confirm you reviewed the AI text as it stands")
        self.prelim_button = QPushButton("Mark preliminary")
        self.sign_button = QPushButton("Sign…")
        self.sign_button.setStyleSheet("font-weight:bold;")
        self.amend_button = QPushButton("Amend…")
        self.addendum_button = QPushButton("Addendum")
        self.export_button = QPushButton("Export")
        export_menu = QMenu(self.export_button)
        for fmt, (label, _suffix) in FORMATS.items():
            export_menu.addAction(label, lambda f=fmt: self.export_dialog(f))
        self.export_button.setMenu(export_menu)
        self.send_button = QPushButton("Send to PACS…")
        self.send_button.clicked.connect(self.send_dialog)
        for b, slot in ((self.undo_button, self.undo), (self.redo_button, self.redo),
                        (self.defaults_button, self.fill_defaults),
                        (self.accept_button, self.accept_ai), (self.prelim_button, self.mark_preliminary),
                        (self.sign_button, self.open_sign_dialog), (self.amend_button, lambda: self.amend("amendment")),
                        (self.addendum_button, lambda: self.amend("addendum"))):
            b.clicked.connect(slot)
        # Four short rows so the editor fits a narrow docked pane (the viewer keeps the screen), no overflow.
        top = QVBoxLayout()
        rows = [QHBoxLayout() for _ in range(4)]
        rows[0].addWidget(self.status_label, 1)
        rows[0].addWidget(self.saved_label)
        rows[1].addWidget(QLabel("Template:"))
        rows[1].addWidget(self.template_combo, 1)
        rows[1].addWidget(self.macros_button)
        rows[1].addWidget(self.defaults_button)
        for b in (self.undo_button, self.redo_button, self.accept_button):
            rows[2].addWidget(b)
        rows[2].addStretch(1)
        rows[2].addWidget(self.prelim_button)
        rows[2].addWidget(self.sign_button)
        rows[3].addStretch(1)
        for b in (self.amend_button, self.addendum_button, self.export_button, self.send_button):
            rows[3].addWidget(b)
        for row in rows:
            top.addLayout(row)

        self.banner = _no_wide(QLabel())
        self.banner.hide()
        self.recovery_banner = _no_wide(QLabel())
        self.recovery_banner.setStyleSheet(BANNER_STYLES["info"])
        self.recovery_banner.hide()
        self.save_problem = QFrame()
        self.save_problem.setObjectName("saveProblem")
        self.save_problem.setStyleSheet(BANNER_STYLES["warn"])
        self.save_problem_label = _no_wide(QLabel())
        self.retry_button = QPushButton("Retry now")
        self.retry_button.clicked.connect(self._save_in_background)
        row = QHBoxLayout(self.save_problem)
        row.setContentsMargins(4, 2, 4, 2)
        row.addWidget(self.save_problem_label, 1)
        row.addWidget(self.retry_button)
        self.save_problem.hide()

        self.editors: dict[str, QPlainTextEdit] = {}
        self._focus_filter = _SectionFilter(self._on_focus_in, self._on_focus_out, self._section_key)
        self._uncertain_spans: dict[str, list[tuple[int, int, float]]] = {}
        self._tips: list[_UncertainTips] = []
        self.uncertain_legend = _no_wide(QLabel(uncertain_legend_html(self.uncertain_threshold())))
        self.uncertain_legend.setStyleSheet("color:#444")
        self.uncertain_legend.hide()
        form = QVBoxLayout()
        self.earlier_addenda = _no_wide(QLabel())
        self.earlier_addenda.setObjectName("earlierAddenda")
        self.earlier_addenda.setStyleSheet("color:#333;background:#f2f2f2;padding:4px;")
        self.earlier_addenda.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.earlier_addenda.hide()
        for key in (*SECTION_KEYS, "addendum"):
            label = QLabel(SECTION_TITLES[key])
            label.setStyleSheet("font-weight:bold;color:#14467f;margin-top:4px;")
            edit = QPlainTextEdit()
            edit.setObjectName(f"section_{key}")
            edit.setTabChangesFocus(True)
            if key in SECTION_HEIGHTS:
                edit.setFixedHeight(SECTION_HEIGHTS[key])
            edit.textChanged.connect(self._on_text_changed)
            edit.installEventFilter(self._focus_filter)
            tips = _UncertainTips(edit, lambda k=key: self._uncertain_spans.get(k, []), self.uncertain_threshold)
            edit.viewport().installEventFilter(tips)
            self._tips.append(tips)
            self.editors[key] = edit
            form.addWidget(label)
            if key == "addendum":
                self._addendum_label = label
                form.addWidget(self.earlier_addenda)
            form.addWidget(edit, 3 if key == "findings" else (2 if key in ("impression", "addendum") else 0))
        left = QWidget()
        left.setLayout(form)

        self.findings_list = QListWidget()
        self.findings_list.itemActivated.connect(self._select_mention)
        self.findings_list.itemClicked.connect(self._select_mention)
        self.diff_view = QTextBrowser()
        self.history = VersionHistory(self.service, self.study_uid)
        self.history_list = self.history.list
        self.tabs = QTabWidget()
        self.tabs.addTab(self.findings_list, "Findings")
        self.tabs.addTab(self.diff_view, "AI draft vs current")
        self.tabs.addTab(self.history, "Versions")
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(left)
        split.addWidget(self.tabs)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)

        lay = QVBoxLayout(self)
        lay.addLayout(top)
        lay.addWidget(self.recovery_banner)
        lay.addWidget(self.banner)
        lay.addWidget(self.uncertain_legend)
        lay.addWidget(self.save_problem)
        lay.addWidget(split, 1)

        self.fields = FieldAssist(lambda: [self.editors[k] for k in (*SECTION_KEYS, "addendum")],
                                  self._exam_macros, self)
        self.fields.message.connect(lambda m: self._show_banner("info", m))
        context = Qt.ShortcutContext.WidgetWithChildrenShortcut
        for seq, slot in ((QKeySequence.StandardKey.Undo, self.undo), (QKeySequence.StandardKey.Redo, self.redo),
                          (QKeySequence.StandardKey.Save, self.save_now)):
            QShortcut(seq, self, slot, context=context)

    def _section_key(self, event: QKeyEvent) -> bool:
        """F6 / Shift+F6 / Ctrl+Space in a section box; True when handled (a ShortcutOverride only claims
        the key so that a window shortcut cannot take it)."""
        key, mods = event.key(), event.modifiers() & ~Qt.KeyboardModifier.KeypadModifier
        ctrl = Qt.KeyboardModifier.ControlModifier
        is_field = key == Qt.Key.Key_F6 and mods in (Qt.KeyboardModifier.NoModifier, Qt.KeyboardModifier.ShiftModifier)
        is_macro = key == Qt.Key.Key_Space and mods == ctrl
        if not (is_field or is_macro):
            return False
        if event.type() == QEvent.Type.KeyPress:
            if is_field:
                self.fields.next_field(backwards=bool(mods & Qt.KeyboardModifier.ShiftModifier))
            else:
                self.fields.expand_macro()
        return True

    def _user(self) -> AuthSession | None:
        return self.user_provider()

    def _open(self, background: bool = False) -> None:
        """Show the study's report, or the template that fits the exam when it has none yet (unsaved).
        `background`: the database part runs off the GUI thread (switching studies); the editors stay empty
        and read-only until it is back, and a result for a study no longer shown here is dropped."""
        if not self.study_uid:  # built ahead of its first study (the main window's idle time): nothing to read
            self._set_editable(False)
            return
        user = self._user()
        if user is None:
            self._show_banner("warn", "Log in to open or write the report.")
            self._set_editable(False)
            self._refresh_state()
            return
        self._open_seq += 1
        if background:
            seq, study_uid = self._open_seq, self.study_uid
            self._opening = True
            self._show_opening()
            self._open_runner.submit(self._read_report, study_uid, user,
                                     on_done=lambda r: self._opened(seq, study_uid, user, r),
                                     on_error=lambda exc: self._open_failed(seq, study_uid, exc))
            return
        self._opening = False
        try:
            read = self._read_report(self.study_uid, user)
        except (ReportError, SessionExpiredError) as exc:
            self._show_banner("warn", str(exc))
            self._set_editable(False)
            return
        self._apply_report(user, *read)

    def _read_report(self, study_uid: str, user: AuthSession) -> tuple[VersionView | None, ExamInfo, list]:
        """The database part of opening (no widget touched: it may run on a worker thread): the version to
        show (None: no report yet), the exam facts that choose the template, the version history."""
        history = self.service.history(study_uid)
        v = self.service.open_or_create(study_uid, user) if history else None
        return v, exam_info(self.database, study_uid), history

    @property
    def opening(self) -> bool:
        """The report of the study just switched to is still being read (tests, UI-stall probe)."""
        return self._opening

    def _show_opening(self) -> None:
        self._loading = True
        try:
            for e in self.editors.values():
                e.setPlainText("")  # never the previous patient's text, not even for a moment
        finally:
            self._loading = False
        self._set_editable(False)
        self.status_label.setText("<b>Opening the report\u2026</b>")
        self.banner.hide()
        self.history.refresh(versions=[])

    def _opened(self, seq: int, study_uid: str, user: AuthSession, read: tuple) -> None:
        if seq != self._open_seq or study_uid != self.study_uid:
            return  # another study (or the same one again) was opened meanwhile: its own read is on the way
        self._opening = False
        if self._user() is not user:
            self._open()  # logged out or another user meanwhile: open for whoever is here now
            return
        self._apply_report(user, *read)

    def _open_failed(self, seq: int, study_uid: str, exc: BaseException) -> None:
        if seq != self._open_seq or study_uid != self.study_uid:
            return
        self._opening = False
        self._show_banner("warn", f"The report could not be opened: {exc}")
        self._set_editable(False)

    def _apply_report(self, user: AuthSession, v: VersionView | None, exam: ExamInfo, history: list) -> None:
        self._exam = exam
        self._load_template_list(user)
        self._opened_for = user.username
        if v is None:
            self._start_from_template(self._initial_template(), history=history)
            self.reportOpened.emit(self.study_uid)
            return
        if not v.is_signed:
            self._take_claim(user)
        if not v.is_signed and v.revision > 0 and v.updated_at is not None and self.claimed_by is None:
            self.recovery_banner.setText(
                f"Recovered draft: version {v.version_no}, autosaved {format_datetime(v.updated_at)} "
                f"(revision {v.revision}). Nothing typed was lost — continue editing, or undo to go back.")
            self.recovery_banner.show()
        self._show_version(v, history=history)
        self.reportOpened.emit(self.study_uid)

    # -- templates ------------------------------------------------------------------------------------------
    def _load_template_list(self, user: AuthSession) -> None:
        ranked = self.template_library.ranked(self._exam, user.username)
        fitting = [t for t, _s in ranked]
        others = [t for t in self.template_library.templates(user.username) if t.key not in {f.key for f in fitting}]
        self._templates = fitting + others
        self.template_combo.blockSignals(True)
        self.template_combo.clear()
        for t in fitting:
            self.template_combo.addItem(t.label, t.key)
        if others:
            self.template_combo.insertSeparator(self.template_combo.count())
            for t in others:
                self.template_combo.addItem(f"{t.label} — other exam", t.key)
        self.template_combo.blockSignals(False)
        if self.template_library.problems:
            self._show_banner("warn", "Some templates could not be read: " + "; ".join(self.template_library.problems))

    def _initial_template(self) -> ReportTemplate:
        if self._exam_type:
            try:
                return load_template(self._exam_type)
            except TemplateError as exc:
                self._show_banner("warn", str(exc))
        return self._templates[0] if self._templates else load_template("generic")

    def templates(self) -> list[ReportTemplate]:
        """The templates offered in the Template box, those that fit the exam first."""
        return list(self._templates)

    def current_template(self) -> ReportTemplate | None:
        return self._template

    def _select_template_in_combo(self, tpl: ReportTemplate | None) -> None:
        if tpl is None:
            return
        i = self.template_combo.findData(tpl.key)
        if i < 0:
            i = next((j for j in range(self.template_combo.count())
                      if str(self.template_combo.itemData(j) or "").endswith(f":{tpl.exam_type}")), -1)
        self.template_combo.blockSignals(True)
        self.template_combo.setCurrentIndex(i)
        self.template_combo.blockSignals(False)

    def _start_from_template(self, tpl: ReportTemplate, history: list | None = None) -> None:
        self._template = tpl
        self._version = None
        self._loading = True
        try:
            for key, e in self.editors.items():
                e.setPlainText(tpl.content.get(key) if key != "addendum" else "")
        finally:
            self._loading = False
        self._dirty = False
        self.editors["addendum"].hide()
        self._addendum_label.hide()
        self.earlier_addenda.hide()
        self._set_editable(True)
        self._select_template_in_combo(tpl)
        self._refresh_state()
        self._update_findings()
        self.history.refresh(versions=history)

    def _template_picked(self, index: int) -> None:
        key = self.template_combo.itemData(index)
        if key:
            self.choose_template(str(key))

    def choose_template(self, key: str, confirm: bool | None = None) -> bool:
        """Switch to another template. Text the radiologist already wrote is replaced only after they
        confirm (`confirm` answers for them in scripts); Undo brings it back."""
        tpl = next((t for t in self._templates if t.key == key or t.exam_type == key), None)
        if tpl is None or (self._version is not None and self._version.is_signed) or self._user() is None:
            self._select_template_in_combo(self._template)
            return False
        written = self._version is not None or self._dirty
        if written and confirm is None:
            confirm = self._ask("Switch template",
                                f"Replace the report text with the “{tpl.title}” template?\n\n"
                                "What you wrote stays on the undo stack (Ctrl+Z brings it back).", "Replace text")
        if written and not confirm:
            self._select_template_in_combo(self._template)
            return False
        self._template = tpl
        self._loading = not written  # an unsaved template stays unsaved; replacing written text is an edit
        try:
            for key_ in SECTION_KEYS:
                replace_all_text(self.editors[key_], tpl.content.get(key_))
        finally:
            self._loading = False
        if self._version is not None:
            user = self._user()
            try:
                self.service.set_template(self._version.id, tpl, user)
            except (ReportError, SessionExpiredError, ImmutableVersionError) as exc:
                self._show_banner("warn", f"Template not recorded: {exc}")
        self._select_template_in_combo(tpl)
        self._refresh_state()
        self._update_findings()
        return True

    def _ask(self, title: str, text: str, accept_label: str) -> bool:
        box = QMessageBox(QMessageBox.Icon.Question, title, text, parent=self)
        yes = box.addButton(accept_label, QMessageBox.ButtonRole.AcceptRole)
        no = box.addButton(QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(yes)
        box.setEscapeButton(no)
        box.exec()
        return box.clickedButton() is yes

    def _exam_macros(self) -> list[Macro]:
        user = self._user()
        return self.macro_library.for_exam(self._exam.modalities, user.username if user else "")

    def _fill_macro_menu(self) -> None:
        self._macro_menu.clear()
        writable = [e for e in self.editors.values() if not e.isReadOnly() and not e.isHidden()]
        edit = next((e for e in writable if e.hasFocus()), self._last_focus if self._last_focus in writable
                    else (writable[3] if len(writable) > 3 else (writable[0] if writable else None)))
        for m in self._exam_macros():
            preview = m.text if len(m.text) <= 50 else m.text[:47] + "…"
            self._macro_menu.addAction(f"{m.name} — {preview}".replace("&", "&&"),
                                       lambda mm=m, e=edit: self._insert_macro_at_cursor(e, mm))
        if not self._macro_menu.actions():
            self._macro_menu.addAction("No macros for this exam").setEnabled(False)

    def _insert_macro_at_cursor(self, edit: QPlainTextEdit | None, macro: Macro) -> None:
        if edit is None or edit.isReadOnly():
            return
        cur = edit.textCursor()
        self.fields.insert_macro(edit, macro, cur.selectionStart(), cur.selectionEnd())

    def fill_defaults(self) -> int:
        n = self.fields.fill_defaults()
        if not n:
            self._show_banner("info", "No pick-list fields left to fill.")
        return n

    # -- public API ---------------------------------------------------------------------------------------
    @property
    def version(self) -> VersionView | None:
        return self._version

    @property
    def is_saved(self) -> bool:
        """True when the report exists in the database and holds everything on screen."""
        return self._version is not None and not self._dirty

    def sections(self) -> dict[str, str]:
        data = {k: self.editors[k].toPlainText() for k in SECTION_KEYS}
        v = self._version
        if v is not None and (v.kind == "addendum" or v.content.get("addendum")):
            data["addendum"] = v.carried_addendum + self.editors["addendum"].toPlainText()
        return data

    def current_text(self) -> str:
        return ReportContent(self.sections()).as_text()

    def load_ai_draft(self, findings: str, impression: str, provenance: dict, token_uncertainty: list | None = None
                      ) -> None:
        """Put an AI draft into findings/impression; marked as AI text until a person edits or accepts it.
        The replaced text stays on the undo stack. A report that did not exist yet is created for it."""
        user = self._user()
        if self._opening:
            raise ReportError("the report is still opening")  # the main window retries on reportOpened
        if user is None or not self._opened_for:
            raise ReportError("no open report (log in first)")
        if self._version is not None and self._version.is_signed:
            raise ImmutableVersionError("the report is signed; start an amendment before loading a new draft")
        if self._version is None:
            self._version = self.service.open_or_create(self.study_uid, user, template=self._template)
            self._base_revision = self._version.revision
            self._take_claim(user)
            self._dirty = True  # whatever was on screen is saved under the draft before it is replaced
        self.save_now()
        v = self.service.load_ai_draft(self._version.id, findings, impression, provenance, user, token_uncertainty)
        self._loading = True
        try:
            for key in ("findings", "impression"):
                replace_all_text(self.editors[key], v.content.get(key))
        finally:
            self._loading = False
        self._version = v
        self._base_revision = v.revision
        self._refresh_state()
        self._update_findings()
        self.textChanged.emit()  # the text on screen changed: explanations of the old text are stale
        self.history.refresh()

    def save_now(self) -> bool:
        """Write pending edits now, on this thread (after a background save in flight); True when nothing
        is left unsaved."""
        self._autosave.stop()
        self._retry.stop()
        if not self._dirty or (self._version is not None and self._version.is_signed):
            return not self._dirty
        if self.conflict or self.claimed_by is not None:  # refused once already: never over newer text
            return False
        payload = self._snapshot()
        if payload is None:
            return False
        result = self._saver.save_sync(payload)
        self._applied_seq = max(self._applied_seq, result.seq)
        if result.error is not None:
            self._save_failed(result.error)
            return False
        self._apply_saved(result)
        return not self._dirty

    def undo(self) -> None:
        self._focused_editor().undo()

    def redo(self) -> None:
        self._focused_editor().redo()

    def accept_ai(self) -> None:
        user = self._user()
        if self._version is None or user is None:
            return
        self.save_now()
        self.service.accept_ai(self._version.id, user)
        self._version = self.service.version(self._version.id)
        self._refresh_state()

    def mark_preliminary(self) -> None:
        user = self._user()
        if user is None:
            return
        if self._version is None:
            self._show_banner("warn", "Nothing to mark yet: type or accept something first.")
            return
        self.save_now()
        try:
            self.service.mark_preliminary(self._version.id, user)
        except (ReportError, SessionExpiredError) as exc:
            self._show_banner("warn", str(exc))
            return
        self._show_version(self.service.version(self._version.id))

    def amend(self, kind: str, reason: str | None = None) -> bool:
        """Start an amendment (asks for the required reason unless given) or an addendum."""
        user = self._user()
        if self._version is None or user is None:
            return False
        if not self._take_claim(user) and self.claimed_by is not None:
            self._refresh_state()
            return False
        if kind == "amendment" and reason is None:
            from app.widgets.amend_dialog import AmendReasonDialog

            dialog = AmendReasonDialog(self._version.version_no, self)
            self.amend_dialog = dialog
            if not dialog.exec():
                return False
            reason = dialog.text()
        try:
            v = self.service.amend(self._version.id, user, kind, reason=reason or "")
        except (ReportError, SessionExpiredError) as exc:
            self._show_banner("warn", str(exc))
            return False
        self._show_version(v)
        return True

    def open_sign_dialog(self) -> None:
        from app.widgets.sign_dialog import SignDialog

        user = self._user()
        if self._version is None or user is None:
            return
        if not user.can_sign:
            QMessageBox.information(self, "Sign report", f"{user.username} is a {user.role}; only a radiologist "
                                    "may sign. Mark the report preliminary for sign-off instead.")
            return
        if problem := describe_unfilled(self.sections()):
            self._show_banner("warn", problem)
            self.fields.next_field()
            return
        if not self.save_now() and self._dirty:
            return
        dialog = SignDialog(self.service, self.service.version(self._version.id), user,
                            self.service.identity(self.study_uid), self)
        self.sign_dialog = dialog
        if dialog.exec() and dialog.signed_version is not None:
            self._show_version(dialog.signed_version)
            self.signed.emit(dialog.signed_version.id)

    def export_dialog(self, fmt: str) -> None:
        """Ask for a file name and write the current version in `fmt` (signed formats need a signed version)."""
        if self._version is None:
            self._show_banner("warn", "Nothing to export yet: the report has not been written.")
            return
        label, suffix = FORMATS[fmt]
        self.save_now()
        default = f"report_{self._version.report_id}_v{self._version.version_no}{suffix}"
        path, _ = QFileDialog.getSaveFileName(self, f"Export {label}", default, f"{label} (*{suffix})")
        if path:
            self.export_to(fmt, Path(path))

    def export_to(self, fmt: str, path: Path) -> Path | None:
        if self._version is None:
            self._show_banner("warn", "Export failed: the report has not been written yet.")
            return None
        try:
            return export_version(self.service, self._version.id, fmt, path, self._user())
        except (ReportError, OSError, ValueError) as exc:
            self._show_banner("warn", f"Export failed: {exc}")
            return None

    def send_dialog(self) -> None:
        """Queue the signed SR, PDF and the objects that go with them (KOS, AI results SR, GSPS, TID 1500)
        for a configured PACS; the outbox sends and shows progress."""
        from app.pacs.errors import PacsConfigError
        from app.pacs.nodes import NodeStore
        from app.reports.outbox import Outbox

        if self._version is None or not self._version.is_signed:
            self._show_banner("warn", "Only a signed report can be sent.")
            return
        try:
            names = [n.name for n in NodeStore(self.settings).load()]
        except PacsConfigError as exc:
            self._show_banner("warn", str(exc))
            return
        if not names:
            self._show_banner("warn", "No PACS is configured (PACS > Nodes and Storage SCP…).")
            return
        from app.reports.outbox import DOCUMENT_LABELS, available_documents

        documents = available_documents(self.service, self._version.id)
        what = ", ".join(DOCUMENT_LABELS[d] for d in documents)
        name, ok = QInputDialog.getItem(self, "Send report", f"Send {what} to:", names, 0, False)
        if ok and name:
            self.send_to(Outbox(self.service), name, documents)

    def send_to(self, outbox, destination: str, documents: tuple[str, ...] | None = None) -> list[int]:
        """Queue `documents` (default: everything the signed version has, see outbox.available_documents)."""
        try:
            if documents is None:
                from app.reports.outbox import available_documents

                documents = available_documents(self.service, self._version.id)
            ids = outbox.enqueue(self._version.id, destination, self._user(), documents=documents)
        except Exception as exc:  # noqa: BLE001 - config or export problems are shown, never crash
            self._show_banner("warn", f"Could not queue the report: {exc}")
            return []
        self._show_banner("info", f"Queued for {destination}: see the outbox for delivery (marked sent only "
                                  "after the PACS confirms).")
        self.queuedForSending.emit(ids)
        return ids

    def reload(self) -> None:
        """Show the stored version; unsaved text (e.g. after a refused save) goes to the clipboard first."""
        if self._version is None:
            return
        stashed = self._dirty
        if stashed:
            QGuiApplication.clipboard().setText(self.current_text())
        self.conflict = ""
        self._show_version(self.service.version(self._version.id))
        if stashed:
            self._show_banner("info", "Reloaded the stored version; the text you had not saved is on the "
                                      "clipboard (paste it where you need it).")

    # -- claims ---------------------------------------------------------------------------------------------
    def _take_claim(self, user: AuthSession) -> bool:
        """Claim the report for `user`; on refusal remember who holds it (read-only here)."""
        try:
            self.claim = self.claims.claim(self.study_uid, user)
        except ReportClaimedError as exc:
            self.claim, self.claimed_by = None, exc.holder
            return False
        except (LookupError, SessionExpiredError):
            return False
        self.claimed_by = None
        self._claim_renewed = dt.datetime.now(dt.UTC)
        return True

    def _lose_claim(self, holder: ClaimView) -> None:
        """Someone else holds the report now: stop editing, keep the typed text, say who."""
        self.claim, self.claimed_by = None, holder
        self._autosave.stop()
        self._set_editable(False)
        self._refresh_state()

    def _keep_claim(self, user: AuthSession) -> None:
        """Renew our claim well before it lapses; take it when the other reader's claim has gone."""
        if self._version is None or self._version.is_signed:
            return
        now = dt.datetime.now(dt.UTC)
        if self.claim is not None and now - self._claim_renewed < self.claims.ttl / 3:
            return
        if self.claimed_by is not None:
            holder = self.claims.holder(self.study_uid)
            if holder is not None and holder.user_id != user.user_id:
                self.claimed_by = holder
                return
        had_claim = self.claim is not None
        if self._take_claim(user):
            if not had_claim:  # it was someone else's: show what they left, editable now
                self._show_version(self.service.version(self._version.id))
        elif self.claimed_by is not None and had_claim:
            self._lose_claim(self.claimed_by)

    def release_claim(self) -> None:
        """Give the report back so others may edit it (closing the study or the app)."""
        if self.claim is not None:  # by the claim's own user: after a log-out the provider names another
            try:
                self.claims.release(self.claim)
            except Exception as exc:  # noqa: BLE001 - an unreachable database: the claim lapses by itself
                self._last_error = str(exc)
        self.claim = None

    def switch_study(self, study_uid: str, exam_type: str | None = None, *, background: bool = False) -> None:
        """Show another study's report in this same editor (building a new one costs a quarter second of
        GUI time); what was typed for the previous study is saved first. `background`: the new report is
        read off the GUI thread (see `_open`)."""
        if study_uid == self.study_uid:
            return
        self.save_now()
        self.release_claim()
        self.claimed_by, self.conflict = None, ""
        for timer in (self._autosave, self._retry, self._relabel):
            timer.stop()
        self._applied_seq = self._saver.next_seq()  # results of earlier saves no longer apply here
        self.study_uid = study_uid
        self.history.study_uid = study_uid
        self._exam_type = exam_type
        self._version, self._template, self._opened_for = None, None, ""
        self._dirty, self._save_again, self._retry_index, self._last_error = False, False, 0, ""
        for w in (self.recovery_banner, self.banner, self.save_problem):
            w.hide()
        self.saved_label.clear()
        self._open(background=background)

    def user_changed(self) -> None:
        """The main window's user logged in or out: refresh what is allowed (buttons, read-only)."""
        self._check_session()
        self._refresh_state()

    # -- saving ---------------------------------------------------------------------------------------------
    def _snapshot(self) -> tuple | None:
        user = self._user()
        if user is None:
            self._show_banner("warn", "Not logged in: your text is kept here and saved after you log in.")
            return None
        return (self._version.id if self._version is not None else None, self._template, self.sections(), user,
                self.study_uid)

    def _persist(self, payload: tuple) -> tuple[VersionView, int]:
        """Runs on the saver's thread: create the report on the first edit, then store the sections."""
        version_id, template, sections, user, study_uid = payload
        if version_id is None:
            created = self.service.open_or_create(study_uid, user, template=template)
            if created.revision > 0 or created.is_signed:  # someone else wrote this report meanwhile
                raise ReportConflictError(f"Not saved: {created.author or 'another reader'} started this report "
                                          "on another workstation while you were typing. Reload to see theirs; "
                                          "your text is kept here.")
            version_id, self._base_revision = created.id, created.revision
        revision = self.service.save_draft(version_id, sections, user, expected_revision=self._base_revision)
        self._base_revision = revision  # saves are serialised: the next one builds on this revision
        return self.service.version(version_id), revision

    def _save_in_background(self) -> None:
        self._autosave.stop()
        self._retry.stop()
        if not self._dirty or (self._version is not None and self._version.is_signed):
            return
        if self.conflict or self.claimed_by is not None:
            return
        if self._saver.busy:
            self._save_again = True
            return
        payload = self._snapshot()
        if payload is not None:
            self._saver.save_async(payload)

    def _on_background_saved(self, result: SaveResult) -> None:
        self._saver.job_done()
        if result.seq <= self._applied_seq:
            return  # a synchronous save after it already stored newer text
        self._applied_seq = result.seq
        if result.error is not None:
            self._save_failed(result.error)
            return
        self._apply_saved(result)
        if self._save_again:
            self._save_again = False
            self._save_in_background()

    def _apply_saved(self, result: SaveResult) -> None:
        version, revision = result.value
        saved_sections = result.payload[2]
        created = self._version is None
        was_review = self._version.needs_ai_review if self._version is not None else None
        self._version = version
        self._dirty = self.sections() != saved_sections
        if self._dirty and not self._autosave.isActive():
            self._autosave.start()
        self._retry_index = 0
        self._last_error = ""
        self.save_problem.hide()
        self.last_saved_at = dt.datetime.now()
        self.saved_label.setText(f"Saved {self.last_saved_at:%H:%M:%S}")
        if created:
            self.banner.hide()
            if (user := self._user()) is not None:
                self._take_claim(user)
            self.history.refresh()
            self._refresh_state()
            self.versionChanged.emit(version.id)
        elif was_review != version.needs_ai_review:
            self._refresh_state()
        else:
            self._refresh_sign_state()
        self.autosaved.emit(revision)

    def _save_failed(self, exc: BaseException) -> None:
        if isinstance(exc, ReportConflictError):
            self.conflict = str(exc)
            self._show_banner("warn", f"<b>{exc}</b>")
            return
        if isinstance(exc, ReportClaimedError):
            self._lose_claim(exc.holder)
            return
        if isinstance(exc, SessionExpiredError):
            self._set_editable(False)
            self._show_banner("warn", f"{exc}. Your text is kept here and saved after you log in again.")
            return
        if isinstance(exc, ImmutableVersionError | ReportError | ValueError):
            self._show_banner("warn", f"Could not save: {exc}")
            return
        delay = RETRY_DELAYS_S[min(self._retry_index, len(RETRY_DELAYS_S) - 1)]
        self._retry_index += 1
        self._last_error = _short_reason(exc)
        message = (f"Not saved yet: the database did not take the change ({self._last_error}). Retrying in "
                   f"{delay} s — your text stays here and nothing is lost.")
        self.save_problem_label.setText(message)
        self.save_problem.show()
        self._retry.start(delay * 1000)
        self.saveFailed.emit(message)

    # -- internals ------------------------------------------------------------------------------------------
    def _focused_editor(self) -> QPlainTextEdit:
        for e in self.editors.values():
            if e.hasFocus():
                return e
        return self.editors["findings"]

    def _on_text_changed(self) -> None:
        if self._loading:
            return
        self._dirty = True
        if not self._autosave.isActive():  # not restarted by further typing: saved within the interval
            self._autosave.start()
        self._relabel.start()
        self.recovery_banner.hide()
        self._refresh_sign_state()
        self.textChanged.emit()

    def _on_focus_in(self, edit: QObject) -> None:
        if isinstance(edit, QPlainTextEdit):
            self._last_focus = edit

    def _on_focus_out(self) -> None:
        if self._dirty:
            self._save_in_background()

    def _check_session(self) -> None:
        user = self._user()
        if self._opening or not self.study_uid:
            return  # the report is being read: the result decides (no study yet: nothing to check)
        if not self._opened_for and user is not None and not user.is_expired():
            self.banner.hide()
            self._open()  # opened before anyone logged in
            return
        if user is not None and not user.is_expired():
            try:
                self._keep_claim(user)
            except Exception as exc:  # noqa: BLE001 - the database may be unreachable for a moment
                self._last_error = str(exc)
            if self.claimed_by is not None:
                return
        editable_version = self._version is None or not self._version.is_signed
        if user is not None and user.is_expired() and self._opened_for and editable_version:
            if self._dirty:
                self.save_now()  # refused when expired; the text stays in the editor
            self._set_editable(False)
            self._show_banner("warn", "Session timed out: log in again to continue. Your text is kept.")
        elif user is not None and not user.is_expired() and self._opened_for and editable_version and \
                self.editors["findings"].isReadOnly():
            if self._version is not None:
                self._show_version(self._version, keep_text=True)
            else:
                self._set_editable(True)
                self._refresh_state()
            if self._dirty:
                self.save_now()

    def _set_editable(self, editable: bool, addendum_only: bool = False) -> None:
        for key, e in self.editors.items():
            e.setReadOnly(not editable or (addendum_only and key != "addendum"))

    def _show_version(self, v: VersionView, keep_text: bool = False, history: list | None = None) -> None:
        self._version = v
        if not keep_text:
            self._base_revision = v.revision
            self._loading = True
            try:
                for key, e in self.editors.items():
                    text = v.content.get(key)
                    if key == "addendum":
                        text = text[len(v.carried_addendum):]
                    e.setPlainText(text)
            finally:
                self._loading = False
            self._dirty = False
        addendum = v.kind == "addendum"
        self.editors["addendum"].setVisible(addendum or bool(v.content.get("addendum")))
        self._addendum_label.setVisible(self.editors["addendum"].isVisible())
        self._addendum_label.setText("New addendum" if addendum and v.carried_addendum else "Addendum")
        self.earlier_addenda.setText(f"<b>Earlier addenda (signed):</b><br>"
                                     f"{v.carried_addendum.strip().replace(chr(10), '<br>')}")
        self.earlier_addenda.setVisible(bool(v.carried_addendum.strip()))
        self._set_editable(not v.is_signed and self.claimed_by is None, addendum_only=addendum)
        self._template = next((t for t in self._templates if t.exam_type == v.exam_type), None)
        self._select_template_in_combo(self._template)
        self._refresh_state()
        self._update_findings()
        self.history.refresh(versions=history)
        self.versionChanged.emit(v.id)

    def _refresh_state(self) -> None:
        v = self._version
        user = self._user()
        logged_in = user is not None and not user.is_expired()
        if v is None:
            if not self._opened_for:
                self.status_label.setText("<b>NO REPORT OPEN</b>")
            else:
                tpl = self._template.title if self._template else "blank"
                self.status_label.setText(f"<b>NEW REPORT</b> · not saved yet · template “{tpl}”")
                self._show_banner("info", "Nothing is saved until you type, choose a field or accept something. "
                                          "F6: next [field] · Ctrl+Space: macro · Template box: switch template.")
        elif v.is_signed:
            kind = "" if v.kind == "original" else f" {v.kind}"
            who = v.signature.get("signer_name") or v.signer
            self.status_label.setText(f"<b>FINAL</b>{kind} · version {v.version_no} · signed by {who} "
                                      f"({v.signer}) on {format_datetime(v.signed_at)}")
        else:
            kind = "" if v.kind == "original" else f" {v.kind}"
            reason = f" · reason: {v.amend_reason}" if v.amend_reason else ""
            self.status_label.setText(f"<b>{v.status.upper()}</b>{kind} · version {v.version_no}{reason}")
        signed = v is not None and v.is_signed
        editable = self._opened_for and not signed and logged_in and self.claimed_by is None
        need_login = "Log in first (Account > Log in, Ctrl+L)"
        self.undo_button.setEnabled(bool(editable))
        self.redo_button.setEnabled(bool(editable))
        self.macros_button.setEnabled(bool(editable))
        self.defaults_button.setEnabled(bool(editable))
        self.template_combo.setEnabled(bool(editable) and (v is None or v.kind == "original"))
        self.template_combo.setToolTip(need_login if not logged_in else self.template_combo.toolTip())
        prelim_ok = bool(editable) and v is not None and v.status == "draft"
        self.prelim_button.setEnabled(prelim_ok)
        self.prelim_button.setToolTip(need_login if not logged_in else (
            "Type or accept something first" if v is None else "Hand the draft over for sign-off"))
        self._refresh_sign_state()
        for button, what in ((self.amend_button, "amend"), (self.addendum_button, "add an addendum to")):
            button.setEnabled(signed and logged_in and self.claimed_by is None)
            button.setToolTip(need_login if not logged_in else (
                f"Start a new version to {what} the signed report" if signed
                else f"Only a signed report can be {'amended' if what == 'amend' else 'given an addendum'}"))
        self.send_button.setEnabled(signed and logged_in)
        self.send_button.setToolTip(need_login if not logged_in else (
            "Queue the signed SR and PDF for a PACS" if signed else "Only a signed report can be sent"))
        self.export_button.setEnabled(v is not None and logged_in)
        self.export_button.setToolTip(need_login if not logged_in else (
            "Save the report as a file" if v is not None else "Nothing written yet"))
        ai_review = v is not None and v.needs_ai_review
        self.accept_button.setVisible(v is not None and v.ai_generated and not signed)
        self.accept_button.setEnabled(ai_review and logged_in)
        self.accept_button.setToolTip(need_login if not logged_in else "Confirm you reviewed the AI text as it stands")
        tint = f"QPlainTextEdit {{ background:{AI_TINT}; }}" if ai_review else ""
        for key in ("findings", "impression"):
            self.editors[key].setStyleSheet(tint)
        if v is not None:
            if self.claimed_by is not None:
                self._show_banner("warn", f"This report is <b>{self.claimed_by.describe()}</b>. It is read-only "
                                          "here and becomes editable when they close it or their claim lapses.")
            elif self.conflict:
                self._show_banner("warn", f"<b>{self.conflict}</b>")
            elif ai_review and v.ai_draft:
                ai = v.ai_draft
                self._show_banner("ai", f"<b>AI DRAFT — not reviewed.</b> Written by {ai.get('engine', '?')} "
                                        f"(weights {str(ai.get('weights_hash', ''))[:12]}, seed {ai.get('seed')}). "
                                        "Edit it or press “Accept AI draft” before signing.")
            elif v.ai_generated and not signed:
                how = "edited" if v.human_edited else "accepted"
                self._show_banner("ok", f"AI draft {how} by a person; see “AI draft vs current” for the changes.")
            elif signed:
                self._show_banner("ok", "Signed report: read-only. Use Amend or Addendum to change it.")
            elif self.banner.styleSheet() != BANNER_STYLES["warn"]:
                self.banner.hide()
        if not logged_in and self._opened_for:
            self._show_banner("warn", "Logged out or locked: the report is read-only until you log in. "
                                      "Your text is kept.")
        self._apply_uncertainty()
        self._update_diff()

    def _refresh_sign_state(self) -> None:
        """The Sign button says why it is disabled: logged out, role, AI review, fields, nothing written."""
        v = self._version
        user = self._user()
        reason = ""
        if user is None or user.is_expired():
            reason = "Log in first (Account > Log in, Ctrl+L)"
        elif v is not None and v.is_signed:
            reason = "Already signed: use Amend or Addendum"
        elif not user.can_sign:
            reason = f"{user.username} is a {user.role}: only a radiologist signs; mark it preliminary instead"
        elif v is None and not self._dirty:
            reason = "Nothing written yet: type, choose the [fields] or accept something first"
        elif v is not None and v.needs_ai_review:
            reason = "Review the AI draft (edit or accept) before signing"
        else:
            reason = describe_unfilled(self.sections())
        self.sign_button.setEnabled(not reason)
        self.sign_button.setToolTip(reason or "Sign this version with your key")

    def sign_disabled_reason(self) -> str:
        return "" if self.sign_button.isEnabled() else self.sign_button.toolTip()

    def _show_banner(self, style: str, html: str) -> None:
        self.banner.setStyleSheet(BANNER_STYLES[style])
        self.banner.setText(html)
        self.banner.show()

    def uncertain_threshold(self) -> float:
        """The 'uncertain_word_threshold' setting (uncertainty = 1 - confidence at or above which text is shaded)."""
        try:
            value = float(self.settings.get("uncertain_word_threshold", UNCERTAIN_WORD_THRESHOLD))
        except (TypeError, ValueError):
            return UNCERTAIN_WORD_THRESHOLD
        return value if 0.0 <= value <= 1.0 else UNCERTAIN_WORD_THRESHOLD

    def _apply_uncertainty(self) -> None:
        """Underline tokens the engine was unsure of while the AI text is unreviewed."""
        v = self._version
        spans = (v.ai_draft or {}).get("token_uncertainty") if v is not None and v.needs_ai_review else None
        for key in ("findings", "impression"):
            self.editors[key].setExtraSelections([])
        self._uncertain_spans = {}
        self.uncertain_legend.hide()
        if not spans:
            return
        threshold = self.uncertain_threshold()
        self.uncertain_legend.setText(uncertain_legend_html(threshold))
        fmt = QTextCharFormat()
        fmt.setBackground(QColor(UNCERTAIN_SHADE))
        fmt.setUnderlineStyle(QTextCharFormat.UnderlineStyle.DotLine)
        fmt.setUnderlineColor(QColor(UNCERTAIN_LINE))
        for key in ("findings", "impression"):
            edit = self.editors[key]
            text = edit.toPlainText()
            selections, pos = [], 0
            for item in spans:
                token, score, section = _uncertainty_item(item)
                if section not in (None, key) or not token or score < threshold:
                    continue
                i = text.find(token, pos)
                if i < 0:
                    continue
                pos = i + len(token)
                sel = QTextEdit.ExtraSelection()
                cur = edit.textCursor()
                cur.setPosition(i)
                cur.setPosition(i + len(token), QTextCursor.MoveMode.KeepAnchor)
                sel.cursor, sel.format = cur, fmt
                selections.append(sel)
                self._uncertain_spans.setdefault(key, []).append((i, i + len(token), score))
            edit.setExtraSelections(selections)
        self.uncertain_legend.setVisible(bool(self._uncertain_spans))

    def _update_diff(self) -> None:
        v = self._version
        if v is None or not v.ai_draft:
            self.diff_view.setHtml("<i>No AI draft for this report.</i>")
            return
        html, stats = sections_diff_html(v.ai_draft, self.sections())
        head = (f"<p><b>{stats.inserted_words}</b> words added, <b>{stats.deleted_words}</b> removed, "
                f"{stats.unchanged_words} kept from the AI draft.</p>")
        self.diff_view.setHtml(head + html)

    def _update_findings(self) -> None:
        # unfilled [fields] are choices, not statements: blanked (same length, so mention offsets hold)
        text_f = blank_fields(self.editors["findings"].toPlainText())
        text_i = blank_fields(self.editors["impression"].toPlainText())
        joined = text_f + "\n" + text_i
        result = _label_findings(joined)
        self.findings_list.clear()
        self._findings = result.findings if result is not None else {}
        if result is None:
            self.findings_list.addItem("Labeler not available")
            return
        mentions: dict[str, tuple[int, int]] = {}
        for sent in result.sentences:
            for m in sent.mentions:
                mentions.setdefault(m.finding, (m.start, m.end))
        for finding, value in result.findings.items():
            item = QListWidgetItem(f"{finding} — {FINDING_VALUE_TEXT.get(value, value)}")
            colour = FINDING_VALUE_COLOUR.get(value, "#333")
            if finding in HEALTHY_FINDINGS:
                colour = FINDING_VALUE_COLOUR[0] if value == 1 else "#333"
            item.setForeground(QColor(colour))
            item.setData(Qt.ItemDataRole.UserRole, (finding, value, mentions.get(finding)))
            self.findings_list.addItem(item)
        self._update_diff()

    def structured_findings(self) -> dict[str, int]:
        """The labeler's findings for the current text (1 present, 0 absent, -1 uncertain)."""
        self._update_findings()
        return dict(self._findings)

    def _select_mention(self, item: QListWidgetItem) -> None:
        data = item.data(Qt.ItemDataRole.UserRole)
        if not data or not data[2]:
            return
        start, end = data[2]
        n = len(self.editors["findings"].toPlainText()) + 1
        key, offset = ("findings", 0) if start < n else ("impression", n)
        edit = self.editors[key]
        cur = edit.textCursor()
        cur.setPosition(start - offset)
        cur.setPosition(end - offset, QTextCursor.MoveMode.KeepAnchor)
        edit.setTextCursor(cur)
        edit.setFocus()

    # -- lifecycle ------------------------------------------------------------------------------------------
    def hideEvent(self, event) -> None:  # noqa: N802 - Qt override
        if self._dirty:
            self._save_in_background()
        super().hideEvent(event)

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt override
        self.save_now()
        self.release_claim()
        super().closeEvent(event)

    def shutdown(self) -> None:
        """Save what is left and stop the saver thread (the main window calls this before deleting)."""
        self.save_now()
        self._session_check.stop()
        self._open_runner.wait_idle()  # a report still being read from the database
        self._saver.shutdown()


def _uncertainty_item(item: Any) -> tuple[str, float, str | None]:
    """Accept {"token", "score"/"uncertainty", "section"} dicts or (token, score) pairs."""
    if isinstance(item, dict):
        token = str(item.get("token", item.get("text", "")))
        score = item.get("score", item.get("uncertainty", item.get("entropy", 0.0)))
        return token.strip(), float(score or 0.0), item.get("section")
    if isinstance(item, list | tuple) and len(item) >= 2:
        return str(item[0]).strip(), float(item[1] or 0.0), None
    return "", 0.0, None
