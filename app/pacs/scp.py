"""RadStation's own Storage SCP: receives pushes (and C-MOVE results) into the import path.

Off by default (settings `storage_scp`). Only listed calling AE titles are accepted when the list is
non-empty; the called AE title must match ours. Each received instance is imported before the C-STORE
response is sent, so a success status means the instance is safely in the database.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from pydicom.dataset import Dataset
from pynetdicom import AE, AllStoragePresentationContexts, evt
from pynetdicom.sop_class import Verification

from app.db.database import Database
from app.pacs.errors import PacsConfigError, PacsError
from app.pacs.nodes import StorageScpConfig
from app.pacs.sink import ImportSink
from app.pacs.tcp import tune_association_socket
from app.settings import Settings

log = logging.getLogger(__name__)

# C-STORE statuses (PS3.4 B.2.3)
STATUS_SUCCESS = 0x0000
STATUS_OUT_OF_RESOURCES = 0xA700
STATUS_CANNOT_UNDERSTAND = 0xC000


class StorageScp:
    """A running (or stopped) Storage SCP bound to `config`, importing through `sink`."""

    def __init__(self, config: StorageScpConfig, sink: ImportSink) -> None:
        self.config = config.validate()
        self.sink = sink
        self._server: Any = None
        self._lock = threading.Lock()
        self.received = 0
        self.failed = 0

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def port(self) -> int:
        if self._server is not None:
            return int(self._server.server_address[1])
        return self.config.port

    def start(self) -> StorageScp:
        if self._server is not None:
            return self
        ae = AE(ae_title=self.config.ae_title)
        ae.require_called_aet = True
        if self.config.accepted_calling_aes:
            ae.require_calling_aet = list(self.config.accepted_calling_aes)
        for cx in AllStoragePresentationContexts:
            ae.add_supported_context(cx.abstract_syntax, cx.transfer_syntax)  # all syntaxes: store as sent
        ae.add_supported_context(Verification)
        ae.maximum_pdu_size = 0
        try:
            self._server = ae.start_server(
                (self.config.bind_address, self.config.port),
                block=False,
                evt_handlers=[(evt.EVT_C_STORE, self._on_store), (evt.EVT_ESTABLISHED, tune_association_socket)],
            )
        except OSError as exc:
            raise PacsError(
                f"Storage SCP cannot listen on port {self.config.port}: {exc.strerror or exc} "
                "(another program may use it; choose another port)"
            ) from exc
        log.info("Storage SCP %s listening on %s:%d", self.config.ae_title, self.config.bind_address, self.port)
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()

    def __enter__(self) -> StorageScp:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def _on_store(self, event: Any) -> int:
        try:
            ds: Dataset = event.dataset
            ds.file_meta = event.file_meta
        except Exception as exc:  # noqa: BLE001 - undecodable data set: tell the sender, keep serving
            log.warning("Storage SCP: cannot decode an instance from %s: %s", event.assoc.requestor.ae_title, exc)
            with self._lock:
                self.failed += 1
            return STATUS_CANNOT_UNDERSTAND
        try:
            outcome = self.sink(ds)
        except Exception as exc:  # noqa: BLE001 - e.g. the database is unreachable
            log.exception("Storage SCP: import failed")
            with self._lock:
                self.failed += 1
            log.warning("Storage SCP: %s", exc)
            return STATUS_OUT_OF_RESOURCES
        with self._lock:
            if outcome.ok:
                self.received += 1
            else:
                self.failed += 1
        if outcome.ok:
            return STATUS_SUCCESS
        log.warning("Storage SCP rejected %s: %s", outcome.sop_instance_uid, outcome.reason)
        return STATUS_CANNOT_UNDERSTAND


def scp_from_settings(sink: ImportSink, config: StorageScpConfig | None = None) -> StorageScp:
    """A Storage SCP for the configured AE/port; raises PacsConfigError when settings are invalid."""
    config = config or StorageScpConfig.from_settings()
    if config.problems():
        raise PacsConfigError(config.problems())
    return StorageScp(config, sink)


def start_configured_scp(database: Database, settings: Settings | None = None) -> StorageScp | None:
    """At application start: the running SCP when settings enable it, else None (it is off by default).

    Raises PacsError (bad settings, port taken) so the caller can show why receiving is unavailable.
    """
    config = StorageScpConfig.from_settings(settings)
    if not config.enabled:
        return None
    return scp_from_settings(ImportSink(database), config).start()
