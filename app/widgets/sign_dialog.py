"""Sign-off: shows what will be signed, re-asks the password, signs off the GUI thread.

Signing checks the password (argon2id), unlocks the PKCS#12 key (with its own password when the user chose one,
or the token PIN), signs, and renders + signs the documents: seconds, so it runs in a background job while the
dialog shows progress.
"""

from __future__ import annotations

from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from app.reports.service import ReportService, StudyIdentity, VersionView
from app.reports.users import AuthSession
from app.widgets.dialog_buttons import action_buttons
from viewer.widgets.background import BackgroundRunner, Job


def _pn(name: str) -> str:
    parts = name.split("^")
    return " ".join(p for p in (parts[1:2] + parts[:1]) if p) if "^" in name else name


class SignDialog(QDialog):
    def __init__(self, service: ReportService, version: VersionView, user: AuthSession, identity: StudyIdentity,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Sign report")
        self.service, self.version, self.user = service, version, user
        self.signed_version: VersionView | None = None
        self._runner = BackgroundRunner(self)
        self._thread: Job | None = None

        info = QFormLayout()
        info.addRow("Patient:", QLabel(f"{_pn(identity.patient_name)} ({identity.patient_id})"))
        info.addRow("Study:", QLabel(f"{identity.study_description or '-'} · {identity.study_date} · "
                                     f"accession {identity.accession or '-'}"))
        kind = "" if version.kind == "original" else f" ({version.kind})"
        info.addRow("Report:", QLabel(f"version {version.version_no}{kind}, {version.status}"))
        info.addRow("Signer:", QLabel(f"{user.display_name} ({user.username})"))
        if version.ai_generated:
            state = "edited" if version.human_edited else ("accepted" if version.ai_accepted else "NOT reviewed")
            info.addRow("AI draft:", QLabel(f"{(version.ai_draft or {}).get('engine', '?')} — {state}"))

        self.preview = QTextBrowser()
        self.preview.setPlainText(version.content.as_text())
        self.preview.setMinimumHeight(170)
        warning = QLabel("Signing makes this version final and read-only. Later changes become an amendment "
                         "or addendum that references it.")
        warning.setWordWrap(True)
        warning.setStyleSheet("color:#7a4b00;")
        self.password = QLineEdit()
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        self.password.setPlaceholderText("Your password")
        # a key file with its own password (cert create/import --key-password) or a token PIN that differs
        # from the account password; empty: the account password unlocks the key
        self.key_password = QLineEdit()
        self.key_password.setEchoMode(QLineEdit.EchoMode.Password)
        self.key_password.setPlaceholderText("Only if your key has its own password or PIN")
        self.error = QLabel()
        self.error.setStyleSheet("color:#b3261e;")
        self.error.setWordWrap(True)
        self.error.hide()
        self.progress = QProgressBar()
        self.progress.setRange(0, 0)
        self.progress.setFormat("Signing…")
        self.progress.hide()
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.sign_button = action_buttons(self.buttons, "Sign")
        self.buttons.accepted.connect(self.start_signing)
        self.buttons.rejected.connect(self.reject)

        lay = QVBoxLayout(self)
        lay.addLayout(info)
        lay.addWidget(self.preview, 1)
        lay.addWidget(warning)
        lay.addWidget(QLabel("Re-enter your password to sign:"))
        lay.addWidget(self.password)
        lay.addWidget(QLabel("Key password or token PIN (optional):"))
        lay.addWidget(self.key_password)
        lay.addWidget(self.error)
        lay.addWidget(self.progress)
        lay.addWidget(self.buttons)
        self.resize(560, 520)
        self.password.setFocus()

    def start_signing(self) -> None:
        if self._thread is not None:
            return
        if not self.password.text():
            self._show_error("Enter your password.")
            return
        self.error.hide()
        self.progress.show()
        self.sign_button.setEnabled(False)
        self.password.setEnabled(False)
        self.key_password.setEnabled(False)
        service, version_id, user = self.service, self.version.id, self.user
        password, key_password = self.password.text(), self.key_password.text() or None
        self._thread = self._runner.start(
            lambda _job: service.sign(version_id, user, password, key_password=key_password),
            on_done=self._on_done, on_error=self._on_failed)

    def _on_done(self, version: VersionView) -> None:
        self._finish_thread()
        self.signed_version = version
        self.accept()

    def _on_failed(self, exc: BaseException) -> None:  # every failure is shown to the user in the dialog
        message = str(exc) or type(exc).__name__
        self._finish_thread()
        self.password.clear()
        self.key_password.clear()
        self._show_error(message)

    def _finish_thread(self) -> None:
        self._thread = None
        self.progress.hide()
        self.sign_button.setEnabled(True)
        self.password.setEnabled(True)
        self.key_password.setEnabled(True)

    def _show_error(self, message: str) -> None:
        self.error.setText(message)
        self.error.show()
        self.password.setFocus()

    def reject(self) -> None:
        if self._thread is not None:  # never abandon a signature half-way; it finishes in a second
            self._runner.wait()
        super().reject()
