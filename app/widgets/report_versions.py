"""A report's versions: a readable list, any version opened read-only, and any two compared word by word."""

from __future__ import annotations

import html

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from app.formatting import format_datetime
from app.reports.content import ALL_SECTION_KEYS, SECTION_TITLES
from app.reports.diff import diff_html
from app.reports.service import ReportService, VersionView

VERSION_ROLE = Qt.ItemDataRole.UserRole + 7


def version_label(v: VersionView) -> str:
    kind = "" if v.kind == "original" else f" {v.kind}"
    if v.is_signed:
        who = v.signature.get("signer_name") or v.signer
        state = f"FINAL, signed {format_datetime(v.signed_at)} by {who}"
    else:
        when = format_datetime(v.updated_at) if v.updated_at else ""
        state = f"{v.status}, last saved {when}" if when else v.status
    reason = f" — reason: {v.amend_reason}" if v.amend_reason else ""
    return f"Version {v.version_no}{kind}: {state}{reason}"


def version_list_text(v: VersionView) -> str:
    """The same facts as `version_label` on short lines for the narrow Versions tab (about 170 px beside the
    report at the side panel's usual width): version, state, when, who, reason, each on its own line (one long
    sentence wrapped at any word was hard to scan). The full sentence is the item's tooltip."""
    kind = "" if v.kind == "original" else f" {v.kind}"
    if v.is_signed:
        who = v.signature.get("signer_name") or v.signer
        lines = [f"Version {v.version_no}{kind}", "FINAL", f"signed {format_datetime(v.signed_at)}", f"by {who}"]
    else:
        when = format_datetime(v.updated_at) if v.updated_at else ""
        lines = [f"Version {v.version_no}{kind}", v.status.upper()] + ([f"saved {when}"] if when else [])
    if v.amend_reason:
        lines.append(f"reason: {v.amend_reason}")
    return "\n".join(lines)


def disclosure(v: VersionView) -> str:
    """The AI line every export prints, so the reader sees it here too."""
    if not v.ai_generated:
        return ""
    state = "edited" if v.human_edited else ("accepted" if v.ai_accepted else "not yet reviewed")
    return f"Drafted with AI assistance ({(v.ai_draft or {}).get('engine', '?')}); draft {state} by a radiologist."


