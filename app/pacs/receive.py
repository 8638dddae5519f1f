"""Receiving C-STORE data sets straight to disk, hashed on the way, on one association.

pynetdicom normally collects each incoming data set in memory (a 300 MB object costs 300 MB or more
while it arrives, then more when decoded). `stream_to_staging` hooks the association's DIMSE provider so
that the data-set fragments of every C-STORE request go to a private staging file as they arrive: the
file is written as Part 10 (file meta built from the request and the negotiated transfer syntax, then
the data set bytes exactly as the peer sent them) and its SHA-256 is computed while it is written. Memory
stays at one PDU per association whatever the object size, and the importer never decodes and re-encodes
the pixels. Objects larger than `max_bytes` are drained and dropped (the handler answers "out of
resources"). The same hook serves the Storage SCP and C-GET, where the PACS sends C-STORE requests back.

`guard_pdu_size` refuses a PDU longer than the limit before reading it, so a peer cannot make the
process allocate a 4 GB buffer by announcing one.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydicom.dataset import FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_file_meta_info
from pydicom.uid import UID
from pynetdicom.pdu_primitives import P_DATA

from app.importer.store import HashingWriter, ManagedStore, StagedFile

log = logging.getLogger(__name__)

IMPLEMENTATION_UID = UID("1.2.826.0.1.3680043.10.1138.1")  # RadStation, under the same root as its test UIDs
IMPLEMENTATION_VERSION = "RADSTATION1"
MIN_PDU_GUARD = 256 * 1024  # association requests with many contexts are a few tens of KB


@dataclass
class Received:
    """One C-STORE data set as it landed in staging."""

    message_id: int
    sop_class_uid: str
    sop_instance_uid: str
    transfer_syntax: str
    staged: StagedFile | None  # None when it was too large (dropped) or the write failed
    size: int  # bytes that arrived (data set only)
    too_large: bool = False
    error: str = ""


def _file_meta_bytes(sop_class: str, sop_instance: str, transfer_syntax: str, source_ae: str) -> bytes:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(sop_class)
    meta.MediaStorageSOPInstanceUID = UID(sop_instance)
    meta.TransferSyntaxUID = UID(transfer_syntax)
    meta.ImplementationClassUID = IMPLEMENTATION_UID
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION
    if source_ae:
        meta.SourceApplicationEntityTitle = source_ae[:16]
    buf = DicomBytesIO()
    buf.is_little_endian = True
    buf.is_implicit_VR = False
    write_file_meta_info(buf, meta, enforce_standard=True)
    return b"\x00" * 128 + b"DICM" + buf.getvalue()


class StreamingReceiver:
    """Per-association state: the data set being written, and finished ones waiting for their handler."""

    def __init__(self, store: ManagedStore, max_bytes: int | None, source_ae: Callable[[], str]) -> None:
        self.store = store
        self.max_bytes = max_bytes
        self.source_ae = source_ae
        self._writer: HashingWriter | None = None
        self._current: tuple[int, str, str, str] | None = None  # message id, class, instance, syntax
        self._header = 0
        self._write_error = ""
        self._done: dict[int, Received] = {}
        self._lock = threading.Lock()

    # called on the DUL thread, one PDV at a time
    def data_fragment(self, message: Any, assoc: Any, context_id: int, payload: memoryview, last: bool) -> None:
        if self._writer is None and not self._write_error:
            cs = message.command_set
            syntax = str(assoc._accepted_cx[context_id].transfer_syntax[0])
            self._current = (int(cs.MessageID), str(cs.AffectedSOPClassUID), str(cs.AffectedSOPInstanceUID), syntax)
            try:
                head = _file_meta_bytes(self._current[1], self._current[2], syntax, self.source_ae())
                limit = None if self.max_bytes is None else self.max_bytes + len(head)
                self._writer = self.store.writer(limit)
                self._writer.write(head)
                self._header = len(head)
            except Exception as exc:  # noqa: BLE001 - e.g. disk full: drain the data set, answer A700
                self._write_error = f"cannot write to the store: {exc}"
                log.warning("C-STORE %s: %s", self._current[2], self._write_error)
        if self._writer is not None:
            try:
                self._writer.write(payload)
            except OSError as exc:
                self._write_error = f"cannot write to the store: {exc.strerror or exc}"
                self._writer.abandon()
                self._writer = None
        if last:
            self._finish()

    def _finish(self) -> None:
        assert self._current is not None
        message_id, sop_class, sop_instance, syntax = self._current
        writer, self._writer = self._writer, None
        staged: StagedFile | None = None
        size = 0
        too_large = False
        error = self._write_error
        if writer is not None:
            size = writer.size - self._header
            too_large = writer.overflow
            if too_large:
                writer.abandon()
            else:
                try:
                    staged = writer.finish()
                except OSError as exc:
                    error = f"cannot write to the store: {exc.strerror or exc}"
                    writer.abandon()
        with self._lock:
            self._done[message_id] = Received(message_id, sop_class, sop_instance, syntax, staged, size,
                                              too_large, error)
        self._current = None
        self._write_error = ""

    # called by the C-STORE handler on the association's thread
    def take(self, message_id: int) -> Received | None:
        with self._lock:
            return self._done.pop(message_id, None)

    def close(self) -> None:
        """Drop whatever was not handed over (an aborted association)."""
        if self._writer is not None:
            self._writer.abandon()
            self._writer = None
        with self._lock:
            left, self._done = list(self._done.values()), {}
        for item in left:
            if item.staged is not None:
                item.staged.discard()


def stream_to_staging(assoc: Any, receiver: StreamingReceiver) -> None:
    """Divert the data-set fragments of C-STORE requests on `assoc` into `receiver` (install before any
    P-DATA arrives: on EVT_REQUESTED for an acceptor, EVT_ESTABLISHED for a requestor)."""
    dimse = assoc.dimse
    original = dimse.receive_primitive

    def receive_primitive(primitive: P_DATA) -> None:
        pdvs = primitive.presentation_data_value_list
        for context_id, data in pdvs:
            message = dimse.message
            control = data[0]
            if (not control & 1) and message is not None and type(message).__name__ == "C_STORE_RQ":
                receiver.data_fragment(message, assoc, context_id, memoryview(data)[1:], bool(control & 2))
                data = data[:1]  # the message still sees the fragment (and its last-fragment flag), empty
            if len(pdvs) == 1 and data is pdvs[0][1]:
                original(primitive)
                continue
            single = P_DATA()
            single.presentation_data_value_list = [[context_id, bytes(data)]]
            original(single)

    dimse.receive_primitive = receive_primitive  # instance attribute: this association only


def guard_pdu_size(event: Any, limit: int) -> None:
    """EVT_CONN_OPEN handler body: refuse any PDU longer than `limit` (the connection is dropped)."""
    assoc_socket = getattr(getattr(event.assoc, "dul", None), "socket", None)
    if assoc_socket is None:
        return
    limit = max(limit, MIN_PDU_GUARD)
    original_recv = assoc_socket.recv

    def recv(nr_bytes: int) -> bytearray:
        if nr_bytes > limit:
            log.warning("dropping the connection from %s: it sent a PDU of %d bytes (limit %d)",
                        getattr(event, "address", ("?",))[0], nr_bytes, limit)
            raise OSError(f"PDU of {nr_bytes} bytes exceeds the limit of {limit}")
        return original_recv(nr_bytes)

    assoc_socket.recv = recv
