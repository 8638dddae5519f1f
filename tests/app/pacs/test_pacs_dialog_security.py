"""The node dialog asks before sending credentials over plain http and keeps them out of settings.json;
the SCP section keeps what it does not show (peers, TLS, limits) and says that empty means nobody."""

from __future__ import annotations

import pytest
from PySide6.QtWidgets import QMessageBox

from app.pacs.nodes import NodeStore, ScpPeer, StorageScpConfig
from app.settings import Settings
from app.widgets.pacs_nodes import PacsNodesDialog

SECRET = "plain-http-password"


@pytest.fixture
def settings(tmp_path, monkeypatch) -> Settings:
    monkeypatch.setenv("RADSTATION_HOME", str(tmp_path / "home"))
    return Settings(tmp_path / "settings.json")


def _fill_web(dialog: PacsNodesDialog, url: str) -> None:
    dialog.new_node()
    dialog.name.setText("Web")
    dialog.protocol.setCurrentIndex(dialog.protocol.findData("dicomweb"))
    dialog.url.setText(url)
    dialog.auth.setCurrentIndex(dialog.auth.findData("basic"))
    dialog.username.setText("reader")
    dialog.password.setText(SECRET)


def test_plain_http_credentials_need_a_yes(qtbot, settings, monkeypatch, tmp_path) -> None:
    dialog = PacsNodesDialog(settings)
    qtbot.addWidget(dialog)
    dialog.confirm_unsaved = lambda _name: "discard"
    asked: list[str] = []

    def answer(reply):  # type: ignore[no-untyped-def]
        def warning(_parent, _title, text, *_a, **_k):  # type: ignore[no-untyped-def]
            asked.append(text)
            return reply
        return warning

    _fill_web(dialog, "http://pacs.example/dicom-web")
    monkeypatch.setattr(QMessageBox, "warning", answer(QMessageBox.StandardButton.No))
    assert dialog.save_node() is False
    assert "unencrypted" in asked[-1] and "https" in dialog.status.text()
    assert NodeStore(settings).load() == []
    assert dialog.password.text() == SECRET  # nothing typed is lost

    monkeypatch.setattr(QMessageBox, "warning", answer(QMessageBox.StandardButton.Yes))
    assert dialog.save_node() is True
    saved = NodeStore(Settings(tmp_path / "settings.json")).get("Web")
    assert saved.allow_insecure_credentials and saved.password == SECRET
    assert SECRET not in (tmp_path / "settings.json").read_text()
    asked.clear()
    assert dialog.save_node() is True and asked == []  # confirmed once for this address

    _fill_web(dialog, "https://pacs.example/dicom-web")
    dialog.name.setText("Secure")
    assert dialog.save_node() is True and asked == []  # https: nothing to confirm


def test_scp_section_keeps_hidden_settings_and_sets_the_address(qtbot, settings) -> None:
    StorageScpConfig(enabled=True, peers=(ScpPeer("CT1", permissions=("store",)),), max_object_mb=512,
                     tls=False).to_settings(settings)
    dialog = PacsNodesDialog(settings)
    qtbot.addWidget(dialog)
    assert "nobody" in dialog.scp_accepted.placeholderText()
    assert dialog.scp_bind.text() == "127.0.0.1"
    dialog.scp_bind.setText("not an address")
    assert dialog.save_scp() is False and "not an IP address" in dialog.status.text()
    dialog.scp_bind.setText("0.0.0.0")
    dialog.scp_accepted.setText("MR1")
    assert dialog.save_scp() is True
    again = StorageScpConfig.from_settings(Settings(settings.path))
    assert again.bind_address == "0.0.0.0" and again.max_object_mb == 512
    assert [p.ae_title for p in again.all_peers] == ["CT1", "MR1"]
