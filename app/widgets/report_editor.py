"""The report editor: five sections, autosave within a second, AI-draft marking, diff, findings list.

Embedding (main window):
    editor = ReportEditor(database, study_uid, user_provider)   # user_provider() -> AuthSession | None
    editor.load_ai_draft(findings, impression, provenance, token_uncertainty)
    editor.signed.connect(on_signed)                             # version id of the new signed version

Every edit is written to the database at most `autosave_ms` (default 1000) after it happened (the timer is
not restarted by further typing, so continuous typing still saves every second), and on focus-out, hide
and close. Reopening a study whose draft was autosaved shows a "recovered draft" banner.

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
from PySide6.QtGui import QColor, QGuiApplication, QKeySequence, QShortcut, QTextCharFormat, QTextCursor
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QTabWidget,
    QTextBrowser,
    QTextEdit,
    QVBoxLayout,
    QWidget,
)

from app.reports.claims import ClaimService, ClaimView, ReportClaimedError
from app.reports.content import SECTION_KEYS, SECTION_TITLES, ReportContent
from app.reports.diff import sections_diff_html
from app.reports.exporting import FORMATS, export_version
from app.reports.models import ImmutableVersionError
from app.reports.service import ReportConflictError, ReportError, ReportService, VersionView
from app.reports.users import AuthSession, SessionExpiredError, UserService

AI_TINT = "#fff4d6"
BANNER_STYLES = {
    "ai": "background:#ffe8b3;color:#5a3b00;border:1px solid #e0b050;padding:6px;border-radius:4px;",
    "ok": "background:#e3f1e3;color:#174d17;border:1px solid #9cc89c;padding:6px;border-radius:4px;",
    "warn": "background:#fde2e2;color:#7a1111;border:1px solid #e09a9a;padding:6px;border-radius:4px;",
    "info": "background:#e6eef9;color:#1b3a66;border:1px solid #a8c0e4;padding:6px;border-radius:4px;",
}
FINDING_VALUE_TEXT = {1: "present", 0: "absent", -1: "uncertain"}
FINDING_VALUE_COLOUR = {1: "#b3261e", 0: "#2e7d32", -1: "#b26a00"}
SECTION_HEIGHTS = {"indication": 54, "technique": 54, "comparison": 46}
# Uncertain words: only those the engine was this unsure of (uncertainty = 1 - token confidence), shaded
# lavender with a dotted underline - never the red wave of a spell-checker.
UNCERTAIN_WORD_THRESHOLD = 0.8
UNCERTAIN_SHADE, UNCERTAIN_LINE = "#ece3ff", "#6a3fb5"


def _label_findings(text: str) -> Any | None:
    """The labeler's result for `text`, or None when the labeler is not available."""
    try:
        from engines.labeler import label_report
    except ImportError:
        return None
    return label_report(text)


