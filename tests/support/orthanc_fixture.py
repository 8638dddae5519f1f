"""A real Orthanc PACS for tests (Debian's `Orthanc` binary + its DICOMweb plugin).

Loaded by tests/conftest.py as a pytest plugin. The session-scoped fixture `orthanc` yields a running
`OrthancServer`; `start_orthanc(workdir)` starts a private one (for tests that must stop it, e.g. a PACS
going away mid-transfer). Both ports are bound on all interfaces by Orthanc; tests talk to 127.0.0.1 only.

Interface (kept stable: other helpers use it):
  server.aet, server.host, server.dicom_port, server.http_port, server.http_url, server.dicomweb_url
  server.client_aet / server.client_port: an AE registered in DicomModalities (C-MOVE destination)
  server.clear() / server.reset(): delete every patient (empty PACS)
  server.upload(ds_or_bytes_or_path) -> Orthanc instance id (REST POST /instances)
  server.add_modality(name, aet, port, host="127.0.0.1"): register a peer at run time
  server.study_uids() -> list[str]; server.instance_count() -> int
  server.rest(method, path, body=None) -> decoded JSON (or bytes)
  server.stop(kill=False); server.running -> bool
  make_study(patient_id, ...) -> list[pydicom.Dataset]: a small synthetic study to store into it
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

ORTHANC_EXE = "Orthanc"
DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
CLIENT_AET = "RADTEST"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class OrthancServer:
    """A running Orthanc process and the few REST helpers tests need."""

    process: subprocess.Popen
    workdir: Path
    aet: str
    dicom_port: int
    http_port: int
    client_aet: str
    client_port: int
    host: str = "127.0.0.1"
    log_path: Path = field(default=Path())

    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.http_port}"

    @property
    def dicomweb_url(self) -> str:
        return f"{self.http_url}/dicom-web"

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def rest(self, method: str, path: str, body: bytes | dict | list | str | None = None) -> Any:
        data: bytes | None
        headers = {}
        if isinstance(body, dict | list):
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        elif isinstance(body, str):
            data = body.encode()
        else:
            data = body
        if data is not None and "Content-Type" not in headers:
            headers["Content-Type"] = "application/dicom" if path == "/instances" else "text/plain"
        req = urllib.request.Request(self.http_url + path, data=data, method=method, headers=headers)
        with urllib.request.urlopen(req, timeout=30) as resp:
            raw = resp.read()
            if "json" in resp.headers.get("Content-Type", ""):
                return json.loads(raw or b"null")
            return raw

    def upload(self, item: Any) -> str:
        """Store one instance (pydicom Dataset, encoded bytes or a file path); returns Orthanc's id."""
        if isinstance(item, bytes | bytearray):
            data = bytes(item)
        elif isinstance(item, str | Path):
            data = Path(item).read_bytes()
        else:
            buf = io.BytesIO()
            item.save_as(buf, enforce_file_format=True)
            data = buf.getvalue()
        return self.rest("POST", "/instances", data)["ID"]

    def clear(self) -> None:
        """Delete every patient, leaving an empty PACS (modalities stay registered)."""
        for pid in self.rest("GET", "/patients"):
            self.rest("DELETE", f"/patients/{pid}")

    reset = clear

    def add_modality(self, name: str, aet: str, port: int, host: str = "127.0.0.1") -> None:
        """Register a DICOM peer (needed before Orthanc will C-MOVE / push to it)."""
        self.rest("PUT", f"/modalities/{name}", {"AET": aet, "Host": host, "Port": port})

    def study_uids(self) -> list[str]:
        out = []
        for sid in self.rest("GET", "/studies"):
            out.append(self.rest("GET", f"/studies/{sid}")["MainDicomTags"]["StudyInstanceUID"])
        return sorted(out)

    def instance_count(self) -> int:
        return int(self.rest("GET", "/statistics")["CountInstances"])

    def stop(self, kill: bool = False) -> None:
        """SIGTERM (clean, ~3 s) or SIGKILL (abrupt: a PACS that vanishes)."""
        if not self.running:
            return
        self.process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)


