"""Log-in dialog: user name + password against the local accounts (lock-out rules apply)."""

from __future__ import annotations

from PySide6.QtWidgets import QDialog, QDialogButtonBox, QFormLayout, QLabel, QLineEdit, QVBoxLayout, QWidget

from app.reports.users import AuthError, AuthSession, UserService
from app.widgets.dialog_buttons import action_buttons


class LoginDialog(QDialog):
    def __init__(self, users: UserService, parent: QWidget | None = None, username: str = "",
                 message: str = "") -> None:
        super().__init__(parent)
        self.setWindowTitle("Log in to RadStation")
        self.users = users
        self.session: AuthSession | None = None
        self.username = QLineEdit(username)
        self.password = QLineEdit()
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        self.error = QLabel(message)
        self.error.setStyleSheet("color:#b3261e;")
        self.error.setWordWrap(True)
        self.error.setVisible(bool(message))
        form = QFormLayout()
        form.addRow("User name:", self.username)
        form.addRow("Password:", self.password)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.login_button = action_buttons(buttons, "Log in")
        buttons.accepted.connect(self.try_login)
        buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(self.error)
        lay.addWidget(buttons)
        (self.password if username else self.username).setFocus()

    def try_login(self) -> None:
        try:
            self.session = self.users.authenticate(self.username.text().strip(), self.password.text())
        except AuthError as exc:
            self.password.clear()
            self.error.setText(str(exc))
            self.error.show()
            return
        self.accept()