class _FocusOutFilter(QObject):
    def __init__(self, callback: Callable[[], None]) -> None:
        super().__init__()
        self.callback = callback

    def eventFilter(self, _obj: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt override
        if event.type() == QEvent.Type.FocusOut:
            self.callback()
        return False


class _UncertainTips(QObject):
    """Tooltips over an editor's uncertain words: the engine's confidence for the word under the mouse."""

    def __init__(self, editor: QPlainTextEdit, spans: Callable[[], list[tuple[int, int, float]]]) -> None:
        super().__init__(editor)
        self.editor, self.spans = editor, spans

    def eventFilter(self, _obj: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt override
        if event.type() != QEvent.Type.ToolTip:
            return False
        pos = self.editor.cursorForPosition(event.pos()).position()
        for start, end, score in self.spans():
            if start <= pos <= end:
                from PySide6.QtWidgets import QToolTip

                QToolTip.showText(event.globalPos(), uncertain_tip(score), self.editor)
                return True
        from PySide6.QtWidgets import QToolTip

        QToolTip.hideText()
        return True


def uncertain_tip(score: float) -> str:
    return (f"The engine was unsure of this word: confidence {1 - score:.0%} (uncertainty {score:.2f}; words "
            f"above {UNCERTAIN_WORD_THRESHOLD:.2f} are marked)")


class ReportEditor(QWidget):
    textChanged = Signal()
    signed = Signal(int)
    autosaved = Signal(int)  # revision number, emitted after the database committed it
    versionChanged = Signal(int)
    queuedForSending = Signal(list)  # outbox item ids

    def __init__(self, database, study_uid: str, user_provider: Callable[[], AuthSession | None],
                 parent: QWidget | None = None, *, autosave_ms: int = 1000, service: ReportService | None = None,
                 exam_type: str | None = None, claims: ClaimService | None = None) -> None:
        super().__init__(parent)
        self.database = database
        self.study_uid = study_uid
        self.user_provider = user_provider
        self.service = service or ReportService(database, UserService.from_settings(database))
        self.claims = claims or ClaimService(database)
        self.claim: ClaimView | None = None  # our claim on the report while we may edit it
        self.claimed_by: ClaimView | None = None  # someone else's live claim: read-only here
        self.conflict = ""  # set when a save was refused because the stored text moved on
        self._claim_renewed = dt.datetime.min.replace(tzinfo=dt.UTC)
        self._version: VersionView | None = None
        self._loading = False
        self._dirty = False
        self._last_error = ""
        self.last_saved_at: dt.datetime | None = None

        self._autosave = QTimer(self)
        self._autosave.setSingleShot(True)
        self._autosave.setInterval(max(10, min(int(autosave_ms), 1000)))
        self._autosave.timeout.connect(self.save_now)
        self._relabel = QTimer(self)
        self._relabel.setSingleShot(True)
        self._relabel.setInterval(250)
        self._relabel.timeout.connect(self._update_findings)
        self._session_check = QTimer(self)
        self._session_check.setInterval(5000)
        self._session_check.timeout.connect(self._check_session)
        self._session_check.start()

        self._build_ui()
        self._open(exam_type)

    # -- construction ---------------------------------------------------------------------------------------
    def _build_ui(self) -> None:
        self.status_label = QLabel()
        self.status_label.setObjectName("reportStatus")
        self.saved_label = QLabel()
        self.saved_label.setStyleSheet("color:#666;")
        self.undo_button = QPushButton("Undo")
        self.redo_button = QPushButton("Redo")
        self.accept_button = QPushButton("Accept AI draft")
        self.accept_button.setToolTip("Confirm you reviewed the AI text as it stands")
        self.prelim_button = QPushButton("Mark preliminary")
        self.sign_button = QPushButton("Sign…")
        self.sign_button.setStyleSheet("font-weight:bold;")
        self.amend_button = QPushButton("Amend")
        self.addendum_button = QPushButton("Addendum")
        self.export_button = QPushButton("Export")
        export_menu = QMenu(self.export_button)
        for fmt, (label, _suffix) in FORMATS.items():
            export_menu.addAction(label, lambda f=fmt: self.export_dialog(f))
        self.export_button.setMenu(export_menu)
        self.send_button = QPushButton("Send to PACS…")
        self.send_button.clicked.connect(self.send_dialog)
        for b, slot in ((self.undo_button, self.undo), (self.redo_button, self.redo),
                        (self.accept_button, self.accept_ai), (self.prelim_button, self.mark_preliminary),
                        (self.sign_button, self.open_sign_dialog), (self.amend_button, lambda: self.amend("amendment")),
                        (self.addendum_button, lambda: self.amend("addendum"))):
            b.clicked.connect(slot)
        # Two rows so the editor fits beside the viewer in a docked pane.
        top = QVBoxLayout()
        first, second = QHBoxLayout(), QHBoxLayout()
        first.addWidget(self.status_label, 1)
        first.addWidget(self.saved_label)
        for b in (self.undo_button, self.redo_button, self.accept_button, self.prelim_button, self.sign_button):
            first.addWidget(b)
        second.addStretch(1)
        for b in (self.amend_button, self.addendum_button, self.export_button, self.send_button):
            second.addWidget(b)
        top.addLayout(first)
        top.addLayout(second)

        self.banner = QLabel()
        self.banner.setWordWrap(True)
        self.banner.hide()
        self.recovery_banner = QLabel()
        self.recovery_banner.setWordWrap(True)
        self.recovery_banner.setStyleSheet(BANNER_STYLES["info"])
        self.recovery_banner.hide()

        self.editors: dict[str, QPlainTextEdit] = {}
        self._focus_filter = _FocusOutFilter(self._on_focus_out)
        self._uncertain_spans: dict[str, list[tuple[int, int, float]]] = {}
        self._tips: list[_UncertainTips] = []
        self.uncertain_legend = QLabel(
            f"<span style='background:{UNCERTAIN_SHADE};border-bottom:1px dotted {UNCERTAIN_LINE}'>&nbsp;shaded"
            f"&nbsp;</span> words: the engine was unsure of them (confidence below "
            f"{1 - UNCERTAIN_WORD_THRESHOLD:.0%}); hover for the score.")
        self.uncertain_legend.setStyleSheet("color:#444")
        self.uncertain_legend.hide()
        form = QVBoxLayout()
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
            tips = _UncertainTips(edit, lambda k=key: self._uncertain_spans.get(k, []))
            edit.viewport().installEventFilter(tips)
            self._tips.append(tips)
            self.editors[key] = edit
            form.addWidget(label)
            form.addWidget(edit, 3 if key == "findings" else (2 if key in ("impression", "addendum") else 0))
            if key == "addendum":
                self._addendum_label = label
        left = QWidget()
        left.setLayout(form)

        self.findings_list = QListWidget()
        self.findings_list.itemActivated.connect(self._select_mention)
        self.findings_list.itemClicked.connect(self._select_mention)
        self.diff_view = QTextBrowser()
        self.history_list = QListWidget()
        self.tabs = QTabWidget()
        self.tabs.addTab(self.findings_list, "Findings")
        self.tabs.addTab(self.diff_view, "AI draft vs current")
        self.tabs.addTab(self.history_list, "Versions")
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
        lay.addWidget(split, 1)
        QShortcut(QKeySequence.StandardKey.Undo, self, self.undo)
        QShortcut(QKeySequence.StandardKey.Redo, self, self.redo)
        QShortcut(QKeySequence.StandardKey.Save, self, self.save_now)

    def _user(self) -> AuthSession | None:
        return self.user_provider()

    def _open(self, exam_type: str | None) -> None:
        user = self._user()
        if user is None:
            self._show_banner("warn", "Log in to open or write the report.")
            self._set_editable(False)
            return
        try:
            v = self.service.open_or_create(self.study_uid, user, exam_type=exam_type)
        except (ReportError, SessionExpiredError) as exc:
            self._show_banner("warn", str(exc))
            self._set_editable(False)
            return
        if not v.is_signed:
            self._take_claim(user)
        if not v.is_signed and v.revision > 0 and v.updated_at is not None and self.claimed_by is None:
            when = v.updated_at if v.updated_at.tzinfo else v.updated_at.replace(tzinfo=dt.UTC)
            self.recovery_banner.setText(
                f"Recovered draft: version {v.version_no}, autosaved {when.astimezone():%d %b %H:%M:%S} "
                f"(revision {v.revision}). Nothing typed was lost — continue editing, or undo to go back.")
            self.recovery_banner.show()
        self._show_version(v)

    # -- public API ---------------------------------------------------------------------------------------
    @property
    def version(self) -> VersionView | None:
        return self._version

    def sections(self) -> dict[str, str]:
        data = {k: self.editors[k].toPlainText() for k in SECTION_KEYS}
        if self._version is not None and self._version.kind == "addendum":
            data["addendum"] = self.editors["addendum"].toPlainText()
        return data

    def current_text(self) -> str:
        return ReportContent(self.sections()).as_text()

    def load_ai_draft(self, findings: str, impression: str, provenance: dict, token_uncertainty: list | None = None
                      ) -> None:
        """Put an AI draft into findings/impression; marked as AI text until a person edits or accepts it.
        The replaced text stays on the undo stack."""
        user = self._user()
        if self._version is None or user is None:
            raise ReportError("no open report (log in first)")
        if self._version.is_signed:
            raise ImmutableVersionError("the report is signed; start an amendment before loading a new draft")
        self.save_now()
        v = self.service.load_ai_draft(self._version.id, findings, impression, provenance, user, token_uncertainty)
        self._loading = True
        try:
            for key in ("findings", "impression"):
                cur = self.editors[key].textCursor()
                cur.beginEditBlock()
                cur.select(QTextCursor.SelectionType.Document)
                cur.insertText(v.content.get(key))
                cur.endEditBlock()
        finally:
            self._loading = False
        self._version = v
        self._refresh_state()
        self._update_findings()
        self.textChanged.emit()  # the text on screen changed: explanations of the old text are stale

    def save_now(self) -> bool:
        """Write pending edits now; True when nothing is left unsaved."""
        self._autosave.stop()
        if not self._dirty or self._version is None or self._version.is_signed:
            return not self._dirty
        user = self._user()
        if user is None:
            self._show_banner("warn", "Not logged in: your text is kept here and saved after you log in.")
            return False
        if self.conflict:  # refused once already: never retried over the newer stored text
            return False
        sections = self.sections()
        try:
            revision = self.service.save_draft(self._version.id, sections, user,
                                               expected_revision=self._version.revision)
        except SessionExpiredError as exc:
            self._set_editable(False)
            self._show_banner("warn", f"{exc}. Your text is kept here and saved after you log in again.")
            return False
        except ReportConflictError as exc:
            self.conflict = str(exc)
            self._show_banner("warn", f"<b>{exc}</b>")
            return False
        except ReportClaimedError as exc:
            self._lose_claim(exc.holder)
            return False
        except (ImmutableVersionError, ReportError, ValueError) as exc:
            self._show_banner("warn", f"Could not save: {exc}")
            return False
        except Exception as exc:  # noqa: BLE001 - a database error must not lose the text: retry later
            self._last_error = str(exc)
            self._show_banner("warn", f"Saving failed ({exc}); retrying. Your text is kept.")
            self._autosave.start()
            return False
        self._dirty = False
        was_review = self._version.needs_ai_review
        self._version = self.service.version(self._version.id)
        self.last_saved_at = dt.datetime.now()
        self.saved_label.setText(f"Saved {self.last_saved_at:%H:%M:%S}")
        if was_review != self._version.needs_ai_review:
            self._refresh_state()
        self.autosaved.emit(revision)
        return True

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
        if self._version is None or user is None:
            return
        self.save_now()
        try:
            self.service.mark_preliminary(self._version.id, user)
        except (ReportError, SessionExpiredError) as exc:
            self._show_banner("warn", str(exc))
            return
        self._show_version(self.service.version(self._version.id))

    def amend(self, kind: str) -> None:
        user = self._user()
        if self._version is None or user is None:
            return
        if not self._take_claim(user) and self.claimed_by is not None:
            self._refresh_state()
            return
        try:
            v = self.service.amend(self._version.id, user, kind)
        except (ReportError, SessionExpiredError) as exc:
            self._show_banner("warn", str(exc))
            return
        self._show_version(v)

    def open_sign_dialog(self) -> None:
        from app.widgets.sign_dialog import SignDialog

        user = self._user()
        if self._version is None or user is None:
            return
        if not user.can_sign:
            QMessageBox.information(self, "Sign report", f"{user.username} is a {user.role}; only a radiologist "
                                    "may sign. Mark the report preliminary for sign-off instead.")
            return
        if not self.save_now() and self._dirty:
            return
        dialog = SignDialog(self.service, self.service.version(self._version.id), user,
                            self.service.identity(self.study_uid), self)
        if dialog.exec() and dialog.signed_version is not None:
            self._show_version(dialog.signed_version)
            self.signed.emit(dialog.signed_version.id)

    def export_dialog(self, fmt: str) -> None:
        """Ask for a file name and write the current version in `fmt` (signed formats need a signed version)."""
        if self._version is None:
            return
        label, suffix = FORMATS[fmt]
        self.save_now()
        default = f"report_{self._version.report_id}_v{self._version.version_no}{suffix}"
        path, _ = QFileDialog.getSaveFileName(self, f"Export {label}", default, f"{label} (*{suffix})")
        if path:
            self.export_to(fmt, Path(path))

    def export_to(self, fmt: str, path: Path) -> Path | None:
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
            names = [n.name for n in NodeStore().load()]
        except PacsConfigError as exc:
            self._show_banner("warn", str(exc))
            return
        if not names:
            self._show_banner("warn", "No PACS is configured (Settings → PACS nodes).")
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
        self.textChanged.emit()

    def _on_focus_out(self) -> None:
        if self._dirty:
            self.save_now()

    def _check_session(self) -> None:
        user = self._user()
        if self._version is None and user is not None and not user.is_expired():
            self.banner.hide()
            self._open(None)  # opened before anyone logged in
            return
        if user is not None and not user.is_expired():
            try:
                self._keep_claim(user)
            except Exception as exc:  # noqa: BLE001 - the database may be unreachable for a moment
                self._last_error = str(exc)
            if self.claimed_by is not None:
                return
        if user is not None and user.is_expired() and self._version is not None and not self._version.is_signed:
            self.save_now()  # refused when expired; the text stays in the editor
            self._set_editable(False)
            self._show_banner("warn", "Session timed out: log in again to continue. Your text is kept.")
        elif user is not None and not user.is_expired() and self._version is not None and \
                not self._version.is_signed and self.editors["findings"].isReadOnly():
            self._show_version(self._version, keep_text=True)
            if self._dirty:
                self.save_now()

    def _set_editable(self, editable: bool, addendum_only: bool = False) -> None:
        for key, e in self.editors.items():
            e.setReadOnly(not editable or (addendum_only and key != "addendum"))

    def _show_version(self, v: VersionView, keep_text: bool = False) -> None:
        self._version = v
        if not keep_text:
            self._loading = True
            try:
                for key, e in self.editors.items():
                    e.setPlainText(v.content.get(key))
            finally:
                self._loading = False
            self._dirty = False
        addendum = v.kind == "addendum"
        self.editors["addendum"].setVisible(addendum or bool(v.content.get("addendum")))
        self._addendum_label.setVisible(self.editors["addendum"].isVisible())
        self._set_editable(not v.is_signed and self.claimed_by is None, addendum_only=addendum)
        self._refresh_state()
        self._update_findings()
        self._update_history()
        self.versionChanged.emit(v.id)

    def _refresh_state(self) -> None:
        v = self._version
        if v is None:
            return
        user = self._user()
        kind = "" if v.kind == "original" else f" {v.kind}"
        if v.is_signed:
            when = dt.datetime.fromisoformat(v.signed_at).astimezone().strftime("%d %b %Y %H:%M")
            who = v.signature.get("signer_name") or v.signer
            text = f"<b>FINAL</b>{kind} · version {v.version_no} · signed by {who} ({v.signer}) on {when}"
        else:
            text = f"<b>{v.status.upper()}</b>{kind} · version {v.version_no}"
        self.status_label.setText(text)
        editable = not v.is_signed and self.claimed_by is None
        self.undo_button.setEnabled(editable)
        self.redo_button.setEnabled(editable)
        self.prelim_button.setEnabled(editable and v.status == "draft")
        self.sign_button.setEnabled(editable and user is not None and user.can_sign and not v.needs_ai_review)
        self.sign_button.setToolTip("Review the AI draft (edit or accept) before signing" if v.needs_ai_review
                                    else "Sign this version with your key")
        self.amend_button.setEnabled(v.is_signed and self.claimed_by is None)
        self.addendum_button.setEnabled(v.is_signed and self.claimed_by is None)
        self.send_button.setEnabled(v.is_signed)
        self.accept_button.setVisible(v.ai_generated and not v.is_signed)
        self.accept_button.setEnabled(v.needs_ai_review)
        tint = f"QPlainTextEdit {{ background:{AI_TINT}; }}" if v.needs_ai_review else ""
        for key in ("findings", "impression"):
            self.editors[key].setStyleSheet(tint)
        if self.claimed_by is not None:
            self._show_banner("warn", f"This report is <b>{self.claimed_by.describe()}</b>. It is read-only "
                                      "here and becomes editable when they close it or their claim lapses.")
        elif self.conflict:
            self._show_banner("warn", f"<b>{self.conflict}</b>")
        elif v.needs_ai_review and v.ai_draft:
            ai = v.ai_draft
            self._show_banner("ai", f"<b>AI DRAFT — not reviewed.</b> Written by {ai.get('engine', '?')} "
                                    f"(weights {str(ai.get('weights_hash', ''))[:12]}, seed {ai.get('seed')}). "
                                    "Edit it or press “Accept AI draft” before signing.")
        elif v.ai_generated and not v.is_signed:
            how = "edited" if v.human_edited else "accepted"
            self._show_banner("ok", f"AI draft {how} by a person; see “AI draft vs current” for the changes.")
        elif v.is_signed:
            self._show_banner("ok", "Signed report: read-only. Use Amend or Addendum to change it.")
        else:
            self.banner.hide()
        self._apply_uncertainty()
        self._update_diff()

    def _show_banner(self, style: str, html: str) -> None:
        self.banner.setStyleSheet(BANNER_STYLES[style])
        self.banner.setText(html)
        self.banner.show()

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
                if section not in (None, key) or not token or score < UNCERTAIN_WORD_THRESHOLD:
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
        text_f = self.editors["findings"].toPlainText()
        text_i = self.editors["impression"].toPlainText()
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
            item.setForeground(QColor(FINDING_VALUE_COLOUR.get(value, "#333")))
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

    def _update_history(self) -> None:
        self.history_list.clear()
        for h in self.service.history(self.study_uid):
            who = f"signed by {h.signer} {h.signed_at}" if h.is_signed else f"{h.status}, rev {h.revision}"
            self.history_list.addItem(f"v{h.version_no} {h.kind}: {who}")

    # -- lifecycle ------------------------------------------------------------------------------------------
    def hideEvent(self, event) -> None:  # noqa: N802 - Qt override
        self.save_now()
        super().hideEvent(event)

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt override
        self.save_now()
        self.release_claim()
        super().closeEvent(event)

    def release_claim(self) -> None:
        """Give the report back so others may edit it (closing the study or the app)."""
        if self.claim is not None:  # by the claim's own user: after a log-out the provider names another
            try:
                self.claims.release(self.claim)
            except Exception as exc:  # noqa: BLE001 - an unreachable database: the claim lapses by itself
                self._last_error = str(exc)
        self.claim = None


def _uncertainty_item(item: Any) -> tuple[str, float, str | None]:
    """Accept {"token", "score"/"uncertainty", "section"} dicts or (token, score) pairs."""
    if isinstance(item, dict):
        token = str(item.get("token", item.get("text", "")))
        score = item.get("score", item.get("uncertainty", item.get("entropy", 0.0)))
        return token.strip(), float(score or 0.0), item.get("section")
    if isinstance(item, list | tuple) and len(item) >= 2:
        return str(item[0]).strip(), float(item[1] or 0.0), None
    return "", 0.0, None
