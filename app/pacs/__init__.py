"""PACS connectivity (no Qt): node config, DIMSE and DICOMweb clients, retrieval, Storage SCP, prefetch.

Everything retrieved or received goes through `app.importer.ImportService.import_dataset`, the same
path as files, via `ImportSink`.
"""

from app.pacs.cancel import CancelToken
from app.pacs.errors import (
    AssociationRejectedError,
    PacsAuthError,
    PacsConfigError,
    PacsConnectionError,
    PacsError,
    PacsRemoteError,
    PacsTimeoutError,
    PartialRetrieveError,
    RetrieveCancelled,
)
from app.pacs.nodes import NodeStore, PacsNode, StorageScpConfig
from app.pacs.query import InstanceResult, QueryFilter, SeriesResult, StudyResult

__all__ = [
    "AssociationRejectedError",
    "CancelToken",
    "InstanceResult",
    "NodeStore",
    "PacsAuthError",
    "PacsConfigError",
    "PacsConnectionError",
    "PacsError",
    "PacsNode",
    "PacsRemoteError",
    "PacsTimeoutError",
    "PartialRetrieveError",
    "QueryFilter",
    "RetrieveCancelled",
    "SeriesResult",
    "StorageScpConfig",
    "StudyResult",
]
