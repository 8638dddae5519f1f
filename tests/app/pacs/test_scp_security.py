"""The Storage SCP as a hospital's security team would try it: strangers, floods, huge objects, broken
and conflicting data, a busy database - and what each one must get back."""

from __future__ import annotations

import copy
import hashlib
import shutil
import socket
import sqlite3
import struct
import subprocess
import threading
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom import AE, StoragePresentationContexts
from pynetdicom.sop_class import Verification
from sqlalchemy import func, select, text

from app.db import database as database_module
from app.db.models import Instance, InstanceConflict, Study, StudyFlag
from app.pacs.errors import PacsConfigError, PacsError
from app.pacs.nodes import ScpPeer, StorageScpConfig
from app.pacs.scp import StorageScp
from app.pacs.sink import ImportSink, local_sop_uids
from tests.support.pacs_helpers import free_port
from tests.support.synthetic_dicom import SyntheticStudy, make_instance


def _config(**changes) -> StorageScpConfig:
    base = StorageScpConfig(enabled=True, ae_title="RADSTATION", port=free_port(), bind_address="127.0.0.1",
                            peers=(ScpPeer("CT1"), ScpPeer("ECHOONLY", permissions=("echo",)),
                                   ScpPeer("WARD", hosts=("10.9.9.0/24",))))
    return base if not changes else StorageScpConfig(**{**base.__dict__, **changes})


def _associate(port: int, calling: str = "CT1", called: str = "RADSTATION"):  # type: ignore[no-untyped-def]
    ae = AE(ae_title=calling)
    ae.requested_contexts = StoragePresentationContexts[:100]
    ae.add_requested_context(Verification)
    ae.acse_timeout = ae.network_timeout = 30
    return ae.associate("127.0.0.1", port, ae_title=called)


def _push(port: int, datasets: list[Dataset], calling: str = "CT1") -> list[tuple[int, str]]:
    """(status, error comment) per data set; [] when the association is refused."""
    assoc = _associate(port, calling)
    if not assoc.is_established:
        return []
    try:
        out = []
        for ds in datasets:
            rsp = assoc.send_c_store(ds)
            out.append((int(rsp.Status), str(rsp.get("ErrorComment", ""))))
        return out
    finally:
        assoc.release()


def _instance(size: int = 16) -> Dataset:
    return make_instance(SyntheticStudy(patient_id="SEC"), generate_uid(), size=size)


def _count(database, model) -> int:  # type: ignore[no-untyped-def]
    with database.session() as s:
        return int(s.scalar(select(func.count()).select_from(model)))


@pytest.fixture
def scp(database):
    with StorageScp(_config(), ImportSink(database)) as server:
        yield server


def test_default_settings_listen_on_loopback_and_deny_everyone() -> None:
    config = StorageScpConfig()
    assert config.bind_address == "127.0.0.1" and not config.all_peers and not config.accept_any_calling_ae
    assert StorageScpConfig(accepted_calling_aes=("CT1",)).peer("CT1").permissions == ("echo", "store")
    problems = StorageScpConfig(bind_address="every interface", max_pdu=10, max_object_mb=0,
                                peers=(ScpPeer("CT1", hosts=("not-an-ip",), permissions=("delete",)),)).problems()
    text_ = " | ".join(problems)
    for fragment in ("not an IP address", "maximum PDU size", "maximum object size", "not-an-ip",
                     "unknown permission 'delete'"):
        assert fragment in text_


def test_strangers_are_refused_and_permissions_hold(scp, database) -> None:
    ds = _instance()
    assert _push(scp.port, [ds], calling="STRANGER") == []
    assert _push(scp.port, [ds], calling="WARD") == []  # listed, but only from 10.9.9.0/24
    assert _push(scp.port, [ds], calling="ECHOONLY") == [(0x0124, "ECHOONLY may not store")]
    assert scp.rejected_associations == 2
    assert _count(database, Instance) == 0
    assert not any(scp.sink.store.staging.iterdir())  # nothing of theirs is left on disk
    echo = _associate(scp.port, "ECHOONLY")
    assert echo.is_established and int(echo.send_c_echo().Status) == 0
    echo.release()
    assert _push(scp.port, [ds]) == [(0, "")]
    assert local_sop_uids(database, ds.StudyInstanceUID) == {ds.SOPInstanceUID}


def test_listens_only_on_the_configured_address(database) -> None:
    with StorageScp(_config(), ImportSink(database)) as server:
        assert server._server.server_address[0] == "127.0.0.1"
    with pytest.raises(PacsError, match="cannot listen on 192.0.2.1"):  # not an address of this computer
        StorageScp(_config(bind_address="192.0.2.1"), ImportSink(database)).start()
    with pytest.raises(PacsConfigError, match="not an IP address"):
        StorageScp(_config(bind_address="eth0"), ImportSink(database))


