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
process allocate a 4 GB buffer by announcing one; within the limit each PDU is read straight into one
buffer (`app.pacs.tcp.read_exactly`), not in pynetdicom's 4 KiB steps.
"""

from __future__ import annotations

import logging
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydicom.uid import UID
from pynetdicom.pdu_primitives import P_DATA

from app.importer.store import HashingWriter, ManagedStore, StagedFile
from app.pacs.tcp import read_exactly

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


def _element(group_elem: int, vr: bytes, value: bytes) -> bytes:
    """One explicit VR little endian element with a 2-byte length (every VR of the file meta but OB)."""
    if len(value) > 0xFFFF:
        raise ValueError(f"a file meta value of {len(value)} bytes does not fit its element")
    return struct.pack("<HH2sH", group_elem >> 16, group_elem & 0xFFFF, vr, len(value)) + value


def _text(value: str, pad: bytes) -> bytes:
    raw = value.encode("ascii", "replace")
    return raw + pad if len(raw) % 2 else raw


_VERSION_ELEMENT = struct.pack("<HH2sHI", 0x0002, 0x0001, b"OB", 0, 2) + b"\x00\x01"


def _file_meta_bytes(sop_class: str, sop_instance: str, transfer_syntax: str, source_ae: str) -> bytes:
    """Preamble, 'DICM' and the file meta group, encoded directly (once per received instance: pydicom's
    writer cost several milliseconds of the DUL thread per instance). Same bytes as pydicom writes."""
    body = b"".join((
        _VERSION_ELEMENT,
        _element(0x00020002, b"UI", _text(sop_class, b"\x00")),
        _element(0x00020003, b"UI", _text(sop_instance, b"\x00")),
        _element(0x00020010, b"UI", _text(transfer_syntax, b"\x00")),
        _element(0x00020012, b"UI", _text(IMPLEMENTATION_UID, b"\x00")),
        _element(0x00020013, b"SH", _text(IMPLEMENTATION_VERSION, b" ")),
        _element(0x00020016, b"AE", _text(source_ae[:16], b" ")) if source_ae else b"",
    ))
    group_length = struct.pack("<HH2sHI", 0x0002, 0x0000, b"UL", 4, len(body))
    return _PREAMBLE + group_length + body


_PREAMBLE = b"\x00" * 128 + b"DICM"


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
    _read_data_pdus_directly(assoc, receiver)


_DRAIN_PDUS = 64


def _middle_fragments(body: bytearray, context_id: int | None) -> list[memoryview] | None:
    """The payloads of a P-DATA-TF body when every PDV in it is a data-set fragment on `context_id` that
    is neither a command nor the last fragment; None for anything else (pynetdicom then decodes it)."""
    out: list[memoryview] = []
    view = memoryview(body)
    offset, end = 0, len(body)
    while offset < end:
        if offset + 6 > end:
            return None
        length = int.from_bytes(body[offset : offset + 4], "big")
        if length < 2 or offset + 4 + length > end or body[offset + 4] != context_id or body[offset + 5] & 3:
            return None
        out.append(view[offset + 6 : offset + 4 + length])
        offset += 4 + length
    return out or None


def _read_data_pdus_directly(assoc: Any, receiver: StreamingReceiver) -> None:
    """Read the PDUs of this association; those that only carry the middle of a C-STORE data set go to
    `receiver` without pynetdicom's per-PDU decoding, events and state-machine round trip.

    A peer fragments each data set into PDUs of its own choosing (Orthanc: 16 KiB, 35 per 512x512 CT
    slice), and pynetdicom's path costs ~0.1 ms of Python per PDU. Only P-DATA-TF PDUs in the data
    transfer state (Sta6, where P-DATA changes nothing in the state machine), while a C-STORE request's
    data set is arriving, made only of middle fragments on that request's context, are taken here; the
    last fragment, commands and every other PDU go through pynetdicom exactly as it would read them. The
    idle timer is restarted by the caller as for any PDU, and the PDU size guard applies (same socket).
    """
    dul = assoc.dul
    dimse = assoc.dimse
    original = dul._read_pdu_data

    def read_pdu_data() -> None:
        # Several in a row while they keep coming: DUL's loop sleeps 1 ms after a read that queued no
        # event, which would otherwise follow every PDU taken here (bounded, so queued sends go out).
        for _ in range(_DRAIN_PDUS):
            if not read_one() or dul.socket is None or not dul.socket.ready:
                return

    def read_one() -> bool:
        """Read one PDU; True when it was a middle part of a data set, taken here."""
        message = dimse.message
        if (message is None or type(message).__name__ != "C_STORE_RQ"
                or dul.state_machine.current_state != "Sta6"):
            original()
            return False
        try:
            head = dul.socket.recv(6)
            if len(head) < 6:
                dul.event_queue.put("Evt17")  # transport closed
                return False
            pdu_type, _, length = struct.unpack(">BBL", head)
            if pdu_type not in (0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07):
                log.error("unknown PDU type 0x%02X received", pdu_type)
                dul.event_queue.put("Evt19")  # unrecognised PDU
                return False
            body = dul.socket.recv(length)
        except (OSError, TimeoutError) as exc:
            log.warning("connection closed before the entire PDU was received: %s", exc)
            dul.event_queue.put("Evt17")
            return False
        if len(body) != length:
            dul.event_queue.put("Evt17")
            return False
        if pdu_type == 0x04:
            fragments = _middle_fragments(body, message.context_id)
            if fragments is not None:
                for payload in fragments:
                    receiver.data_fragment(message, assoc, int(message.context_id), payload, False)
                return True
        try:  # what pynetdicom's _read_pdu_data does with a PDU it has read
            pdu, event = dul._decode_pdu(bytearray(head) + body)
        except Exception:  # noqa: BLE001 - pynetdicom answers an undecodable PDU with Evt19 too
            log.exception("unable to decode the received PDU")
            dul.event_queue.put("Evt19")
            return False
        dul.event_queue.put(event)
        dul._recv_pdu.put(pdu)
        return False

    dul._read_pdu_data = read_pdu_data  # instance attribute: this association only


def guard_pdu_size(event: Any, limit: int) -> None:
    """EVT_CONN_OPEN handler body: refuse any PDU longer than `limit` (the connection is dropped)."""
    assoc_socket = getattr(getattr(event.assoc, "dul", None), "socket", None)
    if assoc_socket is None:
        return
    limit = max(limit, MIN_PDU_GUARD)

    def recv(nr_bytes: int) -> bytearray:
        if nr_bytes > limit:
            log.warning("dropping the connection from %s: it sent a PDU of %d bytes (limit %d)",
                        getattr(event, "address", ("?",))[0], nr_bytes, limit)
            raise OSError(f"PDU of {nr_bytes} bytes exceeds the limit of {limit}")
        return read_exactly(assoc_socket, nr_bytes)

    assoc_socket.recv = recv
