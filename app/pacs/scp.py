"""RadStation's own Storage SCP: receives pushes (and C-MOVE results) into the import path.

Off by default (settings `storage_scp`). When on, it is built to sit on a hospital network:
  * default-deny: only configured calling AEs are accepted (optionally only from given addresses or
    with a given TLS client certificate), each with its own permissions (echo, store); the called AE
    title must be ours; rejections are logged with the peer's address;
  * it listens on one configured address (loopback unless a site sets its interface), optionally over
    DICOM TLS with client certificates checked against the site's CA;
  * a peer cannot make it hold much: PDUs above the advertised maximum drop the connection, data sets
    are streamed to disk as they arrive (`app.pacs.receive`) and dropped above the object size limit,
    and at most `max_associations` run at once (more are rejected as transient, so the peer retries);
  * statuses a modality acts on: 0x0000 once the instance is committed to the database, 0xA700 (out of
    resources: the modality retries later) for anything that may pass - database busy, disk full or
    below its reserve, object too large - and 0xC000 / 0xA900 only for data that will never import.
A SOP Instance UID that arrives again with different content is kept beside the first copy and the
study flagged (see `app.importer.service`): answered 0x0000, nothing is dropped.
"""

from __future__ import annotations

import logging
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from pydicom.dataset import Dataset
from pynetdicom import AE, AllStoragePresentationContexts, evt
from pynetdicom.sop_class import Verification

from app.credentials import SecretStore, SecretStoreError, tls_key_secret_name
from app.db.database import Database
from app.importer import DatasetOutcome
from app.importer.service import Committer
from app.pacs.assoc_logging import drop_unlogged_handlers
from app.pacs.errors import PacsConfigError, PacsError
from app.pacs.nodes import SCP_PERMISSIONS, ScpPeer, StorageScpConfig
from app.pacs.receive import StreamingReceiver, guard_pdu_size, stream_to_staging
from app.pacs.sink import ImportSink
from app.pacs.store_response import answer_stores_directly
from app.pacs.tcp import tune_association_socket
from app.pacs.tls import peer_common_name, server_context
from app.settings import Settings

log = logging.getLogger(__name__)

# C-STORE statuses (PS3.4 B.2.3) and the general "not authorized" (PS3.7 C.5.x)
STATUS_SUCCESS = 0x0000
STATUS_NOT_AUTHORIZED = 0x0124
STATUS_OUT_OF_RESOURCES = 0xA700
STATUS_DOES_NOT_MATCH_SOP_CLASS = 0xA900
STATUS_CANNOT_UNDERSTAND = 0xC000

# A-ASSOCIATE-RJ (result, source, diagnostic)
REJECT_UNKNOWN_CALLING_AE = (0x01, 0x01, 0x03)
REJECT_CONGESTION = (0x02, 0x03, 0x01)


def _status(code: int, comment: str = "") -> Dataset:
    ds = Dataset()
    ds.Status = code
    if comment:
        ds.ErrorComment = comment.replace("\\", "/")[:64]
    return ds


@dataclass
class _Association:
    """What the SCP keeps per accepted association."""

    peer: ScpPeer
    address: str
    receiver: StreamingReceiver
    committer: Committer

    @property
    def source(self) -> str:
        return f"C-STORE from {self.peer.ae_title}@{self.address}"


