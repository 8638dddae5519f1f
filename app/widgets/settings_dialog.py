"""File > Settings: every setting in settings.json on a page of its kind, checked before anything is saved.

Built from app/settings_schema.py. A bad value is named in words and nothing is written; keys the
application remembers by itself (layouts, last user) are listed read-only; unknown keys (from a newer
version) are kept untouched.
"""

from __future__ import annotations

import json
from typing import Any

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QTabWidget,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from app.settings import Settings
from app.settings_schema import BY_KEY, SPECS, SettingSpec, engine_choices, validate_all
from app.widgets.dialog_buttons import action_buttons

PAGES = ("Reading", "AI engine", "Security", "PACS")


class SettingsDialog(QDialog):
    def __init__(self, settings: Settings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.settings = settings
        self.editors: dict[str, QWidget] = {}
        self.changed_keys: list[str] = []
        self.tabs = QTabWidget()
        forms: dict[str, QFormLayout] = {}
        for page in PAGES:
            w = QWidget()
            forms[page] = QFormLayout(w)
            self.tabs.addTab(w, page)
        for spec in SPECS:
            if spec.internal:
                continue
            editor = self._editor(spec, settings.get(spec.key, spec.default))
            self.editors[spec.key] = editor
            label = QLabel(spec.label + (" *" if spec.restart else ""))
            if spec.help:
                label.setToolTip(spec.help)
                editor.setToolTip(spec.help)
            forms[spec.page].addRow(label, self._with_browse(spec, editor))
        forms["PACS"].addRow(self._pacs_button())
        self.tabs.addTab(self._remembered_page(), "Remembered")
        note = QLabel("* takes effect after RadStation is restarted. Hover over a setting for what it does.")
        note.setStyleSheet("color:#666;")
        self.problems = QLabel()
        self.problems.setObjectName("settingsProblems")
        self.problems.setStyleSheet("color:#b3261e;")
        self.problems.setWordWrap(True)
        self.problems.hide()
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.save_button = action_buttons(buttons, "Save")
        buttons.accepted.connect(self.save)
        buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addWidget(self.tabs, 1)
        lay.addWidget(note)
        lay.addWidget(self.problems)
        lay.addWidget(buttons)
        self.resize(720, 560)

    # -- widgets ------------------------------------------------------------------------------------------
    def _editor(self, spec: SettingSpec, value: Any) -> QWidget:
        if spec.kind == "bool":
            w = QCheckBox()
            w.setChecked(bool(value))
            return w
        if spec.kind == "int":
            w = QSpinBox()
            w.setRange(int(spec.minimum or 0), int(spec.maximum or 10**6))
            w.setValue(int(value) if isinstance(value, int | float) else int(spec.default))
            return w
        if spec.kind == "float":
            w = QDoubleSpinBox()
            w.setDecimals(2 if (spec.maximum or 10**6) <= 1 else 1)  # a 0-1 score needs two places
            w.setRange(float(spec.minimum or 0), float(spec.maximum or 10**6))
            w.setValue(float(value) if isinstance(value, int | float) else float(spec.default))
            return w
        if spec.kind == "choice":
            w = QComboBox()
            choices = spec.choices or engine_choices()
            w.addItems(list(choices))
            w.setEditable(not spec.choices)  # an engine plug-in not listed can still be named
            w.setCurrentText(str(value))
            return w
        if spec.kind == "json":
            w = QPlainTextEdit(json.dumps(value, indent=1))
            w.setFixedHeight(70)
            return w
        return QLineEdit(str(value or ""))

    def _with_browse(self, spec: SettingSpec, editor: QWidget) -> QWidget:
        if spec.kind not in ("path", "dir"):
            return editor
        box = QWidget()
        box.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)
        row = QHBoxLayout(box)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(editor, 1)
        browse = QPushButton("Browse…")
        browse.setAutoDefault(False)

        def pick() -> None:
            if spec.kind == "dir":
                chosen = QFileDialog.getExistingDirectory(self, spec.label, editor.text())
            else:
                chosen, _ = QFileDialog.getOpenFileName(self, spec.label, editor.text())
            if chosen:
                editor.setText(chosen)

        browse.clicked.connect(pick)
        row.addWidget(browse)
        return box

    def _pacs_button(self) -> QPushButton:
        button = QPushButton("PACS nodes and Storage SCP…")
        button.setAutoDefault(False)

        def edit() -> None:
            from app.widgets.pacs_nodes import PacsNodesDialog

            PacsNodesDialog(self.settings, self).exec()

        button.clicked.connect(edit)
        return button

    def _remembered_page(self) -> QWidget:
        text = QTextBrowser()
        rows = []
        for spec in SPECS:
            if spec.internal:
                value = self.settings.get(spec.key, spec.default)
                shown = json.dumps(value)[:120] if value not in ("", [], {}, None) else "(none)"
                rows.append(f"<tr><td><b>{spec.label}</b></td><td>{shown}</td><td>{spec.help}</td></tr>")
        known = set(BY_KEY) | {"pacs_prefetch"}
        other = sorted(k for k in self.settings._values if k not in known)
        extra = (f"<p>Other keys, kept as they are: {', '.join(other)}</p>" if other else "")
        text.setHtml("<p>Kept by RadStation itself (change them where the last column says):</p>"
                     f"<table cellpadding='3'>{''.join(rows)}</table>{extra}")
        return text

    # -- values -------------------------------------------------------------------------------------------
    def values(self) -> tuple[dict[str, Any], list[str]]:
        """What the form holds, plus problems with text that is not even JSON."""
        out: dict[str, Any] = {}
        problems = []
        for key, w in self.editors.items():
            spec = BY_KEY[key]
            if isinstance(w, QCheckBox):
                out[key] = w.isChecked()
            elif isinstance(w, QSpinBox):
                out[key] = int(w.value())
            elif isinstance(w, QDoubleSpinBox):
                out[key] = float(w.value())
            elif isinstance(w, QComboBox):
                out[key] = w.currentText().strip()
            elif isinstance(w, QPlainTextEdit):
                try:
                    out[key] = json.loads(w.toPlainText() or "null")
                except json.JSONDecodeError as exc:
                    problems.append(f"{spec.label}: not valid JSON ({exc.msg} at line {exc.lineno})")
            else:
                out[key] = w.text().strip()
        return out, problems

    def save(self) -> bool:
        values, problems = self.values()
        problems += validate_all(values)
        if problems:
            self.problems.setText("Not saved:\n• " + "\n• ".join(problems))
            self.problems.show()
            return False
        self.changed_keys = [k for k, v in values.items() if self.settings.get(k, BY_KEY[k].default) != v]
        for k in self.changed_keys:
            self.settings.set(k, values[k])
        try:
            self.settings.save()
        except OSError as exc:
            self.problems.setText(f"Could not write {self.settings.path}: {exc}")
            self.problems.show()
            return False
        self.accept()
        return True

    def restart_note(self) -> str:
        need = [BY_KEY[k].label for k in self.changed_keys if BY_KEY[k].restart]
        return f"Restart RadStation for: {', '.join(need)}." if need else ""
