"""What a retrieval asked for, and the check that each instance a PACS delivers is part of it.

A C-GET answer arrives as C-STORE requests the PACS sends back; a WADO-RS answer as multipart parts. A
faulty or hostile peer can announce one instance and send another, or send an instance of another study
(another patient's images filed under the study the user opened). The Storage SCP compares each data set
with its C-STORE request; the retrieve clients do the same here, and also hold each instance to the study,
series and instances that were requested. Refused instances are never stored: the staged bytes are
discarded and the refusal names the instance and where it came from.

The data set's header is read once (`probe_file`, the importer's own validated probe) and kept on the
staged file, so the importer does not read it again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from pydicom.dataset import Dataset

from app.importer.probe import RejectedFile, probe_buffer, probe_file
from app.importer.store import StagedFile
from app.pacs.errors import PacsError

# C-STORE statuses answered for a refused C-GET sub-operation (PS3.4 B.2.3, PS3.7 C.5)
STATUS_NOT_AUTHORIZED = 0x0124  # an instance that was not requested
STATUS_OUT_OF_RESOURCES = 0xA700  # could not read what was staged (may pass on a retry)
STATUS_DOES_NOT_MATCH = 0xA900  # the data set is not the one its C-STORE request announced
STATUS_CANNOT_UNDERSTAND = 0xC000  # not importable DICOM


class RefusedInstance(PacsError):
    """One delivered instance was refused; nothing of it was stored. `str(exc)` names it and says why."""

    def __init__(self, message: str, *, sop_instance_uid: str, status: int, comment: str,
                 transient: bool = False) -> None:
        super().__init__(message)
        self.sop_instance_uid = sop_instance_uid
        self.status = status
        self.comment = comment.replace("\\", "/")[:64]  # the C-STORE response's Error Comment (LO)
        self.transient = transient

    def response(self) -> Dataset:
        """The C-STORE response status for this refusal, with its short reason."""
        ds = Dataset()
        ds.Status = self.status
        ds.ErrorComment = self.comment
        return ds


RefusalHandler = Callable[[RefusedInstance], None]


def _uids(value: object) -> frozenset[str]:
    if value is None or value == "":
        return frozenset()
    if isinstance(value, str):
        return frozenset(u.strip() for u in value.split("\\") if u.strip())
    if isinstance(value, Iterable):
        return frozenset(str(u).strip() for u in value if str(u).strip())
    return frozenset({str(value).strip()})


@dataclass(frozen=True)
class RequestedScope:
    """The study, and where given the series and instances, that one request asked for."""

    study_uid: str
    series_uids: frozenset[str] = frozenset()  # empty: any series of the study
    sop_uids: frozenset[str] = frozenset()  # empty: any instance of those series

    @classmethod
    def from_identifier(cls, identifier: Dataset) -> RequestedScope:
        """The scope of a C-GET / C-MOVE identifier (STUDY, SERIES or IMAGE level, list matching)."""
        return cls(
            str(identifier.get("StudyInstanceUID", "") or "").strip(),
            _uids(identifier.get("SeriesInstanceUID")),
            _uids(identifier.get("SOPInstanceUID")),
        )

    def describe(self) -> str:
        what = f"study {self.study_uid}"
        if len(self.series_uids) == 1:
            what = f"series {next(iter(self.series_uids))} of {what}"
        elif self.series_uids:
            what = f"{len(self.series_uids)} series of {what}"
        if self.sop_uids:
            what = f"{len(self.sop_uids)} listed instance(s) of {what}"
        return what

    def outside(self, study_uid: str, series_uid: str, sop_uid: str) -> tuple[str, str]:
        """Why an instance with these UIDs is not part of this scope, long and short ('' when it is)."""
        if study_uid != self.study_uid:
            return (f"it belongs to study {study_uid}, not the requested study {self.study_uid}",
                    "instance of another study than requested")
        if self.series_uids and series_uid not in self.series_uids:
            return f"it belongs to series {series_uid}, which was not requested", "instance of a series not requested"
        if self.sop_uids and sop_uid not in self.sop_uids:
            return "it is not one of the instances requested", "instance not requested"
        return "", ""


def vet_delivery(
    staged: StagedFile,
    scope: RequestedScope,
    source: str,
    *,
    announced_instance: str,
    announced_class: str = "",
    data: bytes | bytearray | None = None,
) -> None:
    """Check a staged delivery against what announced it and what was requested; raise RefusedInstance
    (after discarding the staged file) when it does not fit. On success the probed header is kept on
    `staged` for the importer.

    `announced_instance` / `announced_class` are the UIDs its C-STORE request (or its WADO-RS part's file
    meta) gave; the data set's own SOP Instance UID and SOP Class UID must be the same. `data`, when the
    caller still holds them, are the staged file's bytes (all of them, exactly as written): the same probe
    runs on them instead of reading the file back."""
    named = f"instance {announced_instance or '(no UID)'} ({source})"
    try:
        probed = probe_file(staged.path) if data is None else probe_buffer(staged.path, data)
    except RejectedFile as exc:
        staged.discard()
        raise RefusedInstance(f"{named} refused: {exc}", sop_instance_uid=announced_instance,
                              status=STATUS_CANNOT_UNDERSTAND, comment=str(exc)) from None
    except OSError as exc:
        staged.discard()
        raise RefusedInstance(f"{named}: cannot read the received data: {exc}", sop_instance_uid=announced_instance,
                              status=STATUS_OUT_OF_RESOURCES, comment="cannot read the received data",
                              transient=True) from None
    h = probed.header
    status = STATUS_DOES_NOT_MATCH
    if h.sop_instance_uid != announced_instance:
        why = f"its data set is instance {h.sop_instance_uid}, not the one announced", "data set is not the instance announced"
    elif announced_class and h.sop_class_uid != announced_class:
        why = (f"its data set is of SOP class {h.sop_class_uid}, not the announced {announced_class}",
               "data set is not of the SOP class announced")
    else:
        why = scope.outside(h.study_uid, h.series_uid, h.sop_instance_uid)
        status = STATUS_NOT_AUTHORIZED
    if why[0]:
        staged.discard()
        raise RefusedInstance(f"{named} refused: {why[0]} (requested: {scope.describe()}); not stored",
                              sop_instance_uid=announced_instance, status=status, comment=why[1])
    staged.probed = probed
