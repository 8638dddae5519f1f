"""Secrets kept out of settings.json: PACS passwords and tokens, TLS private-key passwords.

They live in the operating system's keyring through the `keyring` library (Secret Service or KWallet on
Linux, Keychain on macOS, Credential Locker on Windows). Where no keyring service runs - a headless
workstation, a kiosk session without a desktop - they go to an encrypted file instead:
  * AES-256-GCM per entry, the entry's name bound in as associated data (entries cannot be swapped);
  * the key is derived with scrypt from RADSTATION_SECRETS_PASSWORD when a site sets one (then a copy
    of the data folder is useless without it), else it is a random key in its own owner-only file in
    the data folder, apart from settings - which keeps secrets out of settings files, backups of the
    config folder and support bundles, but not from someone who can read this user's files (only the
    OS keyring or a site password does that; `radstation secrets where` says which is in use).
RADSTATION_SECRET_BACKEND=file|keyring forces one backend (tests use it).
"""

from __future__ import annotations

import base64
import json
import logging
import os
import tempfile
import threading
from pathlib import Path
from typing import Protocol

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from app.paths import config_dir, data_dir

log = logging.getLogger(__name__)

SERVICE = "RadStation"
PASSWORD_ENV = "RADSTATION_SECRETS_PASSWORD"
BACKEND_ENV = "RADSTATION_SECRET_BACKEND"


class SecretStoreError(RuntimeError):
    """The secret store cannot be read or written; the message says why and what to do."""


class _Backend(Protocol):
    def get(self, name: str) -> str | None: ...
    def set(self, name: str, value: str) -> None: ...
    def delete(self, name: str) -> None: ...
    def describe(self) -> str: ...


class KeyringBackend:
    """The OS keyring, through `keyring`."""

    def __init__(self, backend: object) -> None:
        self.backend = backend

    def get(self, name: str) -> str | None:
        try:
            return self.backend.get_password(SERVICE, name)  # type: ignore[attr-defined]
        except Exception as exc:  # noqa: BLE001 - keyring raises backend-specific types
            raise SecretStoreError(f"the OS keyring could not be read ({exc}); is it unlocked?") from exc

    def set(self, name: str, value: str) -> None:
        try:
            self.backend.set_password(SERVICE, name, value)  # type: ignore[attr-defined]
        except Exception as exc:  # noqa: BLE001
            raise SecretStoreError(f"the OS keyring refused to store a secret ({exc}); is it unlocked?") from exc

    def delete(self, name: str) -> None:
        import keyring.errors

        try:
            self.backend.delete_password(SERVICE, name)  # type: ignore[attr-defined]
        except keyring.errors.PasswordDeleteError:
            pass
        except Exception as exc:  # noqa: BLE001
            raise SecretStoreError(f"the OS keyring could not delete a secret ({exc})") from exc

    def describe(self) -> str:
        return f"OS keyring ({type(self.backend).__module__}.{type(self.backend).__name__})"


