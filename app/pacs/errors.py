"""Why a PACS operation failed, as exception types the UI can turn into one clear sentence.

Every network failure is mapped to one of these at the client boundary, so callers never see a raw
socket, pynetdicom or requests exception.
"""

from __future__ import annotations

from engines.errors import Cancelled


class PacsError(Exception):
    """Base of every PACS failure; `str(exc)` is a message meant for the user."""


class PacsConfigError(PacsError, ValueError):
    """A node or SCP setting is invalid (caught before any network traffic)."""

    def __init__(self, problems: list[str] | str) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("; ".join(self.problems))


class PacsConnectionError(PacsError):
    """Nothing answered: host unknown, port closed, or the connection dropped."""


class PacsTimeoutError(PacsConnectionError):
    """The peer did not answer in time."""


class AssociationRejectedError(PacsError):
    """The PACS refused the DICOM association (wrong called/calling AE, no accepted SOP class...)."""


class PacsAuthError(PacsError):
    """The DICOMweb server refused the credentials (HTTP 401/403)."""


class PacsRemoteError(PacsError):
    """The PACS answered with a failure status (DIMSE status or HTTP error)."""


class PartialRetrieveError(PacsError):
    """Some instances of a study could not be retrieved; the ones received are kept."""

    def __init__(self, message: str, received: int, expected: int) -> None:
        self.received = received
        self.expected = expected
        super().__init__(message)


class RetrieveCancelled(PacsError, Cancelled):
    """The user cancelled; what arrived before stays in the database and a later retrieve resumes."""
