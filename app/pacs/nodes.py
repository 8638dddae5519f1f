"""PACS node configuration: what a user types in the node dialog, validated before any network use.

A node is either a DIMSE peer (AE title, host, port) or a DICOMweb service (base URL, optional basic or
bearer auth). Nodes are stored as a list of dicts under the `pacs_nodes` settings key.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from app.credentials import SecretStore, SecretStoreError, pacs_secret_name
from app.pacs.errors import PacsConfigError
from app.settings import Settings, current_settings

PROTOCOLS: tuple[str, ...] = ("dimse", "dicomweb")
DIMSE_RETRIEVE: tuple[str, ...] = ("c-get", "c-move")
AUTH_KINDS: tuple[str, ...] = ("none", "basic", "bearer")
DEFAULT_CALLING_AE = "RADSTATION"

# AE titles: 1-16 chars of the default character repertoire, no backslash, not only spaces.
_AE_RE = re.compile(r"^[\x20-\x5b\x5d-\x7e]{1,16}$")
_HOST_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.\-:]*[A-Za-z0-9])?$|^\[[0-9a-fA-F:]+\]$")


def ae_title_problem(value: str, label: str) -> str | None:
    """Why `value` is not a valid AE title, or None."""
    if not value or not value.strip():
        return f"{label} is empty"
    if not _AE_RE.match(value):
        return f"{label} {value!r} must be 1-16 printable ASCII characters without a backslash"
    return None


def port_problem(value: Any, label: str) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        return f"{label} must be a whole number from 1 to 65535, not {value!r}"
    return None


@dataclass(frozen=True)
class PacsNode:
    """One remote archive. `calling_ae` is RadStation's own AE title when talking to it."""

    name: str
    protocol: str = "dimse"
    ae_title: str = ""
    host: str = ""
    port: int = 104
    calling_ae: str = DEFAULT_CALLING_AE
    retrieve: str = "c-get"  # DIMSE only: c-get, or c-move to RadStation's Storage SCP
    move_destination: str = ""  # AE title the PACS knows RadStation's SCP by (default: calling_ae)
    url: str = ""
    auth: str = "none"
    username: str = ""
    password: str = ""
    token: str = ""
    timeout: float = 30.0
    # DIMSE over DICOM TLS: the CAs that sign the PACS's certificate (empty: the system's), and our own
    # certificate/key when the PACS wants mutual TLS (a key password lives in the secret store).
    tls: bool = False
    tls_ca_certificates: str = ""
    tls_certificate: str = ""
    tls_private_key: str = ""
    tls_check_hostname: bool = True
    # DICOMweb: the user confirmed sending the password/token over plain http (it can be read on the wire)
    allow_insecure_credentials: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def problems(self) -> list[str]:
        """Everything wrong with the node, so the dialog can show all of it at once."""
        out: list[str] = []
        if not self.name.strip():
            out.append("name is empty")
        if self.protocol not in PROTOCOLS:
            out.append(f"protocol must be one of {', '.join(PROTOCOLS)}, not {self.protocol!r}")
        if isinstance(self.timeout, bool) or not isinstance(self.timeout, int | float) or not (
            0 < self.timeout <= 3600
        ):
            out.append(f"timeout must be between 0 and 3600 seconds, not {self.timeout!r}")
        if self.protocol == "dimse":
            for problem in (
                ae_title_problem(self.ae_title, "called AE title"),
                ae_title_problem(self.calling_ae, "calling AE title"),
                port_problem(self.port, "port"),
            ):
                if problem:
                    out.append(problem)
            if not self.host.strip():
                out.append("host is empty")
            elif not _HOST_RE.match(self.host.strip()):
                out.append(f"host {self.host!r} is not a host name or IP address")
            if self.retrieve not in DIMSE_RETRIEVE:
                out.append(f"retrieve must be one of {', '.join(DIMSE_RETRIEVE)}, not {self.retrieve!r}")
            if self.move_destination and (p := ae_title_problem(self.move_destination, "move destination")):
                out.append(p)
            if self.tls:
                for path, label in ((self.tls_ca_certificates, "TLS CA certificates"),
                                    (self.tls_certificate, "TLS certificate"), (self.tls_private_key, "TLS private key")):
                    if path and not Path(path).is_file():
                        out.append(f"{label} file {path} does not exist")
                if bool(self.tls_certificate) != bool(self.tls_private_key):
                    out.append("a TLS client certificate needs its private key (and the other way round)")
        elif self.protocol == "dicomweb":
            parsed = urlparse(self.url.strip())
            if parsed.scheme not in ("http", "https") or not parsed.netloc:
                out.append(f"URL {self.url!r} must start with http:// or https:// and name a host")
            if self.auth not in AUTH_KINDS:
                out.append(f"auth must be one of {', '.join(AUTH_KINDS)}, not {self.auth!r}")
            elif self.auth == "basic" and not self.username:
                out.append("basic auth needs a user name")
            elif self.auth == "bearer" and not self.token:
                out.append("bearer auth needs a token")
            if self.sends_credentials_in_clear and not self.allow_insecure_credentials:
                out.append(f"{self.auth} auth over plain http sends the {'password' if self.auth == 'basic' else 'token'} "
                           "readable to anyone on the network: use https, or confirm sending it unencrypted")
        return out

    def validate(self) -> PacsNode:
        """Return self, or raise PacsConfigError listing every problem."""
        problems = self.problems()
        if problems:
            raise PacsConfigError([f"PACS node {self.name or '(unnamed)'}: {p}" for p in problems])
        return self

    @property
    def sends_credentials_in_clear(self) -> bool:
        """A DICOMweb node that would send a password or token over plain http."""
        return (self.protocol == "dicomweb" and self.auth in ("basic", "bearer")
                and urlparse(self.url.strip()).scheme == "http")

    @property
    def destination_ae(self) -> str:
        return self.move_destination or self.calling_ae

    @property
    def retrieve_method(self) -> str:
        return "wado-rs" if self.protocol == "dicomweb" else self.retrieve

    def describe(self) -> str:
        if self.protocol == "dicomweb":
            return f"{self.name} (DICOMweb {self.url})"
        return f"{self.name} ({self.ae_title}@{self.host}:{self.port})"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PacsNode:
        """Build from stored settings; unknown keys go to `extra` so a newer version's fields survive."""
        if not isinstance(data, dict):
            raise PacsConfigError(f"a PACS node must be a JSON object, not {type(data).__name__}")
        known = {f.name for f in fields(cls)} - {"extra"}
        kwargs = {k: v for k, v in data.items() if k in known}
        extra = {k: v for k, v in data.items() if k not in known and k != "extra"}
        extra.update(data.get("extra") or {})
        if "port" in kwargs and isinstance(kwargs["port"], str) and kwargs["port"].strip().isdigit():
            kwargs["port"] = int(kwargs["port"])
        try:
            return cls(extra=extra, **kwargs)
        except TypeError as exc:
            raise PacsConfigError(f"PACS node settings are malformed: {exc}") from exc

    def with_changes(self, **changes: Any) -> PacsNode:
        return replace(self, **changes)


