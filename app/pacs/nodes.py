"""PACS node configuration: what a user types in the node dialog, validated before any network use.

A node is either a DIMSE peer (AE title, host, port) or a DICOMweb service (base URL, optional basic or
bearer auth). Nodes are stored as a list of dicts under the `pacs_nodes` settings key.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any
from urllib.parse import urlparse

from app.pacs.errors import PacsConfigError
from app.settings import Settings

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
        return out

    def validate(self) -> PacsNode:
        """Return self, or raise PacsConfigError listing every problem."""
        problems = self.problems()
        if problems:
            raise PacsConfigError([f"PACS node {self.name or '(unnamed)'}: {p}" for p in problems])
        return self

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
    """The saved node list (`pacs_nodes` in settings); names are unique, case-insensitively."""

    KEY = "pacs_nodes"

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings()

    def load(self) -> list[PacsNode]:
        raw = self.settings.get(self.KEY) or []
        if not isinstance(raw, list):
            raise PacsConfigError("settings key pacs_nodes must hold a list")
        return [PacsNode.from_dict(item) for item in raw]

    def get(self, name: str) -> PacsNode:
        for node in self.load():
            if node.name.lower() == name.lower():
                return node
        known = ", ".join(n.name for n in self.load()) or "none configured"
        raise PacsConfigError(f"no PACS node named {name!r} (known: {known})")

    def save_all(self, nodes: list[PacsNode]) -> None:
        """Validate every node, refuse duplicate names, then write settings."""
        problems: list[str] = []
        seen: set[str] = set()
        for node in nodes:
            problems += [f"PACS node {node.name or '(unnamed)'}: {p}" for p in node.problems()]
            if node.name.lower() in seen:
                problems.append(f"two PACS nodes are named {node.name!r}")
            seen.add(node.name.lower())
        if problems:
            raise PacsConfigError(problems)
        self.settings.set(self.KEY, [n.to_dict() for n in nodes])
        self.settings.save()

    def upsert(self, node: PacsNode, old_name: str | None = None) -> None:
        """Add `node`, replacing the node called `old_name` (or its own name) if present."""
        target = (old_name or node.name).lower()
        nodes = [n for n in self.load() if n.name.lower() != target]
        nodes.append(node)
        self.save_all(nodes)

    def remove(self, name: str) -> None:
        self.save_all([n for n in self.load() if n.name.lower() != name.lower()])


@dataclass(frozen=True)
class StorageScpConfig:
    """RadStation's own Storage SCP: off by default; an empty accepted list accepts any calling AE."""

    enabled: bool = False
    ae_title: str = "RADSTATION"
    port: int = 11112
    accepted_calling_aes: tuple[str, ...] = ()
    bind_address: str = "0.0.0.0"

    def problems(self) -> list[str]:
        out = [p for p in (ae_title_problem(self.ae_title, "SCP AE title"), port_problem(self.port, "SCP port")) if p]
        for ae in self.accepted_calling_aes:
            if p := ae_title_problem(ae, "accepted calling AE"):
                out.append(p)
        return out

    def validate(self) -> StorageScpConfig:
        if problems := self.problems():
            raise PacsConfigError([f"Storage SCP: {p}" for p in problems])
        return self

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> StorageScpConfig:
        raw = (settings or Settings()).get("storage_scp") or {}
        if not isinstance(raw, dict):
            raise PacsConfigError("settings key storage_scp must hold an object")
        port = raw.get("port", 11112)
        if isinstance(port, str) and port.strip().isdigit():
            port = int(port)
        return cls(
            enabled=bool(raw.get("enabled", False)),
            ae_title=str(raw.get("ae_title", "RADSTATION")),
            port=port,
            accepted_calling_aes=tuple(str(a) for a in raw.get("accepted_calling_aes") or ()),
            bind_address=str(raw.get("bind_address", "0.0.0.0")),
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
            },
        )
        settings.save()
