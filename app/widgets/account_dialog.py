"""Create a local account from the GUI (first run, or an admin adding a colleague), with its signing key.

A radiologist can only sign with a certificate, so the dialog makes the self-signed PKCS#12 at the same
time (protected by the account password), exactly as `radstation user add` + `radstation cert create` do.
"""

from __future__ import annotations

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QVBoxLayout,
    QWidget,
)

from app.reports.authority import RoleError, signing_roles
from app.reports.keys import create_self_signed, default_p12_path
from app.reports.models import ROLES
from app.reports.passwords import WeakPasswordError
from app.reports.users import AuthError, AuthSession, UserError, UserService
from app.widgets.dialog_buttons import action_buttons


class AccountDialog(QDialog):
    """Ask name, role and password; on OK the account exists and `session` holds its log-in."""

    def __init__(self, users: UserService, parent: QWidget | None = None, *, first_run: bool = False,
                 actor: AuthSession | None = None) -> None:
        super().__init__(parent)
        self.users = users
        self.actor = actor  # the logged-in admin who adds this account (None only for the first account)
        self.session: AuthSession | None = None
        self.setWindowTitle("Create the first account" if first_run else "Create an account")
        self.display_name = QLineEdit()
        self.username = QLineEdit()
        self.role = QComboBox()
        self.role.addItems(list(ROLES))
        self.role.setCurrentText("radiologist")
        self.password = QLineEdit()
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        self.confirm = QLineEdit()
        self.confirm.setEchoMode(QLineEdit.EchoMode.Password)
        self.make_key = QCheckBox("Create a self-signed signing certificate (needed to sign reports)")
        self.make_key.setChecked(True)
        self.error = QLabel()
        self.error.setStyleSheet("color:#b3261e;")
        self.error.setWordWrap(True)
        self.error.hide()
        form = QFormLayout()
        form.addRow("Full name:", self.display_name)
        form.addRow("User name:", self.username)
        form.addRow("Role:", self.role)
        form.addRow("Password:", self.password)
        form.addRow("Repeat password:", self.confirm)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.create_button = action_buttons(buttons, "Create")
        buttons.accepted.connect(self.try_create)
        buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        if first_run:
            intro = QLabel("No accounts exist yet. Reading needs none; writing and signing reports do.")
            intro.setWordWrap(True)
            lay.addWidget(intro)
        lay.addLayout(form)
        lay.addWidget(self.make_key)
        lay.addWidget(self.error)
        lay.addWidget(buttons)

    def _fail(self, message: str) -> None:
        self.error.setText(message)
        self.error.show()

    def try_create(self) -> None:
        username = self.username.text().strip()
        password = self.password.text()
        if not username:
            self._fail("Enter a user name.")
            return
        if password != self.confirm.text():
            self._fail("The two passwords differ.")
            return
        display = self.display_name.text().strip() or username
        try:
            self.users.add_user(username, password, self.role.currentText(), display_name=display, actor=self.actor)
            self.session = self.users.authenticate(username, password)
            if self.make_key.isChecked() and self.role.currentText() in signing_roles():
                ident = create_self_signed(display, password, default_p12_path(username))
                self.users.pin_certificate(username, ident.certificate_der, actor=self.actor or self.session)
        except (UserError, WeakPasswordError, AuthError, RoleError, OSError) as exc:
            self._fail(str(exc))
            return
        self.accept()