class NodeStore:
    """The saved node list (`pacs_nodes` in settings); names are unique, case-insensitively.

    Passwords and tokens are never written to settings: they go to the secret store (OS keyring or
    its encrypted-file fallback, `app.credentials`) under the node's name, and are filled back in on
    load. Plain-text secrets left in settings by an older version are moved there on first load.
    """

    KEY = "pacs_nodes"
    SECRET_FIELDS = ("password", "token")

    def __init__(self, settings: Settings | None = None, secrets: SecretStore | None = None) -> None:
        self.settings = settings or current_settings()
        self._secrets = secrets

    @property
    def secrets(self) -> SecretStore:
        if self._secrets is None:
            self._secrets = SecretStore()
        return self._secrets

    def _raw(self) -> list[Any]:
        raw = self.settings.get(self.KEY) or []
        if not isinstance(raw, list):
            raise PacsConfigError("settings key pacs_nodes must hold a list")
        return raw

    def load(self) -> list[PacsNode]:
        nodes: list[PacsNode] = []
        migrate = False
        try:
            for item in self._raw():
                node = PacsNode.from_dict(item)
                if node.password or node.token:
                    migrate = True  # plain text in settings.json: move it to the secret store below
                else:
                    node = node.with_changes(**{f: self.secrets.get(pacs_secret_name(node.name, f)) or ""
                                                for f in self.SECRET_FIELDS})
                nodes.append(node)
            if migrate:
                self._write(nodes)
        except SecretStoreError as exc:
            raise PacsConfigError(f"PACS credentials: {exc}") from exc
        return nodes

    def get(self, name: str) -> PacsNode:
        nodes = self.load()
        for node in nodes:
            if node.name.lower() == name.lower():
                return node
        known = ", ".join(n.name for n in nodes) or "none configured"
        raise PacsConfigError(f"no PACS node named {name!r} (known: {known})")

    def save_all(self, nodes: list[PacsNode]) -> None:
        """Validate every node, refuse duplicate names, then write settings (secrets to the secret store)."""
        problems: list[str] = []
        seen: set[str] = set()
        for node in nodes:
            problems += [f"PACS node {node.name or '(unnamed)'}: {p}" for p in node.problems()]
            if node.name.lower() in seen:
                problems.append(f"two PACS nodes are named {node.name!r}")
            seen.add(node.name.lower())
        if problems:
            raise PacsConfigError(problems)
        try:
            self._write(nodes)
        except SecretStoreError as exc:
            raise PacsConfigError(f"PACS credentials could not be stored: {exc}") from exc

    def _write(self, nodes: list[PacsNode]) -> None:
        before = {str(item.get("name", "")).lower() for item in self._raw() if isinstance(item, dict)}
        for node in nodes:
            for f in self.SECRET_FIELDS:
                self.secrets.set(pacs_secret_name(node.name, f), getattr(node, f) or "")
        for gone in before - {n.name.lower() for n in nodes}:
            for f in self.SECRET_FIELDS:
                self.secrets.delete(pacs_secret_name(gone, f))
        self.settings.set(self.KEY, [n.with_changes(password="", token="").to_dict() for n in nodes])
        self.settings.save()

    def upsert(self, node: PacsNode, old_name: str | None = None) -> None:
        """Add `node`, replacing the node called `old_name` (or its own name) if present."""
        target = (old_name or node.name).lower()
        nodes = [n for n in self.load() if n.name.lower() != target]
        nodes.append(node)
        self.save_all(nodes)

    def remove(self, name: str) -> None:
        self.save_all([n for n in self.load() if n.name.lower() != name.lower()])


