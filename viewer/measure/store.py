"""Where measurements live between sessions: the viewer talks to this protocol, the app backs it
with its database, so the viewer never imports the app."""

from __future__ import annotations

from typing import Any, Protocol


class MeasurementStore(Protocol):
    """Persist measurements per image (SOP Instance UID) as JSON-able dicts."""

    def load(self, sop_instance_uid: str) -> list[dict[str, Any]]: ...

    def save(self, sop_instance_uid: str, measurements: list[dict[str, Any]]) -> None: ...


class InMemoryMeasurementStore:
    """A store for a viewer used without a database (tests, the bundle's demo mode)."""

    def __init__(self) -> None:
        self._data: dict[str, list[dict[str, Any]]] = {}

    def load(self, sop_instance_uid: str) -> list[dict[str, Any]]:
        return [dict(m) for m in self._data.get(sop_instance_uid, [])]

    def save(self, sop_instance_uid: str, measurements: list[dict[str, Any]]) -> None:
        self._data[sop_instance_uid] = [dict(m) for m in measurements]
