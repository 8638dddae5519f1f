"""The log-in gate and idle lock screen: covers the whole window so no patient data shows until someone
logs in (or, when the session idled out, the same user unlocks or another user takes over).

Enter logs in, the user name is pre-filled with the last user, and the password is cleared after a failure
(lock-out rules of UserService apply). With no account yet it offers to create the first one. The password
check (argon2id, deliberately slow) runs on a worker thread so the window keeps painting meanwhile.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.reports.users import AuthError, AuthSession, UserService
from viewer.widgets.background import BackgroundRunner


class LockScreen(QWidget):
    """`loggedIn(session)` after a successful log-in; `createAccountRequested()` on first run."""

    loggedIn = Signal(object)
    createAccountRequested = Signal()

    def __init__(self, users: UserService, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.users = users
        self.setObjectName("lockScreen")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)  # the dark page hides the window
        self.setStyleSheet("#lockScreen { background:#1d2733; } QLabel { color:#e8eef5; }"
                           "#lockBox { background:#26374a; border-radius:10px; }")
        self.title = QLabel()
        self.title.setStyleSheet("font-size:20px;font-weight:bold;")
        self.title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.detail = QLabel()
        self.detail.setWordWrap(True)
        self.detail.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.username = QLineEdit()
        self.username.setObjectName("lockUser")
        self.username.setPlaceholderText("user name")
        self.password = QLineEdit()
        self.password.setObjectName("lockPassword")
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        self.password.setPlaceholderText("password")
        self.error = QLabel()
        self.error.setStyleSheet("color:#ffb4ab;")
        self.error.setWordWrap(True)
        self.error.hide()
        self.login_button = QPushButton("Log in")
        self.login_button.setDefault(True)
        self.switch_button = QPushButton("Switch user")
        self.switch_button.setToolTip("Log in as someone else (the report stays as last saved)")
        self.create_button = QPushButton("Create the first account…")
        self.login_button.clicked.connect(self.try_login)
        self.username.returnPressed.connect(self._enter_in_name)
        self.password.returnPressed.connect(self.try_login)
        self.switch_button.clicked.connect(self.switch_user)
        self.create_button.clicked.connect(self.createAccountRequested)

        box = QFrame()
        box.setObjectName("lockBox")
        box.setFixedWidth(420)
        grid = QGridLayout()
        grid.addWidget(QLabel("User name"), 0, 0)
        grid.addWidget(self.username, 0, 1)
        grid.addWidget(QLabel("Password"), 1, 0)
        grid.addWidget(self.password, 1, 1)
        buttons = QHBoxLayout()
        buttons.addWidget(self.switch_button)
        buttons.addStretch(1)
        buttons.addWidget(self.login_button)
        inner = QVBoxLayout(box)
        inner.setContentsMargins(24, 20, 24, 20)
        inner.addWidget(self.title)
        inner.addWidget(self.detail)
        inner.addLayout(grid)
        inner.addWidget(self.error)
        inner.addLayout(buttons)
        inner.addWidget(self.create_button)
        outer = QVBoxLayout(self)
        outer.addStretch(1)
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(box)
        row.addStretch(1)
        outer.addLayout(row)
        outer.addStretch(2)
        self.mode = "login"
        self._attempt = 0
        self._runner = BackgroundRunner(self)  # password checks, one at a time

    @property
    def checking(self) -> bool:
        return not self.login_button.isEnabled() and self.login_button.text() == "Checking…"

    def show_login(self, last_user: str = "", message: str = "") -> None:
        """The start-up gate (or after log-out): nobody is logged in."""
        self.mode = "login"
        first_run = self.users.count() == 0
        self.title.setText("Log in to RadStation")
        self.detail.setText(message or ("No account exists yet. Create the first one to start reading."
                                        if first_run else "Patient data is shown after you log in."))
        self.username.setReadOnly(False)
        self.username.setText(last_user)
        self.switch_button.hide()
        self.create_button.setVisible(first_run)
        for w in (self.username, self.password, self.login_button):
            w.setEnabled(not first_run)
        self._reset(focus_password=bool(last_user))

    def show_locked(self, session: AuthSession, reason: str = "") -> None:
        """The idle lock: the same user unlocks with their password, or someone else switches in."""
        self.mode = "locked"
        self.title.setText("RadStation is locked")
        who = session.display_name or session.username
        self.detail.setText((reason or "Locked.") + f" {who} can unlock; the report is kept as typed.")
        self.username.setText(session.username)
        self.username.setReadOnly(True)
        self.switch_button.show()
        self.create_button.hide()
        for w in (self.username, self.password, self.login_button):
            w.setEnabled(True)
        self._reset(focus_password=True)

    def switch_user(self) -> None:
        self.mode = "login"
        self.username.setReadOnly(False)
        self.username.clear()
        self.switch_button.hide()
        self._reset(focus_password=False)

    def _reset(self, focus_password: bool) -> None:
        self.password.clear()
        self.error.hide()
        (self.password if focus_password else self.username).setFocus()

    def _enter_in_name(self) -> None:
        if self.username.text().strip():
            self.password.setFocus()

    def try_login(self) -> None:
        """Check the password in the background; `loggedIn` (or the error) follows when it is done."""
        name = self.username.text().strip()
        if not name:
            self._fail("Enter your user name.")
            self.username.setFocus()
            return
        if self.checking:
            return
        self._attempt += 1
        attempt, password = self._attempt, self.password.text()
        self.login_button.setEnabled(False)
        self.login_button.setText("Checking…")
        self.password.setEnabled(False)

        def failed(exc: BaseException) -> None:  # a database problem is said in words, never a crash
            self._answered(attempt, None, str(exc) if isinstance(exc, AuthError)
                           else f"cannot check the password now: {exc}")

        users = self.users
        self._runner.start(lambda _job: users.authenticate(name, password), serial=True,
                           on_done=lambda session: self._answered(attempt, session, ""), on_error=failed)

    def _answered(self, attempt: int, session: AuthSession | None, error: str) -> None:
        if attempt != self._attempt:
            return
        self.login_button.setText("Log in")
        self.login_button.setEnabled(True)
        self.password.setEnabled(True)
        if session is None:
            self._fail(error)
            return
        self.password.clear()
        self.error.hide()
        self.loggedIn.emit(session)

    def _fail(self, message: str) -> None:
        self.password.clear()
        self.error.setText(message)
        self.error.show()
        self.password.setFocus()
