"""Pick the client for a node's protocol (a two-entry registry: DIMSE or DICOMweb)."""

from __future__ import annotations

from dataclasses import asdict

from app import access_audit
from app.credentials import SecretStore, SecretStoreError, tls_key_secret_name
from app.db.database import Database
from app.pacs.dicomweb import DicomWebClient
from app.pacs.dimse import DimseClient
from app.pacs.errors import PacsConfigError
from app.pacs.nodes import PacsNode
from app.pacs.query import QueryFilter, StudyResult

PacsClient = DimseClient | DicomWebClient


def client_for(node: PacsNode) -> PacsClient:
    """Validated client for `node`; raises PacsConfigError for an invalid node."""
    node.validate()
    if node.protocol == "dicomweb":
        return DicomWebClient(node)
    return DimseClient(node, key_password=_key_password(node.tls_private_key) if node.tls_private_key else None)


def _key_password(key_file: str):  # type: ignore[no-untyped-def] - a PasswordSource
    """The TLS key's password from the secret store, read when the key is loaded."""

    def read() -> str | None:
        try:
            return SecretStore().get(tls_key_secret_name(key_file))
        except SecretStoreError as exc:
            raise PacsConfigError(f"TLS key password of {key_file}: {exc}") from exc

    return read


def check_node(node: PacsNode) -> str:
    """The node dialog's Test button: C-ECHO or a QIDO ping. Returns a message or raises PacsError."""
    return client_for(node).echo()


def find_studies_recorded(client: PacsClient, database: Database | None, query: QueryFilter) -> list[StudyResult]:
    """A study search whose results (patients' data) are recorded in the audit log as a query."""
    results = client.find_studies(query)
    if database is not None:
        access_audit.pacs_query(database, client.node.describe(), asdict(query),
                                [(r.patient_id, r.patient_name) for r in results], len(results))
    return results
