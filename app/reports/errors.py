"""The errors of report actions, apart from the service so that documents and exports raise the same
ones without importing the service (no import cycle)."""

from __future__ import annotations


class ReportError(ValueError):
    """A report action that cannot be done in the report's current state."""


class ReportConflictError(ReportError):
    """The version was changed elsewhere after the caller read it: the write is refused, not merged."""