SCP_PERMISSIONS: tuple[str, ...] = ("echo", "store")


def _address_problem(value: str, label: str) -> str | None:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return f"{label} {value!r} is not an IP address (use 127.0.0.1, a local interface's address, or 0.0.0.0)"
    return None


@dataclass(frozen=True)
class ScpPeer:
    """A calling AE the Storage SCP accepts, what it may do, and optionally from where / with which
    TLS client certificate. Anything not listed is refused (default-deny)."""

    ae_title: str
    hosts: tuple[str, ...] = ()  # IP addresses or networks (CIDR) it may connect from; empty: any address
    permissions: tuple[str, ...] = SCP_PERMISSIONS
    certificate_subject: str = ""  # with TLS: the client certificate's common name must equal this

    def problems(self) -> list[str]:
        out = [p for p in (ae_title_problem(self.ae_title, "peer AE title"),) if p]
        for host in self.hosts:
            try:
                ipaddress.ip_network(host, strict=False)
            except ValueError:
                out.append(f"peer {self.ae_title}: {host!r} is not an IP address or network (e.g. 10.1.2.0/24)")
        for perm in self.permissions:
            if perm not in SCP_PERMISSIONS:
                out.append(f"peer {self.ae_title}: unknown permission {perm!r} (use {', '.join(SCP_PERMISSIONS)})")
        return out

    def allows_address(self, address: str) -> bool:
        if not self.hosts:
            return True
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in ipaddress.ip_network(h, strict=False) for h in self.hosts)

    def to_dict(self) -> dict[str, Any]:
        return {"ae_title": self.ae_title, "hosts": list(self.hosts), "permissions": list(self.permissions),
                "certificate_subject": self.certificate_subject}

    @classmethod
    def from_dict(cls, raw: Any) -> ScpPeer:
        if isinstance(raw, str):
            return cls(raw)
        if not isinstance(raw, dict):
            raise PacsConfigError(f"a Storage SCP peer must be an AE title or an object, not {type(raw).__name__}")
        return cls(
            ae_title=str(raw.get("ae_title", "")),
            hosts=tuple(str(h) for h in raw.get("hosts") or ()),
            permissions=tuple(str(p) for p in raw.get("permissions") or SCP_PERMISSIONS),
            certificate_subject=str(raw.get("certificate_subject", "") or ""),
        )