def test_oversized_pdu_drops_the_connection_without_allocating_it(scp, database) -> None:
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        with socket.create_connection(("127.0.0.1", scp.port), timeout=10) as sock:
            sock.sendall(struct.pack(">BBL", 0x01, 0, 200 * 1024 * 1024) + b"\x00" * 65536)
            sock.settimeout(10)
            try:
                while sock.recv(65536):
                    pass
            except (ConnectionResetError, TimeoutError):
                pass
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * 1024 * 1024, f"{peak / 2**20:.1f} MiB allocated for a PDU that was refused"
    ds = _instance()
    assert _push(scp.port, [ds]) == [(0, "")]  # and it keeps serving


def test_objects_stream_to_disk_and_too_large_ones_are_refused_as_transient(database) -> None:
    big = _instance(size=1024)  # 2 MiB of pixels
    small = _instance(size=256)
    with StorageScp(_config(max_object_mb=1), ImportSink(database)) as server:
        tracemalloc.start()
        try:
            tracemalloc.reset_peak()
            statuses = _push(server.port, [big, small])
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert statuses[0][0] == 0xA700 and "over the 1 MB limit" in statuses[0][1]
        assert statuses[1] == (0, "")
        assert local_sop_uids(database, big.StudyInstanceUID) == set()
        assert local_sop_uids(database, small.StudyInstanceUID) == {small.SOPInstanceUID}
        assert not any(server.sink.store.staging.iterdir())
    # the sender holds its own 2 MiB copy in this process; the receiving side adds at most a few PDUs
    assert peak < 2 * len(big.PixelData) + 4 * 1024 * 1024


def test_bounded_associations_reject_the_extra_one_as_transient(database) -> None:
    with StorageScp(_config(max_associations=2), ImportSink(database)) as server:
        held = [_associate(server.port) for _ in range(2)]
        try:
            assert all(a.is_established for a in held)
            extra = _associate(server.port)
            assert extra.is_rejected
            assert extra.acceptor.primitive.result == 0x02  # rejected-transient: the modality retries
        finally:
            for a in held:
                a.release()
        time.sleep(0.5)
        again = _associate(server.port)
        assert again.is_established
        again.release()


def test_one_host_holding_idle_connections_cannot_lock_out_the_modalities(database) -> None:
    """A host on the network opens connections and sends nothing (a port scanner, a slow-loris attack).
    Before, every one held an association slot until its timeout, so it could keep the modalities out for
    good; now one address holds at most `max_associations_per_host` and the rest are closed at once."""
    cfg = _config(max_associations=4, max_associations_per_host=2, timeout=30)
    with StorageScp(cfg, ImportSink(database)) as server:
        attacker = []
        for _ in range(6):
            s = socket.socket()
            s.bind(("127.0.0.2", 0))  # another address on the loopback network
            s.connect(("127.0.0.1", server.port))
            attacker.append(s)
        time.sleep(1.0)
        closed = 0
        for s in attacker:
            s.settimeout(0.2)
            try:
                closed += s.recv(16) == b""
            except TimeoutError:
                pass  # still held: one of the two it may have
        assert closed == 4
        assert _push(server.port, [_instance()]) == [(0, "")]  # CT1 from 127.0.0.1 gets in and stores
        for s in attacker:
            s.close()


def test_reused_sop_instance_uid_with_new_content_is_kept_and_flagged(scp, database) -> None:
    first = _instance()
    second = copy.deepcopy(first)
    second.PixelData = (np.frombuffer(first.PixelData, dtype=np.int16) + 100).astype(np.int16).tobytes()
    assert _push(scp.port, [first, first, second]) == [(0, ""), (0, ""), (0, "")]
    assert _count(database, Instance) == 1
    with database.session() as s:
        conflict = s.scalars(select(InstanceConflict)).one()
        original = s.scalars(select(Instance)).one()
        flag = s.scalars(select(StudyFlag)).one()
    assert conflict.sop_instance_uid == first.SOPInstanceUID and "C-STORE from CT1@127.0.0.1" in conflict.source
    assert flag.kind == "conflicting_copies"
    kept = database.store_path(conflict.file_path)
    assert kept.exists() and database.store_path(original.file_path).exists() and kept != database.store_path(
        original.file_path)
    assert dcmread(kept).PixelData == second.PixelData and dcmread(
        database.store_path(original.file_path)).PixelData == first.PixelData


def test_bad_data_gets_a_status_that_says_why(scp, database) -> None:
    assert _push(scp.port, [_instance()]) == [(0, "")]
    no_study = _instance()
    del no_study.StudyInstanceUID
    path_uid = _instance()
    path_uid.SeriesInstanceUID = "../../etc/passwd"
    statuses = _push(scp.port, [no_study, path_uid])
    assert statuses[0][0] == 0xC000 and "StudyInstanceUID" in statuses[0][1]
    assert statuses[1][0] == 0xC000 and "not a valid DICOM UID" in statuses[1][1]
    assert _count(database, Instance) == 1


