"""DICOM TLS with site certificates, against real peers: DCMTK's storescu pushing into RadStation's SCP,
Orthanc with DICOM TLS answering our C-ECHO / C-GET and pushing to our SCP."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
from pydicom.uid import generate_uid

from app.pacs.dimse import DimseClient
from app.pacs.errors import PacsConnectionError, PacsError
from app.pacs.nodes import PacsNode, ScpPeer, StorageScpConfig
from app.pacs.retrieve import RetrieveService
from app.pacs.scp import StorageScp
from app.pacs.sink import ImportSink, local_sop_uids
from tests.support.orthanc_fixture import make_study, orthanc_available, start_orthanc
from tests.support.pacs_helpers import free_port
from tests.support.synthetic_dicom import SyntheticStudy, make_instance
from tests.support.tls_certs import TestPki

needs_dcmtk = pytest.mark.skipif(shutil.which("storescu") is None, reason="DCMTK storescu is not installed")


@pytest.fixture(scope="module")
def pki(tmp_path_factory):  # type: ignore[no-untyped-def]
    folder = tmp_path_factory.mktemp("pki")
    site = TestPki(folder)
    rogue = TestPki(folder / "rogue", "Rogue CA")
    return SimpleNamespace(
        ca=site.ca,
        workstation=site.leaf("radstation", "radstation.test.hospital", server=True),
        ct=site.leaf("ct1", "ct1.test.hospital"),
        other=site.leaf("ward", "ward.test.hospital"),
        orthanc=site.leaf("orthanc", "orthanc.test.hospital", server=True),
        rogue=rogue.leaf("rogue", "ct1.test.hospital"),
    )


def _tls_config(pki, **changes) -> StorageScpConfig:  # type: ignore[no-untyped-def]
    settings = {
        "enabled": True, "ae_title": "RADSTATION", "port": free_port(), "bind_address": "127.0.0.1",
        "peers": (ScpPeer("CT1", certificate_subject="ct1.test.hospital"), ScpPeer("ORTHANC")),
        "tls": True, "tls_certificate": str(pki.workstation.cert), "tls_private_key": str(pki.workstation.key),
        "tls_ca_certificates": str(pki.ca),
    }
    return StorageScpConfig(**{**settings, **changes})


def _storescu(port: int, file: Path, *tls: str, calling: str = "CT1") -> subprocess.CompletedProcess[str]:
    return subprocess.run(["storescu", *tls, "-aet", calling, "-aec", "RADSTATION", "127.0.0.1", str(port), str(file)],
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def one_file(tmp_path) -> tuple[Path, str]:  # type: ignore[no-untyped-def]
    ds = make_instance(SyntheticStudy(patient_id="TLS"), generate_uid(), size=64)
    path = tmp_path / "one.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path, ds.StudyInstanceUID


@needs_dcmtk
def test_storescu_with_a_site_certificate_is_accepted(pki, database, one_file) -> None:
    path, study = one_file
    with StorageScp(_tls_config(pki), ImportSink(database)) as scp:
        run = _storescu(scp.port, path, "+tls", str(pki.ct.key), str(pki.ct.cert), "+cf", str(pki.ca))
        assert run.returncode == 0, run.stderr
    assert len(local_sop_uids(database, study)) == 1


@needs_dcmtk
@pytest.mark.parametrize("case", ["plain tcp", "no client certificate", "certificate from another CA",
                                  "certificate of another device"])
def test_storescu_without_the_right_certificate_is_refused(pki, database, one_file, case) -> None:
    path, study = one_file
    tls = {
        "plain tcp": (),
        "no client certificate": ("+tla", "+cf", str(pki.ca)),
        "certificate from another CA": ("+tls", str(pki.rogue.key), str(pki.rogue.cert), "+cf", str(pki.ca)),
        "certificate of another device": ("+tls", str(pki.other.key), str(pki.other.cert), "+cf", str(pki.ca)),
    }[case]
    with StorageScp(_tls_config(pki), ImportSink(database)) as scp:
        run = _storescu(scp.port, path, *tls)
    assert run.returncode != 0, run.stdout
    assert local_sop_uids(database, study) == set()
    assert not any(p.suffix == ".dcm" for p in database.store_dir.rglob("*"))


def test_tls_settings_are_checked_before_listening(pki, tmp_path) -> None:
    bad = StorageScpConfig(tls=True, tls_certificate=str(tmp_path / "missing.crt"), tls_private_key="")
    problems = " | ".join(bad.problems())
    assert "missing.crt does not exist" in problems and "TLS private key file is not set" in problems
    assert "TLS CA certificates" in problems  # a client certificate is required unless a site turns it off


@pytest.fixture(scope="module")
def tls_orthanc(pki, tmp_path_factory):  # type: ignore[no-untyped-def]
    if not orthanc_available():
        pytest.skip("Orthanc is not installed")
    scp_port = free_port()
    server = start_orthanc(tmp_path_factory.mktemp("tls-orthanc"), aet="ORTHANC", extra_config={
        "DicomTlsEnabled": True,
        "DicomTlsCertificate": str(pki.orthanc.cert),
        "DicomTlsPrivateKey": str(pki.orthanc.key),
        "DicomTlsTrustedCertificates": str(pki.ca),
        "DicomTlsRemoteCertificateRequired": True,
        "DicomModalities": {"radstation": {"AET": "RADSTATION", "Host": "127.0.0.1", "Port": scp_port,
                                           "UseDicomTls": True}},
    })
    study = make_study("TLS-PAT", "SECURE^PATIENT", n_instances=4, seed=11)
    for ds in study:
        server.upload(ds)
    try:
        yield server, study, scp_port
    finally:
        server.stop()


def _tls_node(server, pki, **changes) -> PacsNode:  # type: ignore[no-untyped-def]
    node = PacsNode("secure", ae_title="ORTHANC", host="127.0.0.1", port=server.dicom_port, calling_ae="RADSTATION",
                    timeout=20, tls=True, tls_ca_certificates=str(pki.ca), tls_certificate=str(pki.workstation.cert),
                    tls_private_key=str(pki.workstation.key))
    return node.with_changes(**changes) if changes else node


def test_echo_and_c_get_over_mutual_tls_with_orthanc(tls_orthanc, pki, database) -> None:
    server, study, _ = tls_orthanc
    node = _tls_node(server, pki)
    assert "succeeded" in DimseClient(node).echo()
    result = RetrieveService(database, node).retrieve_study(study[0].StudyInstanceUID)
    assert result.state == "done" and result.imported == 4
    assert local_sop_uids(database, study[0].StudyInstanceUID) == {ds.SOPInstanceUID for ds in study}


def test_orthanc_refuses_us_without_a_client_certificate(tls_orthanc, pki) -> None:
    server, _, _ = tls_orthanc
    with pytest.raises(PacsError):
        DimseClient(_tls_node(server, pki, tls_certificate="", tls_private_key="")).echo()
    with pytest.raises(PacsConnectionError):  # and we refuse a PACS whose certificate our CAs did not sign
        DimseClient(_tls_node(server, pki, tls_ca_certificates=str(pki.rogue.cert))).echo()


def test_orthanc_pushes_to_our_scp_over_tls(tls_orthanc, pki, database) -> None:
    server, study, scp_port = tls_orthanc
    config = _tls_config(pki, port=scp_port)
    orthanc_id = next(s for s in server.rest("GET", "/studies?expand")
                      if s["MainDicomTags"]["StudyInstanceUID"] == study[0].StudyInstanceUID)["ID"]
    with StorageScp(config, ImportSink(database)):
        server.rest("POST", "/modalities/radstation/store", {"Resources": [orthanc_id], "Synchronous": True})
    assert local_sop_uids(database, study[0].StudyInstanceUID) == {ds.SOPInstanceUID for ds in study}
