"""Helpers shared by the PACS tests (plain functions; the fixtures are in this folder's conftest)."""

from __future__ import annotations

import socket

from app.pacs.nodes import PacsNode, StorageScpConfig
from tests.support.orthanc_fixture import OrthancServer


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def dimse_node(orthanc: OrthancServer, retrieve: str = "c-get", **changes) -> PacsNode:
    node = PacsNode(
        name="orthanc",
        protocol="dimse",
        ae_title=orthanc.aet,
        host=orthanc.host,
        port=orthanc.dicom_port,
        calling_ae=orthanc.client_aet,
        retrieve=retrieve,
        timeout=10,
    )
    return node.with_changes(**changes) if changes else node


def web_node(orthanc: OrthancServer, **changes) -> PacsNode:
    node = PacsNode(name="orthanc-web", protocol="dicomweb", url=orthanc.dicomweb_url, timeout=10)
    return node.with_changes(**changes) if changes else node


def scp_config(orthanc: OrthancServer) -> StorageScpConfig:
    """The Storage SCP Orthanc knows as its `radtest` modality (C-MOVE destination)."""
    return StorageScpConfig(enabled=True, ae_title=orthanc.client_aet, port=orthanc.client_port,
                            bind_address="127.0.0.1")