class EncryptedFileBackend:
    """Secrets in one AES-GCM encrypted JSON file (0600), for machines without a keyring service."""

    def __init__(self, path: Path | None = None, key_path: Path | None = None, password: str | None = None) -> None:
        self.path = path or (config_dir() / "secrets.enc")
        self.key_path = key_path or (data_dir() / "secrets.key")
        self.password = password if password is not None else os.environ.get(PASSWORD_ENV)
        self._lock = threading.Lock()

    # -- file ------------------------------------------------------------------------------------------
    def _load(self) -> dict:
        if not self.path.exists():
            return {"version": 1, "kdf": "scrypt" if self.password else "keyfile",
                    "salt": base64.b64encode(os.urandom(16)).decode(), "entries": {}}
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise SecretStoreError(f"secret file {self.path} is unreadable ({exc})") from exc
        if not isinstance(data, dict) or not isinstance(data.get("entries"), dict):
            raise SecretStoreError(f"secret file {self.path} is not a RadStation secret file")
        return data

    def _save(self, data: dict) -> None:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".secrets-", suffix=".tmp")  # 0600
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=1, sort_keys=True)
        os.replace(tmp, self.path)

    def _key(self, data: dict) -> bytes:
        if data.get("kdf") == "scrypt":
            if not self.password:
                raise SecretStoreError(f"secret file {self.path} is locked with a site password: set {PASSWORD_ENV}")
            salt = base64.b64decode(data["salt"])
            return Scrypt(salt=salt, length=32, n=2**15, r=8, p=1).derive(self.password.encode("utf-8"))
        if not self.key_path.exists():
            self.key_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(self.key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(os.urandom(32))
        key = self.key_path.read_bytes()
        if len(key) != 32:
            raise SecretStoreError(f"secret key file {self.key_path} is damaged")
        return key

    # -- API -------------------------------------------------------------------------------------------
    def get(self, name: str) -> str | None:
        with self._lock:
            data = self._load()
            blob = data["entries"].get(name)
            if blob is None:
                return None
            raw = base64.b64decode(blob)
            try:
                return AESGCM(self._key(data)).decrypt(raw[:12], raw[12:], name.encode("utf-8")).decode("utf-8")
            except Exception as exc:  # noqa: BLE001 - InvalidTag: wrong key/password, or tampered
                raise SecretStoreError(
                    f"secret {name!r} in {self.path} cannot be decrypted (wrong {PASSWORD_ENV}, or the file was "
                    "altered): enter the secret again"
                ) from exc

    def set(self, name: str, value: str) -> None:
        with self._lock:
            data = self._load()
            nonce = os.urandom(12)
            sealed = AESGCM(self._key(data)).encrypt(nonce, value.encode("utf-8"), name.encode("utf-8"))
            data["entries"][name] = base64.b64encode(nonce + sealed).decode()
            self._save(data)

    def delete(self, name: str) -> None:
        with self._lock:
            data = self._load()
            if data["entries"].pop(name, None) is not None:
                self._save(data)

    def describe(self) -> str:
        how = f"site password ({PASSWORD_ENV})" if self._load().get("kdf") == "scrypt" else f"key file {self.key_path}"
        return f"encrypted file {self.path} (key: {how})"


def os_keyring() -> object | None:
    """The usable OS keyring backend, or None (no service running, or only the fail/null backends)."""
    try:
        import keyring
        from keyring.backends import chainer, fail, null
    except ImportError:
        return None
    try:
        backend = keyring.get_keyring()
    except Exception:  # noqa: BLE001
        return None
    try:  # a chained backend evaluates its members here; one whose bus has gone raises RuntimeError
        candidates = list(backend.backends) if isinstance(backend, chainer.ChainerBackend) else [backend]
    except Exception as exc:  # noqa: BLE001 - unusable is the answer, not an error
        log.info("OS keyring is not usable: %s", exc)
        return None
    # Only the keyring package's own OS services: keyrings.alt's "file" backends keep secrets in plain
    # text or behind an interactive prompt, which is worse than our own encrypted file.
    candidates = [b for b in candidates if type(b).__module__.startswith("keyring.backends.")
                  and not isinstance(b, fail.Keyring | null.Keyring | chainer.ChainerBackend)]
    if not candidates:
        return None
    backend = candidates[0]
    try:
        backend.get_password(SERVICE, "__radstation_probe__")  # a locked or absent service fails here
    except Exception as exc:  # noqa: BLE001
        log.info("OS keyring %s is not usable: %s", type(backend).__name__, exc)
        return None
    return backend


class SecretStore:
    """get/set/delete secrets by name in the best backend available."""

    def __init__(self, backend: _Backend | None = None) -> None:
        self.backend = backend or self._choose()

    @staticmethod
    def _choose() -> _Backend:
        forced = os.environ.get(BACKEND_ENV, "").strip().lower()
        if forced == "file":
            return EncryptedFileBackend()
        found = os_keyring()
        if found is not None:
            return KeyringBackend(found)
        if forced == "keyring":
            raise SecretStoreError(f"{BACKEND_ENV}=keyring but no OS keyring service is usable")
        return EncryptedFileBackend()

    def get(self, name: str) -> str | None:
        return self.backend.get(name)

    def set(self, name: str, value: str) -> None:
        if value:
            self.backend.set(name, value)
        else:
            self.backend.delete(name)

    def delete(self, name: str) -> None:
        self.backend.delete(name)

    def describe(self) -> str:
        return self.backend.describe()


def pacs_secret_name(node_name: str, field: str) -> str:
    """'pacs:<node>:password' / ':token': node names are unique case-insensitively."""
    return f"pacs:{node_name.strip().lower()}:{field}"


def tls_key_secret_name(key_path: str) -> str:
    return f"tls-key:{os.path.abspath(key_path)}"
