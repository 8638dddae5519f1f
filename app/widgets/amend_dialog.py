"""Asks why a signed report is being amended; the reason is required and is signed with the amendment."""

from __future__ import annotations

from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QLineEdit, QVBoxLayout, QWidget

from app.widgets.dialog_buttons import action_buttons


class AmendReasonDialog(QDialog):
    """Enter confirms once a reason is typed; Escape cancels."""

    def __init__(self, version_no: int, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Amend signed report")
        intro = QLabel(f"Version {version_no} is signed and stays as it is. The amendment is a new version that "
                       "carries every section, addendum and the AI disclosure forward; the reason is shown "
                       "with it and covered by your signature.")
        intro.setWordWrap(True)
        self.reason = QLineEdit()
        self.reason.setPlaceholderText("e.g. wrong side in the impression; finding missed on first read")
        self.reason.setMaxLength(500)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.ok_button = action_buttons(buttons, "Start amendment")
        self.ok_button.setEnabled(False)
        buttons.accepted.connect(self._accept_if_reason)
        buttons.rejected.connect(self.reject)
        self.reason.textChanged.connect(lambda t: self.ok_button.setEnabled(bool(t.strip())))
        lay = QVBoxLayout(self)
        lay.addWidget(intro)
        lay.addWidget(QLabel("Reason for the amendment (required):"))
        lay.addWidget(self.reason)
        lay.addWidget(buttons)
        self.resize(520, 180)
        self.reason.setFocus()

    def _accept_if_reason(self) -> None:
        if self.reason.text().strip():
            self.accept()

    def text(self) -> str:
        return self.reason.text().strip()
