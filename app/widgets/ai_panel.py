"""The AI panel: Draft button (Ctrl+Shift+D), optional auto-draft on open, the job list with a progress
bar and Cancel per job, one bar for batch pre-drafts, which images were read, and the engine status
(device, model, memory) for the status bar. All work happens in the worker process; this only listens.
"""

from __future__ import annotations

import html
from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QColor, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QCheckBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.ai.drafting import DraftService
from app.ai.engine_client import EngineClient
from app.ai.scope import overridden, scope_line
from app.ai.status_text import format_status
from app.ai.study_images import StudyImage
from app.settings import Settings
from app.settings_schema import BY_KEY
from app.widgets.report_editor import AI_TINT
from engines.backends.results import JobResult, OutOfScope, Refused

DRAFT_SHORTCUT = "Ctrl+Shift+D"
MAX_ROWS = 30
STATUS_POLL_MS = 5000
STATED_UNCERTAIN = "#8a5a00"  # amber: stated firmer than the reading behind it (red is a disagreement)
UNSURE_SETTING = "uncertain_word_threshold"  # as the report editor's shading: uncertainty (1 - confidence) at or
#                                            above the setting (default chosen against the image labels)  # memory figures in the status bar stay current while the worker runs


class JobRow(QWidget):
    """One job: what it is, its progress (steps done / total) and a Cancel button while it runs."""

    def __init__(self, job_id: str, label: str, on_cancel: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.job_id = job_id
        self.label = QLabel(label)
        self.bar = QProgressBar()
        self.bar.setRange(0, 0)  # busy until the first progress report
        self.bar.setFormat("queued")
        self.bar.setTextVisible(True)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop this job")
        self.cancel_button.clicked.connect(lambda: on_cancel(job_id))
        self.state = "queued"
        top = QHBoxLayout()
        top.setContentsMargins(0, 0, 0, 0)
        top.addWidget(self.label, 1)
        top.addWidget(self.cancel_button)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 2, 4, 2)
        lay.addLayout(top)
        lay.addWidget(self.bar)

    def set_progress(self, done: int, total: int) -> None:
        self.state = "running"
        self.bar.setRange(0, max(total, 1))
        self.bar.setValue(min(done, total))
        self.bar.setFormat("step %v / %m")

    def started(self) -> None:
        self.state = "running"
        self.bar.setFormat("starting...")

    def end(self, state: str, text: str) -> None:
        self.state = state
        self.cancel_button.setEnabled(False)
        self.cancel_button.hide()
        if self.bar.maximum() == 0:
            self.bar.setRange(0, 1)
        if state == "done":
            self.bar.setValue(self.bar.maximum())
        self.bar.setFormat(text)
        self.bar.setToolTip(text)


def reading_html(reading: dict[str, Any], disagreements: list[dict[str, Any]] | None = None,
                 stated_uncertain: list[dict[str, Any]] | None = None) -> str:
    """The engine's reading as a small table (finding, calibrated probability, training prevalence, answer),
    findings the draft disagrees with first and marked red, then those it states although the reading is
    uncertain (amber)."""
    if not reading:
        return ""
    against = {d["finding"]: d for d in disagreements or []}
    firmer = {u["finding"]: u for u in stated_uncertain or []}
    rows = []
    order = sorted(reading, key=lambda f: (f not in against, f not in firmer, -float(reading[f].get("probability", 0))))
    for f in order:
        r = reading[f]
        prev = r.get("prevalence")
        mark = " style='color:#b00020'" if f in against else f" style='color:{STATED_UNCERTAIN}'" if f in firmer else ""
        cal = "" if r.get("calibrated") else "*"
        rows.append(f"<tr{mark}><td>{html.escape(f)}</td><td align='right'>{float(r['probability']):.0%}{cal}</td>"
                    f"<td align='right'>{'' if prev is None else f'{float(prev):.0%}'}</td>"
                    f"<td>{html.escape(str(r.get('answer', '')))}</td></tr>")
    note = "".join(f"<p style='color:#b00020'>Disagreement: {html.escape(d['sentence'])}.</p>"
                   for d in disagreements or [])
    note += stated_uncertain_note(stated_uncertain or [])
    uncal = any(not r.get("calibrated") for r in reading.values())
    foot = "<p style='color:#666'>* not calibrated: a raw model score, not a probability.</p>" if uncal else ""
    return (note + "<table cellspacing='0' cellpadding='2'><tr><th align='left'>Engine's reading</th>"
            "<th>probability</th><th>usual</th><th>answer</th></tr>" + "".join(rows) + "</table>" + foot)


