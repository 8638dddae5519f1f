"""Secrets out of settings.json: the OS keyring (a real Secret Service), the encrypted-file fallback,
migration of old plain-text settings, no passwords on the command line, confirmation for plain http."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from app.cli import main
from app.credentials import (
    EncryptedFileBackend,
    KeyringBackend,
    SecretStore,
    SecretStoreError,
    pacs_secret_name,
)
from app.pacs.clients import client_for
from app.pacs.errors import PacsConfigError
from app.pacs.nodes import NodeStore, PacsNode
from app.settings import Settings
from tests.support.secret_service import secret_service  # noqa: F401 - the fixture

SECRET = "hunter2-correct-horse"


def _web(**kw) -> PacsNode:  # type: ignore[no-untyped-def]
    return PacsNode("Web", protocol="dicomweb", url="https://pacs.example/dicom-web", auth="basic",
                    username="reader", password=SECRET, **kw)


@pytest.fixture
def file_store(home, monkeypatch) -> SecretStore:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("RADSTATION_SECRET_BACKEND", "file")
    return SecretStore()


def test_node_passwords_never_reach_settings_json(file_store, home: Path) -> None:
    settings = Settings(home / "settings.json")
    NodeStore(settings, file_store).upsert(_web())
    assert SECRET not in (home / "settings.json").read_text()
    backend = file_store.backend
    assert isinstance(backend, EncryptedFileBackend)
    assert SECRET.encode() not in backend.path.read_bytes() and backend.path.stat().st_mode & 0o777 == 0o600
    assert backend.key_path.stat().st_mode & 0o777 == 0o600 and backend.key_path.parent != backend.path.parent
    loaded = NodeStore(Settings(home / "settings.json"), SecretStore()).get("web")
    assert loaded.password == SECRET
    NodeStore(Settings(home / "settings.json"), file_store).remove("Web")
    assert file_store.get(pacs_secret_name("Web", "password")) is None  # removed with its node


def test_plain_text_passwords_from_older_settings_are_moved_out(file_store, home: Path) -> None:
    (home / "settings.json").write_text(json.dumps({"pacs_nodes": [_web().to_dict()]}))
    assert SECRET in (home / "settings.json").read_text()
    node = NodeStore(Settings(home / "settings.json"), file_store).get("Web")
    assert node.password == SECRET
    assert SECRET not in (home / "settings.json").read_text()
    assert file_store.get(pacs_secret_name("web", "password")) == SECRET


def test_encrypted_file_detects_tampering_and_swapped_entries(file_store) -> None:
    file_store.set("a", "first secret")
    file_store.set("b", "second secret")
    backend = file_store.backend
    data = json.loads(backend.path.read_text())
    data["entries"]["a"], data["entries"]["b"] = data["entries"]["b"], data["entries"]["a"]
    backend.path.write_text(json.dumps(data))
    with pytest.raises(SecretStoreError, match="cannot be decrypted"):
        file_store.get("a")
    raw = bytearray(base64.b64decode(data["entries"]["b"]))
    raw[-1] ^= 1
    data["entries"]["b"] = base64.b64encode(bytes(raw)).decode()
    backend.path.write_text(json.dumps(data))
    with pytest.raises(SecretStoreError, match="cannot be decrypted"):
        file_store.get("b")


def test_site_password_locks_the_file(home, monkeypatch) -> None:
    monkeypatch.setenv("RADSTATION_SECRET_BACKEND", "file")
    monkeypatch.setenv("RADSTATION_SECRETS_PASSWORD", "site secret")
    SecretStore().set("x", SECRET)
    assert "site password" in SecretStore().describe()
    assert SecretStore().get("x") == SECRET
    monkeypatch.delenv("RADSTATION_SECRETS_PASSWORD")
    with pytest.raises(SecretStoreError, match="RADSTATION_SECRETS_PASSWORD"):
        SecretStore().get("x")
    monkeypatch.setenv("RADSTATION_SECRETS_PASSWORD", "wrong")
    with pytest.raises(SecretStoreError, match="cannot be decrypted"):
        SecretStore().get("x")


def test_os_keyring_is_used_when_a_secret_service_runs(secret_service, home: Path) -> None:  # noqa: F811
    import keyring

    store = SecretStore()
    assert isinstance(store.backend, KeyringBackend) and "SecretService" in store.describe()
    NodeStore(Settings(home / "settings.json"), store).upsert(_web())
    assert SECRET not in (home / "settings.json").read_text()
    assert not (home / "config" / "secrets.enc").exists()
    assert keyring.get_password("RadStation", pacs_secret_name("Web", "password")) == SECRET
    assert NodeStore(Settings(home / "settings.json"), SecretStore()).get("Web").password == SECRET


def test_plain_text_keyring_backends_are_not_trusted(home, monkeypatch) -> None:
    alt = pytest.importorskip("keyrings.alt.file")
    import keyring

    monkeypatch.delenv("RADSTATION_SECRET_BACKEND", raising=False)
    previous = keyring.get_keyring()
    keyring.set_keyring(alt.PlaintextKeyring())
    try:
        assert isinstance(SecretStore().backend, EncryptedFileBackend)
    finally:
        keyring.set_keyring(previous)


def test_cli_refuses_a_password_on_the_command_line_and_asks_for_it(file_store, home, monkeypatch, capsys) -> None:
    args = ["pacs", "add-node", "Web", "--url", "https://pacs.example/dicom-web", "--auth", "basic", "--user", "r"]
    assert main([*args, "--password", SECRET]) == 2
    assert "do not put the password on the command line" in capsys.readouterr().err
    monkeypatch.setattr("getpass.getpass", lambda prompt: SECRET)
    assert main([*args, "--password"]) == 0
    assert "credentials in the encrypted file" in capsys.readouterr().out
    assert SECRET not in (home / "config" / "settings.json").read_text()
    assert NodeStore().get("Web").password == SECRET


def test_credentials_over_plain_http_need_confirmation(file_store, home, capsys, monkeypatch) -> None:
    node = _web().with_changes(url="http://pacs.example/dicom-web")
    with pytest.raises(PacsConfigError, match="readable to anyone on the network"):
        client_for(node)
    assert client_for(node.with_changes(allow_insecure_credentials=True))
    assert client_for(node.with_changes(url="https://pacs.example/dicom-web"))
    assert client_for(node.with_changes(auth="none", password=""))  # nothing secret to send
    monkeypatch.setattr("getpass.getpass", lambda prompt: SECRET)
    args = ["pacs", "add-node", "Web", "--url", "http://pacs.example/dicom-web", "--auth", "basic", "--user", "r",
            "--password"]
    assert main(args) == 2 and "confirm sending it unencrypted" in capsys.readouterr().err
    assert main([*args, "--allow-insecure-http"]) == 0
    assert "travel unencrypted" in capsys.readouterr().err
