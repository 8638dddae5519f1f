"""`radstation pacs ...` end to end against Orthanc, with settings and database in a temp home."""

from __future__ import annotations

import socket
import threading
import time

import pytest
from pydicom.uid import CTImageStorage
from pynetdicom import AE

from app.cli import main
from app.db.database import Database
from app.pacs.sink import local_sop_uids
from tests.support.pacs_helpers import free_port


@pytest.mark.orthanc
def test_cli_nodes_echo_find_get(orthanc, pacs_studies, tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("RADSTATION_HOME", str(tmp_path / "home"))
    db_url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("RADSTATION_DB_URL", db_url)
    assert main(["pacs", "add-node", "pacs1", "--ae", orthanc.aet, "--host", "127.0.0.1",
                 "--port", str(orthanc.dicom_port), "--calling-ae", orthanc.client_aet]) == 0
    assert main(["pacs", "add-node", "bad", "--ae", "X", "--host", "h", "--port", "0"]) == 2
    assert "port must be" in capsys.readouterr().err
    assert main(["pacs", "nodes"]) == 0 and "pacs1 (ORTHANC@127.0.0.1" in capsys.readouterr().out

    assert main(["pacs", "echo", "pacs1"]) == 0 and "succeeded" in capsys.readouterr().out
    assert main(["pacs", "echo", orthanc.dicomweb_url]) == 0 and "QIDO-RS" in capsys.readouterr().out
    assert main(["pacs", "echo", "nosuch"]) == 2 and "no PACS node named" in capsys.readouterr().err

    assert main(["pacs", "find", "pacs1", "--patient-id", "PAT-A", "--modality", "CT"]) == 0
    out = capsys.readouterr().out
    assert "2 studies" in out and pacs_studies.prior_ct[0].StudyInstanceUID in out
    assert main(["pacs", "find", "pacs1", "--from", "2024-13-01"]) == 2
    assert "not a real date" in capsys.readouterr().err

    uid = pacs_studies.other_cr[0].StudyInstanceUID
    assert main(["pacs", "get", f"{orthanc.aet}@127.0.0.1:{orthanc.dicom_port}", uid]) == 0
    assert f"{uid}: done" in capsys.readouterr().out
    database = Database.open(db_url, store_dir=tmp_path / "home" / "data" / "store")
    try:
        assert len(local_sop_uids(database, uid)) == 1
    finally:
        database.dispose()


def test_cli_scp_receives_a_push(pacs_catalog, tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("RADSTATION_HOME", str(tmp_path / "home"))
    db_url = f"sqlite:///{tmp_path / 'scp.db'}"
    port = free_port()
    done: list[int] = []
    thread = threading.Thread(target=lambda: done.append(main(
        ["pacs", "scp", "--ae", "RSCLI", "--port", str(port), "--bind", "127.0.0.1", "--accept", "CT1",
         "--db-url", db_url, "--seconds", "60", "--max-instances", "1"])))
    thread.start()
    try:
        deadline = time.monotonic() + 60  # a loaded machine takes a while to open and migrate the database
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "the SCP did not start listening"
                time.sleep(0.05)
        ae = AE(ae_title="CT1")
        ae.add_requested_context(CTImageStorage)
        assoc = ae.associate("127.0.0.1", port, ae_title="RSCLI")
        assert assoc.is_established
        assert assoc.send_c_store(pacs_catalog.other_cr[0]).Status == 0
        assoc.release()
    finally:
        thread.join(30)
    assert done == [0]
    out = capsys.readouterr().out
    assert "Storage SCP RSCLI on 127.0.0.1" in out and "received 1, refused 0" in out
    database = Database.open(db_url, store_dir=tmp_path / "home" / "data" / "store")
    try:
        assert local_sop_uids(database, pacs_catalog.other_cr[0].StudyInstanceUID) == {
            pacs_catalog.other_cr[0].SOPInstanceUID}
    finally:
        database.dispose()
