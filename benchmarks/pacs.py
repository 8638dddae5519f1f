"""PACS retrieval speed: instances per second pulling one CT series from a local Orthanc.

    python benchmarks/pacs.py [--slices 600] [--size 128] [--repeats 3]

Starts a private Orthanc (Debian package + DICOMweb plugin, as the tests do), stores a synthetic
`--slices`-image CT series of `--size`x`--size` 16-bit slices, then times, for C-GET and WADO-RS:
  * "into DB": the real path, every instance imported into a fresh SQLite database + managed store;
  * "network only": the same transfer with instances decoded and dropped (what the wire allows).
Prints a markdown table (median of --repeats runs) with the machine it ran on.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.append(str(ROOT / "tests"))  # the Orthanc launcher and study generator shared with the tests

from orthanc_fixture import make_study, orthanc_available, start_orthanc  # noqa: E402

from app.db.database import Database  # noqa: E402
from app.pacs.dicomweb import DicomWebClient  # noqa: E402
from app.pacs.dimse import DimseClient  # noqa: E402
from app.pacs.nodes import PacsNode  # noqa: E402
from app.pacs.retrieve import RetrieveService  # noqa: E402


def _nodes(server) -> dict[str, PacsNode]:
    return {
        "C-GET": PacsNode("bench", ae_title=server.aet, host="127.0.0.1", port=server.dicom_port,
                          calling_ae=server.client_aet, timeout=120),
        "WADO-RS": PacsNode("bench-web", protocol="dicomweb", url=server.dicomweb_url, timeout=120),
    }


def _into_db(node: PacsNode, study_uid: str, work: Path) -> tuple[float, int]:
    db_dir = Path(tempfile.mkdtemp(dir=work))
    database = Database.open(f"sqlite:///{db_dir / 'bench.db'}", store_dir=db_dir / "store")
    try:
        t0 = time.perf_counter()
        result = RetrieveService(database, node).retrieve_study(study_uid)
        elapsed = time.perf_counter() - t0
        if result.state != "done":
            raise SystemExit(f"retrieval did not complete: {result.message}")
        return elapsed, result.imported
    finally:
        database.dispose()
        shutil.rmtree(db_dir, ignore_errors=True)


def _network_only(node: PacsNode, study_uid: str) -> tuple[float, int]:
    count = {"n": 0}

    def drop(ds) -> None:
        _ = ds.SOPInstanceUID  # the dataset is decoded as far as the importer would need
        count["n"] += 1

    t0 = time.perf_counter()
    if node.protocol == "dicomweb":
        client = DicomWebClient(node)
        everything = client.find_instances(study_uid)
        client.retrieve(study_uid, everything, everything, drop)
    else:
        client = DimseClient(node)
        everything = client.find_instances(study_uid)
        client.get(DimseClient.retrieve_identifiers(study_uid, None, everything), drop,
                   sop_classes=[i.sop_class_uid for i in everything])
    return time.perf_counter() - t0, count["n"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slices", type=int, default=600)
    parser.add_argument("--size", type=int, default=128, help="rows = columns of each slice")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if not orthanc_available():
        print("Orthanc is not installed (apt-get install orthanc orthanc-dicomweb)", file=sys.stderr)
        return 2
    os.environ.setdefault("RADSTATION_HOME", tempfile.mkdtemp(prefix="radstation-bench-"))
    work = Path(tempfile.mkdtemp(prefix="pacs-bench-"))
    server = start_orthanc(work / "orthanc")
    try:
        study = make_study("BENCH", "BENCH^CT", n_instances=args.slices, rows=args.size, columns=args.size)
        t0 = time.perf_counter()
        for ds in study:
            server.upload(ds)
        upload_s = time.perf_counter() - t0
        uid = study[0].StudyInstanceUID
        mb = sum(len(ds.PixelData) for ds in study) / 1e6
        print(f"stored {len(study)} slices {args.size}x{args.size} int16 ({mb:.1f} MB of pixels) into Orthanc "
              f"in {upload_s:.1f} s", file=sys.stderr)
        rows = []
        for name, node in _nodes(server).items():
            for mode, fn in (("into DB", lambda n=node: _into_db(n, uid, work)),
                             ("network only", lambda n=node: _network_only(n, uid))):
                times = []
                for _ in range(args.repeats):
                    seconds, n = fn()
                    if n != args.slices:
                        raise SystemExit(f"{name} {mode}: got {n} of {args.slices} instances")
                    times.append(seconds)
                med = statistics.median(times)
                rows.append((name, mode, med, min(times), args.slices / med, mb / med))
                print(f"{name} {mode}: {med:.2f} s", file=sys.stderr)
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    cpu = platform.processor() or platform.machine()
    print(f"\nPACS retrieval from local Orthanc 1.x on 127.0.0.1 | {args.slices} CT slices {args.size}x{args.size} "
          f"16-bit ({mb:.1f} MB pixels) | median of {args.repeats} | {cpu}, {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}\n")
    print("| method | path | median s | min s | instances/s | MB/s (pixels) |")
    print("|---|---|---|---|---|---|")
    for name, mode, med, best, ips, mbs in rows:
        print(f"| {name} | {mode} | {med:.2f} | {best:.2f} | {ips:.0f} | {mbs:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