def make_study(
    patient_id: str,
    patient_name: str = "TEST^PATIENT",
    *,
    study_uid: str | None = None,
    modality: str = "CT",
    study_date: str = "20240101",
    accession: str = "",
    description: str = "Synthetic study",
    n_series: int = 1,
    n_instances: int = 3,
    rows: int = 16,
    columns: int = 16,
    seed: int = 0,
) -> list[Dataset]:
    """A small but complete CT-style study (16-bit monochrome slices) that Orthanc and pydicom accept."""
    rng = np.random.default_rng(seed)
    study_uid = study_uid or generate_uid()
    out: list[Dataset] = []
    for s in range(n_series):
        series_uid = generate_uid()
        for i in range(n_instances):
            ds = Dataset()
            ds.file_meta = FileMetaDataset()
            ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
            sop_uid = generate_uid()
            ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
            ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
            ds.SOPClassUID = CTImageStorage
            ds.SOPInstanceUID = sop_uid
            ds.PatientName = patient_name
            ds.PatientID = patient_id
            ds.PatientBirthDate = "19700101"
            ds.PatientSex = "O"
            ds.StudyInstanceUID = study_uid
            ds.StudyDate = study_date
            ds.StudyTime = "120000"
            ds.AccessionNumber = accession
            ds.StudyDescription = description
            ds.StudyID = "1"
            ds.ReferringPhysicianName = ""
            ds.SeriesInstanceUID = series_uid
            ds.SeriesNumber = s + 1
            ds.SeriesDescription = f"Series {s + 1}"
            ds.Modality = modality
            ds.InstanceNumber = i + 1
            ds.ImagePositionPatient = [0.0, 0.0, float(i)]
            ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
            ds.PixelSpacing = [0.5, 0.5]
            ds.SliceThickness = 1.0
            ds.FrameOfReferenceUID = study_uid + ".1" if len(study_uid) < 60 else generate_uid()
            ds.SamplesPerPixel = 1
            ds.PhotometricInterpretation = "MONOCHROME2"
            ds.Rows = rows
            ds.Columns = columns
            ds.BitsAllocated = 16
            ds.BitsStored = 16
            ds.HighBit = 15
            ds.PixelRepresentation = 1
            ds.RescaleIntercept = 0
            ds.RescaleSlope = 1
            ds.PixelData = rng.integers(-1000, 1000, size=(rows, columns), dtype=np.int16).tobytes()
            out.append(ds)
    return out


def orthanc_available() -> bool:
    return shutil.which(ORTHANC_EXE) is not None and DICOMWEB_PLUGIN.exists()


def start_orthanc(
    workdir: Path,
    aet: str = "ORTHANC",
    client_aet: str = CLIENT_AET,
    client_port: int | None = None,
    extra_config: dict | None = None,
) -> OrthancServer:
    """Start Orthanc with a throw-away config and storage in `workdir`; waits until REST answers."""
    exe = shutil.which(ORTHANC_EXE)
    if exe is None or not DICOMWEB_PLUGIN.exists():
        raise RuntimeError("Orthanc or its DICOMweb plugin is not installed (apt-get install orthanc orthanc-dicomweb)")
    workdir.mkdir(parents=True, exist_ok=True)
    http_port, dicom_port = _free_port(), _free_port()
    while dicom_port == http_port:
        dicom_port = _free_port()
    client_port = client_port or _free_port()
    config = {
        "Name": "RadStationTestPACS",
        "StorageDirectory": str(workdir / "storage"),
        "IndexDirectory": str(workdir / "index"),
        "Plugins": [str(DICOMWEB_PLUGIN)],
        "HttpPort": http_port,
        "DicomPort": dicom_port,
        "DicomAet": aet,
        "DicomCheckCalledAet": True,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "DicomAlwaysAllowEcho": True,
        "DicomAlwaysAllowStore": True,
        "DicomAlwaysAllowFind": True,
        "DicomAlwaysAllowGet": True,
        "DicomAlwaysAllowMove": True,
        "DicomModalities": {"radtest": [client_aet, "127.0.0.1", client_port]},
        "DicomScuTimeout": 10,
        "StorageCompression": False,
        "SaveJobs": False,
        "HttpsVerifyPeers": False,
        "StorageAccessOnFind": "Always",
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "EnableWado": True},
    }
    config.update(extra_config or {})
    cfg_path = workdir / "orthanc.json"
    cfg_path.write_text(json.dumps(config, indent=2))
    log_path = workdir / "orthanc.log"
    log = open(log_path, "wb")  # noqa: SIM115 - owned by the child for its lifetime
    proc = subprocess.Popen([exe, str(cfg_path)], stdout=log, stderr=subprocess.STDOUT, cwd=workdir)
    log.close()
    server = OrthancServer(proc, workdir, aet, dicom_port, http_port, client_aet, client_port, log_path=log_path)
    deadline = time.monotonic() + 30
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"Orthanc exited at start:\n{log_path.read_text(errors='replace')[-3000:]}")
        try:
            server.rest("GET", "/system")
            break
        except urllib.error.HTTPError:
            break  # it answers (401 when a test enabled authentication): it is up
        except (urllib.error.URLError, ConnectionError, OSError):
            if time.monotonic() > deadline:
                server.stop(kill=True)
                raise RuntimeError("Orthanc did not answer within 30 s") from None
            time.sleep(0.05)
    # the DICOM port opens alongside HTTP; wait until it accepts too
    while True:
        try:
            with socket.create_connection(("127.0.0.1", dicom_port), timeout=1):
                break
        except OSError:
            if time.monotonic() > deadline:
                server.stop(kill=True)
                raise RuntimeError("Orthanc's DICOM port did not open") from None
            time.sleep(0.05)
    return server


@pytest.fixture(scope="session")
def orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OrthancServer]:
    """One Orthanc for the whole session; call `orthanc.clear()` for an empty PACS. Skips without Orthanc."""
    if not orthanc_available():
        pytest.skip("Orthanc is not installed (apt-get install orthanc orthanc-dicomweb)")
    server = start_orthanc(tmp_path_factory.mktemp("orthanc"))
    try:
        yield server
    finally:
        server.stop()
        if os.environ.get("RADSTATION_KEEP_ORTHANC_LOG"):
            print(server.log_path.read_text(errors="replace"))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that use the `orthanc` fixture get the `orthanc` marker, so `-m "not orthanc"` skips them."""
    for item in items:
        if "orthanc" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.orthanc)