def stated_uncertain_note(stated_uncertain: list[dict[str, Any]]) -> str:
    """One amber paragraph for the findings the draft states firmer than the reading (which answers
    "uncertain"): what it states present, then what it denies, each with the reading's probability. One line per
    finding filled the panel with near-identical sentences where the reader answers "uncertain" for most findings
    (its "no" is held to a 10% miss rate)."""
    if not stated_uncertain:
        return ""
    parts = []
    for state, verb in (("present", "states"), ("absent", "denies")):
        items = [f"{html.escape(u['finding'].lower())} ({float(u['probability']):.0%})"
                 for u in stated_uncertain if u.get("text_state") == state]
        if items:
            parts.append(f"{verb} {', '.join(items)}")
    return (f"<p style='color:{STATED_UNCERTAIN}'>Stated although the reading is uncertain: the draft "
            f"{'; it '.join(parts)}.</p>")


class AiPanel(QWidget):
    """draftReady(study_uid, draft) goes to ReportEditor.load_ai_draft; statusText(str) to the status bar.
    A study the input gate puts out of scope gets no draft: the reason shows with "Draft anyway...", which
    asks for confirmation (`confirm_override`, replaceable in tests) and is audited under `user_provider()`."""

    draftReady = Signal(str, object)
    statusText = Signal(str)

    def __init__(self, client: EngineClient, drafts: DraftService, settings: Settings | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.client, self.drafts, self.settings = client, drafts, settings
        self.user_provider: Any = lambda: None  # the main window sets it: () -> AuthSession | None
        self.confirm_override: Any = self._confirm_override
        self.study_uid = ""
        self.images: list[StudyImage] = []
        self.rows: dict[str, JobRow] = {}
        self._items: dict[str, QListWidgetItem] = {}

        self.draft_button = QPushButton("Draft report")
        self.draft_button.setToolTip(f"Draft Findings and Impression for the open study ({DRAFT_SHORTCUT})")
        self.draft_button.setEnabled(False)
        self.draft_button.clicked.connect(self.draft_current)
        self.shortcut = QShortcut(QKeySequence(DRAFT_SHORTCUT), self)
        self.shortcut.setContext(Qt.ShortcutContext.WindowShortcut)
        self.shortcut.activated.connect(self.draft_current)
        self.auto_draft = QCheckBox("Auto-draft on open")
        self.auto_draft.setChecked(bool(settings.get("auto_draft_on_open", False)) if settings else False)
        self.auto_draft.toggled.connect(self._auto_draft_toggled)
        self.stored_label = QLabel("")  # a draft made earlier (a batch pre-draft): loaded only on request
        self.stored_label.setWordWrap(True)
        self.load_stored_button = QPushButton("Load stored draft")
        self.load_stored_button.setToolTip("Put the AI draft stored for this study into the report")
        self.load_stored_button.clicked.connect(self.load_stored_draft)
        self._stored: dict[str, Any] | None = None
        for w in (self.stored_label, self.load_stored_button):
            w.hide()
        self.images_label = QLabel("No study open")
        self.images_label.setWordWrap(True)
        self.message = QLabel("")
        self.message.setWordWrap(True)
        self.message.setStyleSheet("color: #b00020")
        self.scope_label = QLabel("")
        self.scope_label.setWordWrap(True)
        self.scope_label.setObjectName("scopeLabel")
        self.override_button = QPushButton("Draft anyway\u2026")
        self.override_button.setToolTip("Draft although the engine was not trained on images like these "
                                        "(recorded in the audit log)")
        self.override_button.clicked.connect(self.draft_anyway)
        self.override_button.hide()
        self.reading_view = QLabel("")
        self.reading_view.setWordWrap(True)
        self.reading_view.setTextFormat(Qt.TextFormat.RichText)
        self.batch_label = QLabel("")
        self.batch_bar = QProgressBar()
        self.batch_cancel = QPushButton("Cancel batch")
        self.batch_cancel.clicked.connect(self.drafts.cancel_batch)
        for w in (self.batch_label, self.batch_bar, self.batch_cancel):
            w.hide()
        self.sentence_label = QLabel("")
        self.sentence_list = QListWidget()  # a sentence draft's sentences: confidence, where each came from
        self.sentence_list.setWordWrap(True)
        self.sentence_list.setSelectionMode(QListWidget.SelectionMode.NoSelection)
        for w in (self.sentence_label, self.sentence_list):
            w.hide()
        self.job_list = QListWidget()
        self.job_list.setSelectionMode(QListWidget.SelectionMode.NoSelection)
        self.status_label = QLabel(format_status(client.last_status))
        self.status_label.setWordWrap(True)
        self.status_label.setStyleSheet("color: #555")

        head = QHBoxLayout()
        head.addWidget(self.draft_button)
        head.addWidget(self.auto_draft)
        head.addStretch(1)
        batch = QHBoxLayout()
        batch.addWidget(self.batch_bar, 1)
        batch.addWidget(self.batch_cancel)
        lay = QVBoxLayout(self)
        lay.addLayout(head)
        lay.addWidget(self.images_label)
        stored = QHBoxLayout()
        stored.addWidget(self.stored_label, 1)
        stored.addWidget(self.load_stored_button)
        lay.addLayout(stored)
        lay.addWidget(self.message)
        lay.addWidget(self.scope_label)
        lay.addWidget(self.override_button)
        lay.addWidget(self.reading_view)
        lay.addWidget(self.batch_label)
        lay.addLayout(batch)
        lay.addWidget(self.sentence_label)
        lay.addWidget(self.sentence_list, 2)
        lay.addWidget(QLabel("Jobs"))
        lay.addWidget(self.job_list, 1)
        lay.addWidget(self.status_label)

        client.jobQueued.connect(self._on_queued)
        client.jobStarted.connect(self._on_started)
        client.progress.connect(self._on_progress)
        # bound methods, not lambdas: Qt disconnects them when this panel goes, the client may live on
        client.finished.connect(self._on_finished)
        client.failed.connect(self._on_failed)
        client.cancelled.connect(self._on_cancelled)
        client.status.connect(self._on_status)
        self._poll = QTimer(self)
        self._poll.setInterval(STATUS_POLL_MS)
        self._poll.timeout.connect(lambda: self.client.worker_pid and self.client.request_status())
        self._poll.start()
        drafts.draftReady.connect(self._on_draft)
        drafts.draftFailed.connect(self._on_draft_failed)
        drafts.draftOutOfScope.connect(self._on_out_of_scope)
        drafts.batchProgress.connect(self._on_batch_progress)
        drafts.batchFinished.connect(self._on_batch_finished)

    # -- study and actions ----------------------------------------------------------------------------
    def set_study(self, study_uid: str, images: list[StudyImage], stored_rows: list | None = None) -> None:
        """The viewer opened a study; auto-draft it when that option is on. `stored_rows`: the study's stored
        drafts (`ai_store.drafts_for`) when the caller read them off the GUI thread; None reads them here."""
        self.study_uid, self.images = study_uid, list(images)
        self.draft_button.setEnabled(bool(study_uid and images))
        n = len(self.images)
        self.images_label.setText(f"{n} image{'s' if n != 1 else ''} in this study: "
                                  + ", ".join(im.name for im in self.images) if n else "This study has no image")
        self.message.clear()
        self._clear_scope()
        self._show_stored(stored_rows)
        if self.auto_draft.isChecked() and self.images and self._stored is None:
            self.draft_current()

    def _show_stored(self, rows: list | None = None) -> None:
        """Offer the newest draft stored for this study (pre-drafted in a batch, or drafted earlier)."""
        from app.ai.ai_store import drafts_for, stored_draft_for_report

        if rows is None:
            rows = drafts_for(self.drafts.db, self.study_uid) if self.drafts.db is not None and self.study_uid else []
        self._stored = stored_draft_for_report(rows[0]) if rows else None
        if self._stored is not None:
            prov = self._stored["provenance"]
            self.stored_label.setText(f"AI draft stored {prov['created'].replace('T', ' ')[:16]} by "
                                      f"{prov['engine'] or 'the engine'}" + (f" ({len(rows)} in all)" if len(rows) > 1 else ""))
        for w in (self.stored_label, self.load_stored_button):
            w.setVisible(self._stored is not None)

    def load_stored_draft(self) -> bool:
        """Hand the stored draft to the report (as a fresh draft would be); False when there is none."""
        if self._stored is None:
            return False
        self.images_label.setText(self._stored["images_note"])
        self.draftReady.emit(self.study_uid, dict(self._stored))
        return True

    def draft_current(self, override: bool = False) -> str:
        """Draft the open study; returns the job id ("" when there is nothing to draft). `override` drafts
        although the input gate put the study out of scope."""
        if not self.study_uid or not self.images:
            self.message.setText("Open a study with an image to draft a report.")
            return ""
        self.message.clear()
        self._clear_scope()
        user = self.user_provider()
        return self.drafts.draft(self.study_uid, self.images, override=override,
                                 username=getattr(user, "username", "") or "")

    def draft_anyway(self) -> str:
        """After the user confirms: draft past the input gate (audited). "" when they did not confirm."""
        if not self.study_uid or not self.confirm_override():
            return ""
        return self.draft_current(override=True)

    def _confirm_override(self) -> bool:
        from PySide6.QtWidgets import QMessageBox

        answer = QMessageBox.warning(
            self, "Outside the engine's scope",
            f"{self.scope_label.text()}\n\nThe engine was not trained on images like these; a draft may be "
            "meaningless. Draft anyway? This is recorded in the audit log under your name.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, QMessageBox.StandardButton.No)
        return answer == QMessageBox.StandardButton.Yes

    def _clear_scope(self) -> None:
        self.scope_label.clear()
        self.scope_label.setStyleSheet("")
        self.override_button.hide()
        self.reading_view.clear()

    def _on_out_of_scope(self, study_uid: str, scope: dict[str, Any]) -> None:
        if study_uid != self.study_uid:
            return
        self.scope_label.setText(f"No draft. {scope_line(scope) or 'Out of scope.'}")
        self.scope_label.setStyleSheet("color:#8a4b00; font-weight:bold;")
        self.override_button.show()

    def pre_draft(self, studies: list[tuple[str, list[StudyImage]]]) -> list[str]:
        """Batch pre-draft from the worklist (one progress bar)."""
        jobs = self.drafts.draft_batch(studies)
        if jobs:
            self.batch_label.setText(f"Pre-drafting {len(jobs)} studies")
            for w in (self.batch_label, self.batch_bar, self.batch_cancel):
                w.show()
        return jobs

    # -- events ---------------------------------------------------------------------------------------
    def _auto_draft_toggled(self, on: bool) -> None:
        if self.settings is not None:
            self.settings.set("auto_draft_on_open", bool(on))
            try:
                self.settings.save()
            except OSError as exc:
                self.message.setText(f"Could not save the setting: {exc}")

    def _on_queued(self, job_id: str, kind: str, label: str) -> None:
        row = JobRow(job_id, label, self.client.cancel)
        item = QListWidgetItem()
        item.setSizeHint(row.sizeHint())
        self.job_list.insertItem(0, item)
        self.job_list.setItemWidget(item, row)
        self.rows[job_id], self._items[job_id] = row, item
        self._trim()

    def _on_started(self, job_id: str) -> None:
        if job_id in self.rows:
            self.rows[job_id].started()

    def _on_progress(self, job_id: str, done: int, total: int) -> None:
        if job_id in self.rows:
            self.rows[job_id].set_progress(done, total)

    def _on_finished(self, job_id: str, result: JobResult | dict[str, Any]) -> None:
        self._end(job_id, "done", _done_text(result))

    def _on_cancelled(self, job_id: str) -> None:
        self._end(job_id, "cancelled", "cancelled")

    def _on_failed(self, job_id: str, message: str) -> None:
        self._end(job_id, "failed", "failed")
        if job_id in self.rows:
            self.rows[job_id].bar.setToolTip(message)
        self.message.setText(message)

    def _end(self, job_id: str, state: str, text: str) -> None:
        if job_id in self.rows:
            self.rows[job_id].end(state, text)

    def _on_status(self, status: dict[str, Any]) -> None:
        text = format_status(status)
        self.status_label.setText(text)
        self.statusText.emit(text)

    def _on_draft(self, study_uid: str, draft: dict[str, Any]) -> None:
        if study_uid == self.study_uid:
            note = draft.get("images_note", "")
            told = draft.get("told_findings")
            if told is not None:  # say what the text was steered to, so a radiologist knows what to check
                note += f"\nWritten to the finding head's reading: {', '.join(told) or 'nothing present'}."
            self.images_label.setText(note)
            self.show_sentences(draft.get("sentences"), draft.get("reading"))
            scope = draft.get("scope")
            self.scope_label.setText(scope_line(scope))
            self.scope_label.setStyleSheet("color:#8a4b00; font-weight:bold;" if overridden(scope) else "")
            self.reading_view.setText(reading_html(draft.get("reading") or {}, draft.get("disagreements"),
                                                   draft.get("stated_uncertain")))
        self.draftReady.emit(study_uid, draft)

    def unsure_threshold(self) -> float:
        """The uncertainty at which a sentence is tinted: the report editor's setting (its default without one)."""
        default = float(BY_KEY[UNSURE_SETTING].default)
        try:
            value = float(self.settings.get(UNSURE_SETTING, default)) if self.settings is not None else default
        except (TypeError, ValueError):
            return default
        return value if 0.0 <= value <= 1.0 else default

    def show_sentences(self, sentences: list[dict[str, Any]] | None,
                       reading: dict[str, Any] | None = None) -> None:
        """List a sentence draft's sentences with how sure the reading is of each; unsure ones are tinted as in
        the report editor (uncertainty at or above its setting), ones no reader judged say so, and ones that state (present or
        absent) a finding the reading answers "uncertain" say "stated although the reading is uncertain"."""
        self.sentence_list.clear()
        visible = bool(sentences)
        for w in (self.sentence_label, self.sentence_list):
            w.setVisible(visible)
        if not sentences:
            return
        self.sentence_label.setText(f"Chosen sentences ({len(sentences)}): confidence, and the report each came from")
        for s in sentences:
            conf = s.get("confidence")
            source = ", ".join((s.get("sources") or [])[:2]) or "?"
            shown = "not read" if conf is None else f"{float(conf):.2f}"
            held = [f for f, v in (s.get("states") or {}).items()
                    if v in (0, 1) and str((reading or {}).get(f, {}).get("answer")) == "uncertain"]
            caveat = ("  \u2014 stated although the reading is uncertain: " + ", ".join(
                f"{f.lower()} {float(reading[f]['probability']):.0%}" for f in held)) if held else ""
            item = QListWidgetItem(f"[{shown}] {s.get('text', '')}  ({s.get('section', '')}; from {source}){caveat}")
            item.setToolTip(f"slot: {s.get('slot')}; engine log-probability per token {s.get('engine_logp', 0):.2f}; "
                            f"{s.get('candidates', 0)} candidates; states {s.get('states')}")
            if held:
                item.setForeground(QColor(STATED_UNCERTAIN))
            if conf is not None and 1 - float(conf) >= self.unsure_threshold():
                item.setBackground(QColor(AI_TINT))
                item.setData(Qt.ItemDataRole.UserRole, "unsure")
            elif held:
                item.setData(Qt.ItemDataRole.UserRole, "stated-uncertain")
            self.sentence_list.addItem(item)

    def _on_draft_failed(self, study_uid: str, message: str) -> None:
        if study_uid == self.study_uid and message != "cancelled":
            self.message.setText(f"Draft failed: {message}")

    def _on_batch_progress(self, value: int, maximum: int) -> None:
        self.batch_bar.setRange(0, maximum)
        self.batch_bar.setValue(value)

    def _on_batch_finished(self, drafted: int, failed: int) -> None:
        gated = min(self.drafts.last_batch_out_of_scope, failed)
        text = f"Pre-draft finished: {drafted} drafted"
        if gated:
            text += f", {gated} out of scope (not drafted)"
        if failed - gated:
            text += f", {failed - gated} failed or cancelled"
        self.batch_label.setText(text)
        self.batch_bar.hide()
        self.batch_cancel.hide()

    def _trim(self) -> None:
        while self.job_list.count() > MAX_ROWS:
            item = self.job_list.item(self.job_list.count() - 1)
            row = self.job_list.itemWidget(item)
            if isinstance(row, JobRow) and row.state in ("queued", "running"):
                break
            self.job_list.takeItem(self.job_list.count() - 1)
            if isinstance(row, JobRow):
                self.rows.pop(row.job_id, None)
                self._items.pop(row.job_id, None)


def _done_text(result: JobResult | dict[str, Any]) -> str:
    """A finished job's row text: typed results for the engine's jobs, the extra kinds' own dicts as they are."""
    if isinstance(result, OutOfScope):
        return "out of scope"
    if isinstance(result, Refused):
        return "refused"
    elapsed = result.get("elapsed_s") if isinstance(result, dict) else getattr(result, "elapsed_s", None)
    return f"done in {float(elapsed):.1f} s" if elapsed is not None else "done"
