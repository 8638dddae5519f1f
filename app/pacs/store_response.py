"""C-STORE responses encoded directly, on one association (the SCP and C-GET both answer one per instance).

pynetdicom builds each response as a pydicom Dataset from a template and encodes it element by element:
about a millisecond of Python per received instance, on the thread that is also waiting for the next
one. A plain response (a status, no error comment or offending element) is seven fixed elements in
implicit VR little endian, so `answer_stores_directly` sends exactly those bytes itself; anything else
still goes through pynetdicom. The bytes are the ones pynetdicom would send (tests compare them).
"""

from __future__ import annotations

import struct
from typing import Any

from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.pdu_primitives import P_DATA

_STORE_RSP = 0x8001
_NO_DATA_SET = 0x0101


def _element(element: int, value: bytes) -> bytes:
    return struct.pack("<HHI", 0x0000, element, len(value)) + value


def _uid(value: str) -> bytes:
    raw = value.encode("ascii")
    return raw + b"\x00" if len(raw) % 2 else raw


def encode_store_response(message_id: int, status: int, sop_class: str | None, sop_instance: str | None) -> bytes:
    """The command set of a C-STORE-RSP without a data set, as pynetdicom encodes it."""
    body = b"".join((
        _element(0x0002, _uid(sop_class)) if sop_class else b"",
        _element(0x0100, struct.pack("<H", _STORE_RSP)),
        _element(0x0120, struct.pack("<H", message_id)),
        _element(0x0800, struct.pack("<H", _NO_DATA_SET)),
        _element(0x0900, struct.pack("<H", status)),
        _element(0x1000, _uid(sop_instance)) if sop_instance else b"",
    ))
    return _element(0x0000, struct.pack("<I", len(body))) + body


def _plain(primitive: Any) -> bool:
    return (
        isinstance(primitive, C_STORE)
        and primitive.MessageIDBeingRespondedTo is not None
        and isinstance(primitive.Status, int)
        and primitive.ErrorComment is None
        and primitive.OffendingElement is None
    )


def answer_stores_directly(assoc: Any) -> None:
    """Send plain C-STORE responses on `assoc` as directly encoded bytes (install once it is established,
    or on EVT_REQUESTED for an acceptor)."""
    dimse = assoc.dimse
    original = dimse.send_msg

    def send_msg(primitive: Any, context_id: int) -> None:
        if _plain(primitive):
            try:
                command = encode_store_response(int(primitive.MessageIDBeingRespondedTo), int(primitive.Status),
                                                primitive.AffectedSOPClassUID, primitive.AffectedSOPInstanceUID)
            except (UnicodeEncodeError, struct.error):
                command = b""  # a UID pydicom would encode differently: let pynetdicom do it
            limit = dimse.maximum_pdu_size
            if command and (not limit or len(command) + 6 <= limit):
                pdata = P_DATA()
                pdata.presentation_data_value_list.append((context_id, b"\x03" + command))
                dimse.dul.send_pdu(pdata)
                return
        original(primitive, context_id)

    dimse.send_msg = send_msg  # instance attribute: this association only