class VersionDialog(QDialog):
    """One version, read-only, as it was saved or signed."""

    def __init__(self, version: VersionView, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.version = version
        self.setWindowTitle(f"Report version {version.version_no} (read-only)")
        head = QLabel(f"<b>{html.escape(version_label(version))}</b>")
        head.setWordWrap(True)
        self.text = QTextBrowser()
        self.text.setObjectName("versionText")
        parts = []
        for key in ALL_SECTION_KEYS:
            body = version.content.get(key)
            if body.strip():
                parts.append(f"<h4 style='margin:6px 0 2px 0'>{SECTION_TITLES[key]}</h4>"
                             f"<div>{html.escape(body).replace(chr(10), '<br>')}</div>")
        if note := disclosure(version):
            parts.append(f"<p style='color:#5a3b00'><i>{html.escape(note)}</i></p>")
        self.text.setHtml("".join(parts) or "<i>(empty)</i>")
        _close_only_layout(self, head, self.text, (620, 560))


def _close_only_layout(dialog: QDialog, head: QWidget, body: QWidget, size: tuple[int, int]) -> None:
    """A read-only dialog: heading, body and a Close button that Enter and Escape both press."""
    buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
    buttons.rejected.connect(dialog.reject)
    buttons.button(QDialogButtonBox.StandardButton.Close).setDefault(True)
    lay = QVBoxLayout(dialog)
    lay.addWidget(head)
    lay.addWidget(body, 1)
    lay.addWidget(buttons)
    dialog.resize(*size)


class CompareDialog(QDialog):
    """Two versions side by side as one word-level diff per section (struck red: removed, green: added)."""

    def __init__(self, older: VersionView, newer: VersionView, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        if (older.version_no, older.id) > (newer.version_no, newer.id):
            older, newer = newer, older
        self.older, self.newer = older, newer
        self.setWindowTitle(f"Compare report version {older.version_no} with version {newer.version_no}")
        head = QLabel(f"From <b>{html.escape(version_label(older))}</b><br>to <b>{html.escape(version_label(newer))}</b>")
        head.setWordWrap(True)
        self.text = QTextBrowser()
        self.text.setObjectName("compareText")
        parts, changed = [], 0
        for key in ALL_SECTION_KEYS:
            a, b = older.content.get(key), newer.content.get(key)
            if not a.strip() and not b.strip():
                continue
            body, stats = diff_html(a, b)
            changed += stats.changed
            mark = "" if stats.changed else " <span style='color:#666'>(unchanged)</span>"
            parts.append(f"<h4 style='margin:6px 0 2px 0'>{SECTION_TITLES[key]}{mark}</h4><div>{body}</div>")
        summary = f"<p>{changed} section{'s' if changed != 1 else ''} changed.</p>"
        self.text.setHtml(summary + "".join(parts))
        self.changed_sections = changed
        _close_only_layout(self, head, self.text, (680, 600))


class VersionHistory(QWidget):
    """The Versions tab: double-click or Enter opens a version; select two and Compare."""

    def __init__(self, service: ReportService, study_uid: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.service, self.study_uid = service, study_uid
        self.list = QListWidget()
        self.list.setObjectName("versionList")
        self.list.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.list.setWordWrap(True)  # only a long reason still wraps: the other lines are short
        self.list.setAlternatingRowColors(True)  # where one version's lines end and the next begin
        self.list.setSpacing(2)
        self.list.itemActivated.connect(lambda item: self.open_version(item.data(VERSION_ROLE)))
        self.list.itemSelectionChanged.connect(self._selection_changed)
        self.open_button = QPushButton("Open")
        self.open_button.setToolTip("Show the selected version read-only (Enter or double-click)")
        self.open_button.clicked.connect(self._open_selected)
        self.compare_button = QPushButton("Compare")
        self.compare_button.setToolTip("Select two versions (Ctrl+click) to see what changed; with one "
                                       "selected, compares it with the version before it")
        self.compare_button.clicked.connect(self.compare_selected)
        self.dialog: QDialog | None = None
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(self.open_button)
        row.addWidget(self.compare_button)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.list, 1)
        lay.addLayout(row)
        self._versions: list[VersionView] = []
        self._selection_changed()

    def refresh(self, versions: list[VersionView] | None = None) -> None:
        """Read the study's versions again; `versions`: already read (off the GUI thread) by the caller."""
        self._versions = self.service.history(self.study_uid) if versions is None else list(versions)
        self.list.clear()
        for v in reversed(self._versions):  # newest first
            item = QListWidgetItem(version_list_text(v))
            item.setToolTip(version_label(v))
            item.setData(VERSION_ROLE, v.id)
            self.list.addItem(item)
        self._selection_changed()

    def count(self) -> int:
        return self.list.count()

    def _selected_ids(self) -> list[int]:
        return [i.data(VERSION_ROLE) for i in self.list.selectedItems()]

    def _selection_changed(self) -> None:
        n = len(self._selected_ids())
        self.open_button.setEnabled(n == 1)
        self.compare_button.setEnabled(n == 2 or (n == 1 and len(self._versions) > 1))

    def _open_selected(self) -> None:
        ids = self._selected_ids()
        if len(ids) == 1:
            self.open_version(ids[0])

    def open_version(self, version_id: int) -> VersionDialog:
        self.dialog = VersionDialog(self.service.version(version_id), self)
        self.dialog.open()
        return self.dialog

    def compare_selected(self) -> CompareDialog | None:
        ids = self._selected_ids()
        if len(ids) == 1:
            by_id = {v.id: v for v in self._versions}
            v = by_id[ids[0]]
            earlier = [w for w in self._versions if w.version_no < v.version_no]
            if not earlier:
                return None
            ids = [earlier[-1].id, v.id]
        if len(ids) != 2:
            return None
        return self.compare(ids[0], ids[1])

    def compare(self, a_id: int, b_id: int) -> CompareDialog:
        self.dialog = CompareDialog(self.service.version(a_id), self.service.version(b_id), self)
        self.dialog.open()
        return self.dialog
