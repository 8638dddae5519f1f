"""PACS node settings dialog: list of nodes, a form per node, Test (C-ECHO / QIDO ping) and Save.

The form maps to a `PacsNode` (`node_from_form` / `show_node`), validation is the node's own, and an
invalid form is never saved nor cleared: the problems are listed and the typed values stay. Test runs
in a background job so a PACS that does not answer never freezes the window.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QMessageBox,
    QPushButton,
    QSpinBox,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from app.pacs.clients import check_node
from app.pacs.errors import PacsError
from app.pacs.nodes import NodeStore, PacsNode, StorageScpConfig
from app.settings import Settings, current_settings
from app.widgets.pacs_worker import start_worker
from viewer.widgets.background import BackgroundRunner, Job

_OK_STYLE = "color: #1b7f2a;"
_ERR_STYLE = "color: #b00020;"


class PacsNodesDialog(QDialog):
    """Edit the saved PACS nodes and RadStation's Storage SCP settings."""

    nodesChanged = Signal()  # noqa: N815 - Qt naming
    testFinished = Signal(bool, str)  # noqa: N815

    def __init__(self, settings: Settings | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("PACS nodes")
        self.settings = settings or current_settings()
        self.store = NodeStore(self.settings)
        self._editing: str | None = None  # name of the saved node shown in the form (None: a new one)
        self._drafts: dict[str | None, PacsNode] = {}  # unsaved edits, kept while another node is shown
        # Asked when the dialog closes with unsaved edits: "save", "discard" or "cancel".
        self.confirm_unsaved: Callable[[str], str] = self._ask_unsaved
        self._runner = BackgroundRunner(self)
        self._worker: Job | None = None

        self.node_list = QListWidget()
        self.node_list.currentTextChanged.connect(self._select)
        self.new_button = QPushButton("New")
        self.new_button.clicked.connect(self.new_node)
        self.delete_button = QPushButton("Delete")
        self.delete_button.clicked.connect(self.delete_node)
        left = QVBoxLayout()
        left.addWidget(self.node_list)
        row = QHBoxLayout()
        row.addWidget(self.new_button)
        row.addWidget(self.delete_button)
        left.addLayout(row)

        self.name = QLineEdit()
        self.protocol = QComboBox()
        self.protocol.addItem("DIMSE (C-FIND / C-GET / C-MOVE)", "dimse")
        self.protocol.addItem("DICOMweb (QIDO-RS / WADO-RS)", "dicomweb")
        self.timeout = QDoubleSpinBox()
        self.timeout.setRange(1, 3600)
        self.timeout.setValue(30)
        self.timeout.setSuffix(" s")
        common = QFormLayout()
        common.addRow("Name", self.name)
        common.addRow("Protocol", self.protocol)
        common.addRow("Timeout", self.timeout)

        self.ae_title = QLineEdit()
        self.ae_title.setMaxLength(16)
        self.host = QLineEdit()
        self.port = QSpinBox()
        self.port.setRange(1, 65535)
        self.port.setValue(104)
        self.calling_ae = QLineEdit("RADSTATION")
        self.calling_ae.setMaxLength(16)
        self.retrieve = QComboBox()
        self.retrieve.addItem("C-GET", "c-get")
        self.retrieve.addItem("C-MOVE to RadStation's Storage SCP", "c-move")
        self.move_destination = QLineEdit()
        self.move_destination.setPlaceholderText("default: the calling AE title")
        dimse_page = QWidget()
        dimse = QFormLayout(dimse_page)
        dimse.addRow("Called AE title", self.ae_title)
        dimse.addRow("Host", self.host)
        dimse.addRow("Port", self.port)
        dimse.addRow("Calling AE title", self.calling_ae)
        dimse.addRow("Retrieve by", self.retrieve)
        dimse.addRow("Move destination", self.move_destination)

        self.url = QLineEdit()
        self.url.setPlaceholderText("https://pacs.example.org/dicom-web")
        self.auth = QComboBox()
        for label, key in (("None", "none"), ("Basic (user + password)", "basic"), ("Bearer token", "bearer")):
            self.auth.addItem(label, key)
        self.username = QLineEdit()
        self.password = QLineEdit()
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        self.token = QLineEdit()
        self.token.setEchoMode(QLineEdit.EchoMode.Password)
        web_page = QWidget()
        web = QFormLayout(web_page)
        web.addRow("Base URL", self.url)
        web.addRow("Authentication", self.auth)
        web.addRow("User", self.username)
        web.addRow("Password", self.password)
        web.addRow("Token", self.token)

        self.pages = QStackedWidget()
        self.pages.addWidget(dimse_page)
        self.pages.addWidget(web_page)
        self.protocol.currentIndexChanged.connect(self.pages.setCurrentIndex)

        self.test_button = QPushButton("Test")
        self.test_button.clicked.connect(self.test_node)
        self.save_button = QPushButton("Save")
        self.save_button.clicked.connect(self.save_node)
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        buttons = QHBoxLayout()
        buttons.addWidget(self.test_button)
        buttons.addWidget(self.save_button)
        buttons.addStretch(1)

        right = QVBoxLayout()
        right.addLayout(common)
        right.addWidget(self.pages)
        right.addLayout(buttons)
        right.addWidget(self.status)

        # RadStation's own Storage SCP (receives pushes and C-MOVE results)
        scp = StorageScpConfig.from_settings(self.settings)
        self.scp_enabled = QCheckBox("Receive studies (Storage SCP)")
        self.scp_enabled.setChecked(scp.enabled)
        self.scp_ae = QLineEdit(scp.ae_title)
        self.scp_ae.setMaxLength(16)
        self.scp_port = QSpinBox()
        self.scp_port.setRange(1, 65535)
        self.scp_port.setValue(scp.port if isinstance(scp.port, int) and 0 < scp.port < 65536 else 11112)
        self.scp_accepted = QLineEdit(", ".join(scp.accepted_calling_aes))
        self.scp_accepted.setPlaceholderText("calling AE titles allowed to send, comma-separated (empty: nobody)")
        self.scp_bind = QLineEdit(scp.bind_address)
        self.scp_bind.setPlaceholderText("127.0.0.1 (this computer only), or this computer's network address")
        self.scp_save = QPushButton("Save SCP settings")
        self.scp_save.clicked.connect(self.save_scp)
        scp_box = QGroupBox("Storage SCP")
        scp_form = QFormLayout(scp_box)
        scp_form.addRow(self.scp_enabled)
        scp_form.addRow("AE title", self.scp_ae)
        scp_form.addRow("Port", self.scp_port)
        scp_form.addRow("Listen on address", self.scp_bind)
        scp_form.addRow("Accepted calling AEs", self.scp_accepted)
        scp_form.addRow(self.scp_save)
        right.addWidget(scp_box)
        right.addStretch(1)

        layout = QHBoxLayout(self)
        layout.addLayout(left, 1)
        layout.addLayout(right, 2)
        self.reload()

    # ------------------------------------------------------------------ form <-> node
    def node_from_form(self) -> PacsNode:
        baseline = self._baseline()
        return PacsNode(
            name=self.name.text().strip(),
            protocol=self.protocol.currentData(),
            ae_title=self.ae_title.text().strip(),
            host=self.host.text().strip(),
            port=self.port.value(),
            calling_ae=self.calling_ae.text().strip(),
            retrieve=self.retrieve.currentData(),
            move_destination=self.move_destination.text().strip(),
            url=self.url.text().strip(),
            auth=self.auth.currentData(),
            username=self.username.text(),
            password=self.password.text(),
            token=self.token.text(),
            timeout=float(self.timeout.value()),
            # settings the form does not show (TLS files, a confirmed plain-http login) survive an edit here
            tls=baseline.tls,
            tls_ca_certificates=baseline.tls_ca_certificates,
            tls_certificate=baseline.tls_certificate,
            tls_private_key=baseline.tls_private_key,
            tls_check_hostname=baseline.tls_check_hostname,
            allow_insecure_credentials=baseline.allow_insecure_credentials and baseline.url == self.url.text().strip(),
            extra=dict(baseline.extra),  # keys a newer version stored survive an edit here
        )

    def _confirm_plain_http(self, node: PacsNode) -> PacsNode | None:
        """Credentials over http are readable on the network: say so and let the user decide."""
        if not node.sends_credentials_in_clear or node.allow_insecure_credentials:
            return node
        what = "password" if node.auth == "basic" else "token"
        answer = QMessageBox.warning(
            self,
            "Credentials over plain http",
            f"{node.url} is plain http: the {what} for {node.name or 'this node'} would travel unencrypted and "
            f"can be read by anyone on the network path.\n\nUse an https:// address if the server offers one. "
            f"Send the {what} unencrypted anyway?",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            QMessageBox.StandardButton.No,
        )
        if answer != QMessageBox.StandardButton.Yes:
            self._say(False, f"Not saved: the {what} would be sent unencrypted (use https)")
            return None
        return node.with_changes(allow_insecure_credentials=True)

    def _baseline(self) -> PacsNode:
        """The saved version of the node in the form (a blank node for a new one)."""
        if self._editing is not None:
            try:
                return self.store.get(self._editing)
            except PacsError:
                pass
        return PacsNode(name="")

    def is_dirty(self) -> bool:
        """Whether the form differs from the saved node (or from a blank one for a new node)."""
        return _comparable(self.node_from_form()) != _comparable(self._baseline())

    def _stash(self) -> None:
        if self.is_dirty():
            self._drafts[self._editing] = self.node_from_form()
        else:
            self._drafts.pop(self._editing, None)

    def _show_or_draft(self, node: PacsNode) -> None:
        draft = self._drafts.get(self._editing)
        self.show_node(draft or node)
        if draft is not None:
            self._say(False, "Unsaved changes restored: Save to keep them.")
        else:
            self.status.clear()

    def show_node(self, node: PacsNode) -> None:
        self.name.setText(node.name)
        self.protocol.setCurrentIndex(max(0, self.protocol.findData(node.protocol)))
        self.timeout.setValue(float(node.timeout))
        self.ae_title.setText(node.ae_title)
        self.host.setText(node.host)
        self.port.setValue(node.port if isinstance(node.port, int) and 0 < node.port < 65536 else 104)
        self.calling_ae.setText(node.calling_ae)
        self.retrieve.setCurrentIndex(max(0, self.retrieve.findData(node.retrieve)))
        self.move_destination.setText(node.move_destination)
        self.url.setText(node.url)
        self.auth.setCurrentIndex(max(0, self.auth.findData(node.auth)))
        self.username.setText(node.username)
        self.password.setText(node.password)
        self.token.setText(node.token)

    # ------------------------------------------------------------------ actions
    def reload(self) -> None:
        try:
            nodes = self.store.load()
        except PacsError as exc:
            self._say(False, f"saved PACS nodes cannot be read: {exc}")
            nodes = []
        self.node_list.blockSignals(True)
        self.node_list.clear()
        self.node_list.addItems([n.name for n in nodes])
        self.node_list.blockSignals(False)
        if nodes and self._editing is None:
            self.node_list.setCurrentRow(0)

    def _select(self, name: str) -> None:
        if not name:
            return
        try:
            node = self.store.get(name)
        except PacsError as exc:
            self._say(False, str(exc))
            return
        self._stash()
        self._editing = node.name
        self._show_or_draft(node)

    def new_node(self) -> None:
        self._stash()
        self._editing = None
        self.node_list.blockSignals(True)
        self.node_list.clearSelection()
        self.node_list.setCurrentRow(-1)
        self.node_list.blockSignals(False)
        self._show_or_draft(PacsNode(name=""))
        self.name.setFocus()

    def save_node(self) -> bool:
        node = self._confirm_plain_http(self.node_from_form())
        if node is None:
            return False
        problems = node.problems()
        if problems:
            self._say(False, "Not saved:\n- " + "\n- ".join(problems))
            return False
        try:
            self.store.upsert(node, old_name=self._editing)
        except PacsError as exc:
            self._say(False, f"Not saved: {exc}")
            return False
        self._drafts.pop(self._editing, None)
        self._editing = node.name
        self.reload()
        items = self.node_list.findItems(node.name, Qt.MatchFlag.MatchExactly)
        if items:
            self.node_list.blockSignals(True)
            self.node_list.setCurrentItem(items[0])
            self.node_list.blockSignals(False)
        self._say(True, f"Saved {node.describe()}")
        self.nodesChanged.emit()
        return True

    def delete_node(self) -> None:
        if self._editing is None:
            return
        try:
            self.store.remove(self._editing)
        except PacsError as exc:
            self._say(False, str(exc))
            return
        self._say(True, f"Deleted {self._editing}")
        self._drafts.pop(self._editing, None)
        self._editing = None
        self.reload()
        self.nodesChanged.emit()

    def test_node(self) -> None:
        """C-ECHO or QIDO ping with the form as typed (saving is not required to test)."""
        node = self._confirm_plain_http(self.node_from_form())
        if node is None:
            self.testFinished.emit(False, self.status.text())
            return
        if problems := node.problems():
            self._say(False, "Cannot test:\n- " + "\n- ".join(problems))
            self.testFinished.emit(False, self.status.text())
            return
        self.test_button.setEnabled(False)
        self.status.setStyleSheet("")
        self.status.setText(f"Testing {node.describe()}...")
        self._worker = start_worker(
            self._runner,
            lambda _progress, _cancel: check_node(node), on_done=self._test_ok, on_error=self._test_failed
        )

    def _test_ok(self, message: object) -> None:
        self._tested(True, str(message))

    def _test_failed(self, message: str) -> None:
        self._tested(False, message)

    def _tested(self, ok: bool, message: str) -> None:
        self.test_button.setEnabled(True)
        self._worker = None
        self._say(ok, message)
        self.testFinished.emit(ok, message)

    def save_scp(self) -> bool:
        accepted = tuple(a.strip() for a in self.scp_accepted.text().replace(";", ",").split(",") if a.strip())
        try:
            # peers with permissions, TLS and limits are kept as configured in settings.json
            config = replace(
                StorageScpConfig.from_settings(self.settings),
                enabled=self.scp_enabled.isChecked(),
                ae_title=self.scp_ae.text().strip(),
                port=self.scp_port.value(),
                accepted_calling_aes=accepted,
                bind_address=self.scp_bind.text().strip() or "127.0.0.1",
            )
            config.to_settings(self.settings)
        except PacsError as exc:
            self._say(False, f"Storage SCP not saved: {exc}")
            return False
        self._say(True, "Storage SCP settings saved (they apply when the SCP is next started)")
        return True

    def _say(self, ok: bool, message: str) -> None:
        self.status.setStyleSheet(_OK_STYLE if ok else _ERR_STYLE)
        self.status.setText(message)

    # ------------------------------------------------------------------ closing
    def _ask_unsaved(self, name: str) -> str:
        answer = QMessageBox.question(
            self,
            "Unsaved PACS node",
            f"The PACS node {name or '(new)'} has unsaved changes. Save them?",
            QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Discard | QMessageBox.StandardButton.Cancel,
        )
        return {QMessageBox.StandardButton.Save: "save", QMessageBox.StandardButton.Discard: "discard"}.get(
            answer, "cancel"
        )

    def done(self, result: int) -> None:
        """Closing with unsaved edits asks first; an invalid form is not closed on "save"."""
        if self.is_dirty():
            choice = self.confirm_unsaved(self.name.text().strip())
            if choice == "cancel" or (choice == "save" and not self.save_node()):
                return
        super().done(result)


def _comparable(node: PacsNode) -> dict:
    data = node.to_dict()
    data.pop("extra", None)
    return data
