"""Sending a report document to a PACS: C-STORE (pynetdicom) or STOW-RS (dicomweb-client).

Each function returns only when the peer has confirmed storage of that exact SOP Instance; anything
else raises a `PacsError`, so the outbox never marks an unconfirmed item as sent.
"""

from __future__ import annotations

import io

from pydicom import Dataset, dcmread
from pynetdicom import build_context

from app.pacs.errors import PacsConnectionError, PacsError, PacsRemoteError
from app.pacs.nodes import PacsNode

# C-STORE statuses meaning "stored": success, and the warnings that still store the instance (PS3.4 B.2.3)
STORED_STATUSES = {0x0000, 0xB000, 0xB007, 0xB006}


def _dataset(payload: bytes) -> Dataset:
    return dcmread(io.BytesIO(payload))


def send_cstore(node: PacsNode, payload: bytes) -> str:
    from app.pacs.dimse import DimseClient

    ds = _dataset(payload)
    client = DimseClient(node)
    ts = ds.file_meta.TransferSyntaxUID
    with client.associate([build_context(ds.SOPClassUID, [ts])]) as assoc:
        if not any(cx.abstract_syntax == ds.SOPClassUID for cx in assoc.accepted_contexts):
            raise PacsRemoteError(f"{node.describe()} does not accept {ds.SOPClassUID.name} objects")
        status = assoc.send_c_store(ds)
        if status is None or "Status" not in status:
            raise PacsConnectionError(f"{node.describe()} did not confirm the C-STORE (no response)")
        code = int(status.Status)
        if code not in STORED_STATUSES:
            comment = status.get("ErrorComment", "")
            raise PacsRemoteError(f"{node.describe()} refused the C-STORE: status 0x{code:04X} {comment}".strip())
    return f"C-STORE to {node.describe()} confirmed (status 0x{code:04X})"


def send_stow(node: PacsNode, payload: bytes) -> str:
    from app.pacs.dicomweb import DicomWebClient

    ds = _dataset(payload)
    client = DicomWebClient(node)
    with client._errors("STOW-RS"):  # the PACS package's HTTP error mapping
        response = client.client.store_instances([ds])
    failed = response.get("FailedSOPSequence") if response is not None else None
    if failed:  # Orthanc always sends the sequence; only items in it are failures
        reasons = ", ".join(str(f.get("FailureReason", "?")) for f in failed)
        raise PacsRemoteError(f"{node.describe()} refused the STOW-RS (failure reasons {reasons})")
    refs = response.get("ReferencedSOPSequence") if response is not None else None
    if not refs or not any(r.ReferencedSOPInstanceUID == ds.SOPInstanceUID for r in refs):
        raise PacsError(f"{node.describe()} did not confirm storing {ds.SOPInstanceUID}")
    return f"STOW-RS to {node.describe()} confirmed"


def send(node: PacsNode, payload: bytes) -> str:
    node.validate()
    return send_stow(node, payload) if node.protocol == "dicomweb" else send_cstore(node, payload)
