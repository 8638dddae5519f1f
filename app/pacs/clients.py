"""Pick the client for a node's protocol (a two-entry registry: DIMSE or DICOMweb)."""

from __future__ import annotations

from app.pacs.dicomweb import DicomWebClient
from app.pacs.dimse import DimseClient
from app.pacs.nodes import PacsNode

PacsClient = DimseClient | DicomWebClient


def client_for(node: PacsNode) -> PacsClient:
    """Validated client for `node`; raises PacsConfigError for an invalid node."""
    node.validate()
    if node.protocol == "dicomweb":
        return DicomWebClient(node)
    return DimseClient(node)


def check_node(node: PacsNode) -> str:
    """The node dialog's Test button: C-ECHO or a QIDO ping. Returns a message or raises PacsError."""
    return client_for(node).echo()