def test_data_set_that_contradicts_its_request_is_refused(scp, database) -> None:
    ds = _instance()
    assoc = _associate(scp.port)
    try:
        # the command says one instance, the data set is another
        other = copy.deepcopy(ds)
        other.SOPInstanceUID = generate_uid()
        from pynetdicom.dimse_primitives import C_STORE

        req_uid = ds.SOPInstanceUID
        original_send = assoc.dimse.send_msg

        def send_msg(primitive, context_id):  # type: ignore[no-untyped-def]
            if isinstance(primitive, C_STORE) and primitive.AffectedSOPInstanceUID == other.SOPInstanceUID:
                primitive.AffectedSOPInstanceUID = req_uid
            return original_send(primitive, context_id)

        assoc.dimse.send_msg = send_msg
        rsp = assoc.send_c_store(other)
        assert int(rsp.Status) == 0xA900
    finally:
        assoc.release()
    assert _count(database, Instance) == 0


def test_locked_database_answers_a700_and_the_retry_succeeds(scp, database, monkeypatch) -> None:
    monkeypatch.setattr(database_module, "WRITE_RETRY_SECONDS", 1.0)
    ds = _instance()
    blocker = sqlite3.connect(database.engine.url.database, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another program holds the write lock
    try:
        status = _push(scp.port, [ds])
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert status[0][0] == 0xA700, status
    assert _count(database, Instance) == 0
    assert not any(p.is_file() for p in scp.sink.store.root.rglob("*.dcm"))  # nothing orphaned
    assert _push(scp.port, [ds]) == [(0, "")]  # the modality's retry goes through
    assert _count(database, Instance) == 1


def test_full_disk_reserve_rejects_associations_as_transient(database) -> None:
    with StorageScp(_config(min_free_disk_mb=1 << 29), ImportSink(database)) as server:
        assoc = _associate(server.port)
        assert assoc.is_rejected and assoc.acceptor.primitive.result == 0x02


@pytest.mark.skipif(shutil.which("storescu") is None, reason="DCMTK storescu is not installed")
def test_dcmtk_storescu_push_of_a_large_object_is_streamed(database, tmp_path) -> None:
    """A 32 MiB object from DCMTK: stored byte for byte, while the SCP's Python heap stays small."""
    ds = make_instance(SyntheticStudy(patient_id="BIG"), generate_uid(), size=4096)
    path = tmp_path / "big.dcm"
    ds.save_as(path, enforce_file_format=True)
    pixels = ds.PixelData
    del ds
    with StorageScp(_config(), ImportSink(database)) as server:
        tracemalloc.start()
        try:
            run = subprocess.run(["storescu", "-aet", "CT1", "-aec", "RADSTATION", "127.0.0.1", str(server.port),
                                  str(path)], capture_output=True, text=True, timeout=300)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert run.returncode == 0, run.stderr
    assert peak < 12 * 1024 * 1024, f"SCP held {peak / 2**20:.1f} MiB while receiving a 32 MiB object"
    with database.session() as s:
        inst = s.scalars(select(Instance)).one()
    stored = database.store_path(inst.file_path)
    assert dcmread(stored).PixelData == pixels
    assert hashlib.sha256(stored.read_bytes()).hexdigest() == inst.file_sha256


def test_concurrent_pushes_from_several_modalities_all_land(scp, database) -> None:
    per = 8
    study = SyntheticStudy(patient_id="MULTI")
    series = [generate_uid() for _ in range(3)]
    batches = [[make_instance(study, s, instance_number=n, size=32) for n in range(per)] for s in series]
    results: list[list[tuple[int, str]]] = []

    def push(items: list[Dataset]) -> None:
        results.append(_push(scp.port, items))

    threads = [threading.Thread(target=push, args=(b,)) for b in batches]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert sorted(s for r in results for s, _ in r) == [0] * (per * 3)
    assert _count(database, Instance) == per * 3 and _count(database, Study) == 1
    with database.engine.connect() as c:
        assert c.execute(text("select count(*) from series")).scalar() == 3


def test_staging_files_are_private_and_store_is_owner_only(scp, database) -> None:
    ds = _instance()
    assert _push(scp.port, [ds]) == [(0, "")]
    for path in [database.store_dir, *database.store_dir.rglob("*")]:
        mode = path.stat().st_mode & 0o777
        assert mode == (0o700 if path.is_dir() else 0o600), (path, oct(mode))
    assert Path(database.engine.url.database).stat().st_mode & 0o777 == 0o600