@dataclass(frozen=True)
class StorageScpConfig:
    """RadStation's own Storage SCP. Off by default; when on, it listens on one configured address
    (loopback unless a site sets its interface), accepts only listed calling AEs, optionally only over
    (mutual) TLS, and bounds what a peer can make it hold: PDU size, object size, associations."""

    enabled: bool = False
    ae_title: str = "RADSTATION"
    port: int = 11112
    accepted_calling_aes: tuple[str, ...] = ()  # shorthand: these AEs may echo and store, from anywhere
    bind_address: str = "127.0.0.1"
    peers: tuple[ScpPeer, ...] = ()
    accept_any_calling_ae: bool = False  # explicit opt-out of default-deny (a test lab, never a hospital)
    tls: bool = False
    tls_certificate: str = ""  # PEM file: this workstation's certificate (chain)
    tls_private_key: str = ""  # PEM file: its key (a password for it is kept in the secret store)
    tls_ca_certificates: str = ""  # PEM bundle: CAs whose client certificates are accepted
    tls_require_client_certificate: bool = True
    max_pdu: int = 262_144  # bytes we advertise and accept per PDU
    max_object_mb: int = 2048  # a larger data set is drained, dropped and answered 0xA700
    max_associations: int = 8  # more at once are rejected as transient (the peer retries)
    # Connections one address may hold at once: one host that opens connections and sends nothing cannot
    # take every slot from the modalities (over the limit the connection is closed at once).
    max_associations_per_host: int = 4
    min_free_disk_mb: int = 1024  # below this the SCP answers 0xA700 instead of filling the disk
    timeout: float = 60.0

    @property
    def all_peers(self) -> tuple[ScpPeer, ...]:
        """`peers` plus one full-permission peer per shorthand AE not already listed."""
        named = {p.ae_title for p in self.peers}
        return self.peers + tuple(ScpPeer(ae) for ae in self.accepted_calling_aes if ae not in named)

    def peer(self, ae_title: str) -> ScpPeer | None:
        for p in self.all_peers:
            if p.ae_title.strip() == ae_title.strip():
                return p
        return None

    def problems(self) -> list[str]:
        out = [p for p in (ae_title_problem(self.ae_title, "SCP AE title"), port_problem(self.port, "SCP port"),
                           _address_problem(self.bind_address, "SCP bind address")) if p]
        for ae in self.accepted_calling_aes:
            if p := ae_title_problem(ae, "accepted calling AE"):
                out.append(p)
        for peer in self.peers:
            out.extend(peer.problems())
        for value, label, low, high in ((self.max_pdu, "maximum PDU size", 4096, 64 << 20),
                                        (self.max_object_mb, "maximum object size (MB)", 1, 1 << 20),
                                        (self.max_associations, "maximum associations", 1, 1000),
                                        (self.max_associations_per_host, "maximum associations per host", 1, 1000),
                                        (self.min_free_disk_mb, "minimum free disk (MB)", 0, 1 << 30)):
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                out.append(f"{label} must be a whole number from {low} to {high}, not {value!r}")
        if isinstance(self.timeout, bool) or not isinstance(self.timeout, int | float) or not 0 < self.timeout <= 3600:
            out.append(f"SCP timeout must be between 0 and 3600 seconds, not {self.timeout!r}")
        if self.tls:
            files = [(self.tls_certificate, "TLS certificate"), (self.tls_private_key, "TLS private key")]
            if self.tls_require_client_certificate:
                files.append((self.tls_ca_certificates, "TLS CA certificates (to check client certificates)"))
            for path, label in files:
                if not path:
                    out.append(f"{label} file is not set")
                elif not Path(path).is_file():
                    out.append(f"{label} file {path} does not exist")
        return out

    def validate(self) -> StorageScpConfig:
        if problems := self.problems():
            raise PacsConfigError([f"Storage SCP: {p}" for p in problems])
        return self

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> StorageScpConfig:
        raw = (settings or current_settings()).get("storage_scp") or {}
        if not isinstance(raw, dict):
            raise PacsConfigError("settings key storage_scp must hold an object")

        def num(key: str, default: Any) -> Any:
            value = raw.get(key, default)
            if isinstance(value, str) and value.strip().isdigit():
                return int(value)
            return value

        peers = raw.get("peers") or []
        if not isinstance(peers, list):
            raise PacsConfigError("settings key storage_scp.peers must hold a list")
        return cls(
            enabled=bool(raw.get("enabled", False)),
            ae_title=str(raw.get("ae_title", "RADSTATION")),
            port=num("port", 11112),
            accepted_calling_aes=tuple(str(a) for a in raw.get("accepted_calling_aes") or ()),
            bind_address=str(raw.get("bind_address", "127.0.0.1")),
            peers=tuple(ScpPeer.from_dict(p) for p in peers),
            accept_any_calling_ae=bool(raw.get("accept_any_calling_ae", False)),
            tls=bool(raw.get("tls", False)),
            tls_certificate=str(raw.get("tls_certificate", "") or ""),
            tls_private_key=str(raw.get("tls_private_key", "") or ""),
            tls_ca_certificates=str(raw.get("tls_ca_certificates", "") or ""),
            tls_require_client_certificate=bool(raw.get("tls_require_client_certificate", True)),
            max_pdu=num("max_pdu", 262_144),
            max_object_mb=num("max_object_mb", 2048),
            max_associations=num("max_associations", 8),
            max_associations_per_host=num("max_associations_per_host", 4),
            min_free_disk_mb=num("min_free_disk_mb", 1024),
            timeout=raw.get("timeout", 60.0),
        )

    def to_settings(self, settings: Settings) -> None:
        self.validate()
        settings.set(
            "storage_scp",
            {
                "enabled": self.enabled,
                "ae_title": self.ae_title,
                "port": self.port,
                "accepted_calling_aes": list(self.accepted_calling_aes),
                "bind_address": self.bind_address,
                "peers": [p.to_dict() for p in self.peers],
                "accept_any_calling_ae": self.accept_any_calling_ae,
                "tls": self.tls,
                "tls_certificate": self.tls_certificate,
                "tls_private_key": self.tls_private_key,
                "tls_ca_certificates": self.tls_ca_certificates,
                "tls_require_client_certificate": self.tls_require_client_certificate,
                "max_pdu": self.max_pdu,
                "max_object_mb": self.max_object_mb,
                "max_associations": self.max_associations,
                "max_associations_per_host": self.max_associations_per_host,
                "min_free_disk_mb": self.min_free_disk_mb,
                "timeout": self.timeout,
            },
        )
        settings.save()