class StorageScp:
    """A running (or stopped) Storage SCP bound to `config`, importing through `sink`."""

    def __init__(self, config: StorageScpConfig, sink: ImportSink, *, key_password: str | None = None) -> None:
        self.config = config.validate()
        self.sink = sink
        self.key_password = key_password
        self._server: Any = None
        self._lock = threading.Lock()
        self._temporary: dict[str, int] = {}  # AE titles let in for a C-MOVE in progress
        self.received = 0
        self.failed = 0
        self.rejected_associations = 0

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
        cfg = self.config
        ae = AE(ae_title=cfg.ae_title)
        ae.require_called_aet = True
        ae.maximum_associations = cfg.max_associations
        ae.maximum_pdu_size = cfg.max_pdu
        ae.acse_timeout = min(float(cfg.timeout), 30.0)
        ae.dimse_timeout = float(cfg.timeout)
        ae.network_timeout = float(cfg.timeout)
        for cx in AllStoragePresentationContexts:
            ae.add_supported_context(cx.abstract_syntax, cx.transfer_syntax)  # all syntaxes: store as sent
        ae.add_supported_context(Verification)
        ssl_context = None
        if cfg.tls:
            ssl_context = server_context(
                cfg.tls_certificate, cfg.tls_private_key, cfg.tls_ca_certificates,
                require_client_certificate=cfg.tls_require_client_certificate,
                password=(lambda: self.key_password) if self.key_password else None,
            )
        handlers = [
            (evt.EVT_CONN_OPEN, self._on_connect),
            (evt.EVT_REQUESTED, self._on_requested),
            (evt.EVT_ESTABLISHED, tune_association_socket),
            (evt.EVT_ESTABLISHED, drop_unlogged_handlers),
            (evt.EVT_C_STORE, self._on_store),
            (evt.EVT_C_ECHO, self._on_echo),
            (evt.EVT_RELEASED, self._on_closed),
            (evt.EVT_ABORTED, self._on_closed),
            (evt.EVT_CONN_CLOSE, self._on_closed),
        ]
        try:
            self._server = ae.start_server((cfg.bind_address, cfg.port), block=False, evt_handlers=handlers,
                                           ssl_context=ssl_context)
        except OSError as exc:
            raise PacsError(
                f"Storage SCP cannot listen on {cfg.bind_address}:{cfg.port}: {exc.strerror or exc} "
                "(another program may use the port, or the address is not one of this computer's)"
            ) from exc
        log.info("Storage SCP %s listening on %s:%d%s", cfg.ae_title, cfg.bind_address, self.port,
                 " (TLS)" if cfg.tls else "")
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()

    def __enter__(self) -> StorageScp:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    @contextmanager
    def allow_temporarily(self, ae_title: str) -> Iterator[None]:
        """Let `ae_title` store while the block runs (the PACS answering our C-MOVE)."""
        key = ae_title.strip()
        with self._lock:
            self._temporary[key] = self._temporary.get(key, 0) + 1
        try:
            yield
        finally:
            with self._lock:
                self._temporary[key] -= 1
                if not self._temporary[key]:
                    del self._temporary[key]

    # -- access control ----------------------------------------------------------------------------------
    def peer_for(self, calling_ae: str) -> ScpPeer | None:
        calling = calling_ae.strip()
        peer = self.config.peer(calling)
        if peer is not None:
            return peer
        with self._lock:
            if calling in self._temporary:
                return ScpPeer(calling, permissions=("store",))
        if self.config.accept_any_calling_ae:
            return ScpPeer(calling, permissions=SCP_PERMISSIONS)
        return None

    def _on_connect(self, event: Any) -> None:
        guard_pdu_size(event, self.config.max_pdu + 1024)
        host = str(getattr(event, "address", ("",))[0])
        server = self._server
        others = [a for a in (server.active_associations if server is not None else [])
                  if a is not event.assoc and str(getattr(a.requestor, "address", "")) == host]
        if len(others) >= self.config.max_associations_per_host:
            # Before any A-ASSOCIATE-RQ: nothing to answer yet. An expired ARTIM timer makes the state
            # machine close the connection on its first turn, so the slot is free again at once.
            with self._lock:
                self.rejected_associations += 1
            log.warning("Storage SCP closed a connection from %s: it already holds %d (limit per host)",
                        host, len(others))
            event.assoc.acse_timeout = 0

    def _on_requested(self, event: Any) -> None:
        assoc = event.assoc
        rq = assoc.requestor.primitive
        calling = str(rq.calling_ae_title or "").strip()
        address = str(assoc.requestor.address)
        peer = self.peer_for(calling)
        why = ""
        reject = REJECT_UNKNOWN_CALLING_AE
        if peer is None:
            why = "calling AE title not configured"
        elif not peer.allows_address(address):
            why = f"not allowed from {address}"
        elif self.config.tls and peer.certificate_subject:
            cn = peer_common_name(assoc.dul.socket.socket)
            if cn != peer.certificate_subject:
                why = f"TLS client certificate {cn or '(none)'!r} is not {peer.certificate_subject!r}"
        if not why and not self._disk_ok():
            why, reject = "the image store is below its free-space reserve", REJECT_CONGESTION
        if why:
            with self._lock:
                self.rejected_associations += 1
            log.warning("Storage SCP rejected %r from %s: %s", calling, address, why)
            assoc.acse.send_reject(*reject)
            evt.trigger(assoc, evt.EVT_REJECTED, {})
            assoc.kill()
            return
        assert peer is not None
        receiver = StreamingReceiver(self.sink.store, self.config.max_object_mb << 20, lambda: peer.ae_title)
        assoc.radstation = _Association(peer, address, receiver, self.sink.committer())
        stream_to_staging(assoc, receiver)
        answer_stores_directly(assoc)

    def _disk_ok(self) -> bool:
        try:
            free = shutil.disk_usage(self.sink.store.root if self.sink.store.root.exists()
                                     else self.sink.store.root.parent).free
        except OSError:
            return True  # cannot tell: the write itself will say
        return free >= self.config.min_free_disk_mb << 20

    @staticmethod
    def _on_closed(event: Any) -> None:
        state: _Association | None = getattr(event.assoc, "radstation", None)
        if state is not None:
            state.receiver.close()

    # -- services --------------------------------------------------------------------------------------
    def _on_echo(self, event: Any) -> int:
        state: _Association | None = getattr(event.assoc, "radstation", None)
        if state is None or "echo" not in state.peer.permissions:
            return STATUS_NOT_AUTHORIZED
        return STATUS_SUCCESS

    def _count(self, ok: bool) -> None:
        with self._lock:
            if ok:
                self.received += 1
            else:
                self.failed += 1

    def _refuse(self, code: int, why: str, uid: str, state: _Association | None) -> Dataset:
        self._count(False)
        who = state.source if state is not None else "C-STORE"
        log.warning("Storage SCP: %s (%s): 0x%04X %s", who, uid, code, why)
        self.sink.notify(DatasetOutcome("failed", uid, "", why, transient=code == STATUS_OUT_OF_RESOURCES))
        return _status(code, why)

    def _on_store(self, event: Any) -> Dataset:
        state: _Association | None = getattr(event.assoc, "radstation", None)
        req = event.request
        uid = str(req.AffectedSOPInstanceUID or "")
        if state is None:
            return self._refuse(STATUS_NOT_AUTHORIZED, "association not accepted", uid, None)
        received = state.receiver.take(int(req.MessageID))
        staged = received.staged if received is not None else None
        try:
            return self._store(state, req, uid, received)
        except Exception as exc:  # noqa: BLE001 - whatever went wrong, the modality must try again
            log.exception("Storage SCP: storing %s failed", uid)
            return self._refuse(STATUS_OUT_OF_RESOURCES, f"temporary failure: {exc}", uid, state)
        finally:
            if staged is not None and staged.path.exists():  # refused before the importer took it
                staged.discard()

    def _store(self, state: _Association, req: Any, uid: str, received: Any) -> Dataset:
        if "store" not in state.peer.permissions:
            return self._refuse(STATUS_NOT_AUTHORIZED, f"{state.peer.ae_title} may not store", uid, state)
        if received is None:
            return self._refuse(STATUS_CANNOT_UNDERSTAND, "no data set", uid, state)
        if received.too_large:
            return self._refuse(STATUS_OUT_OF_RESOURCES, f"object over the {self.config.max_object_mb} MB limit",
                                uid, state)
        if received.staged is None:
            return self._refuse(STATUS_OUT_OF_RESOURCES, received.error or "could not be written", uid, state)
        if not self._disk_ok():
            return self._refuse(STATUS_OUT_OF_RESOURCES, "store below its free-space reserve", uid, state)
        incoming = self.sink.examine(received.staged, state.source)
        if isinstance(incoming, DatasetOutcome):
            code = STATUS_OUT_OF_RESOURCES if incoming.transient else STATUS_CANNOT_UNDERSTAND
            self._count(False)
            log.warning("Storage SCP refused %s from %s: %s", uid, state.source, incoming.reason)
            return _status(code, incoming.reason)
        h = incoming.header
        sop_class = str(req.AffectedSOPClassUID or "")
        if h.sop_instance_uid != uid or (sop_class and h.sop_class_uid != sop_class):
            return self._refuse(STATUS_DOES_NOT_MATCH_SOP_CLASS, "data set UIDs differ from the C-STORE request",
                                uid, state)
        outcome = self.sink.commit(state.committer, [incoming])[0]
        if outcome.ok:
            self._count(True)
            return _status(STATUS_SUCCESS)
        self._count(False)
        log.warning("Storage SCP rejected %s: %s", outcome.sop_instance_uid, outcome.reason)
        return _status(STATUS_OUT_OF_RESOURCES if outcome.transient else STATUS_CANNOT_UNDERSTAND, outcome.reason)


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
    if config.problems():
        raise PacsConfigError(config.problems())
    return StorageScp(config, ImportSink(database), key_password=scp_key_password(config)).start()


def scp_key_password(config: StorageScpConfig) -> str | None:
    """The TLS private key's password from the secret store (None: not stored, the key is not encrypted)."""
    if not (config.tls and config.tls_private_key):
        return None
    try:
        return SecretStore().get(tls_key_secret_name(config.tls_private_key))
    except SecretStoreError as exc:
        raise PacsConfigError(f"Storage SCP TLS key password: {exc}") from exc
