"""PACS retrieval speed: instances per second and client CPU pulling one CT series from a local Orthanc.

    python benchmarks/pacs.py [--slices 600] [--size 512] [--repeats 3] [--client-max-pdu N] [--orthanc-max-pdu N]
                              [--transport pynetdicom,dcmtk,auto] [--cget-only]

Starts a private Orthanc (Debian package + DICOMweb plugin, as the tests do), stores a synthetic
`--slices`-image CT series of `--size`x`--size` 16-bit slices, then times, for C-GET and WADO-RS:
  * "into DB": the real path, every instance imported into a fresh SQLite database + managed store;
  * "network only": the same transfer with instances decoded and dropped (what the wire allows);
  * DCMTK `getscu` (when installed), tuned: TCP_NODELAY=1 and its largest PDU, writing files to disk -
    the reference issue 27 measures against (target: >= 0.8x its instances/s into the database, <= 2x
    its client CPU). Client CPU is this process's CPU time for RadStation, the child's for getscu.
`--client-max-pdu` replaces the maximum PDU size RadStation advertises for C-GET (default
app.pacs.dimse.CLIENT_MAX_PDU, 4 MiB), `--orthanc-max-pdu` sets Orthanc's MaximumPduLength (4096-131072):
the A/B of issue 27's PDU lever. The table header says how large the P-DATA fragments Orthanc actually
sent were (counted on the "into DB" C-GET runs).
`--transport` lists the C-GET transports of the "into DB" rows (app.pacs.getscu: pynetdicom, DCMTK's getscu
driven by RadStation, or auto: getscu giving way to pynetdicom when small instances stall); for the getscu transport the client CPU is this process's plus the getscu
child's (RUSAGE_CHILDREN), both counted. `--cget-only` leaves out WADO-RS and the "network only" rows.
Repeats are interleaved (one run of each row, then the next round), so load changes hit every row alike.
Prints a markdown table (median of --repeats runs) with the machine it ran on and the load before/after.
"""

from __future__ import annotations

import argparse
import collections
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import app.pacs.dimse as pacs_dimse  # noqa: E402
import app.pacs.receive as pacs_receive  # noqa: E402
from app.db.database import Database  # noqa: E402
from app.pacs.dicomweb import DicomWebClient  # noqa: E402
from app.pacs.dimse import DimseClient  # noqa: E402
from app.pacs.nodes import PacsNode  # noqa: E402
from app.pacs.retrieve import RetrieveService  # noqa: E402
from tests.support.orthanc_fixture import make_study, orthanc_available, start_orthanc  # noqa: E402

FRAGMENTS: collections.Counter[int] = collections.Counter()  # data-set fragment bytes -> count


def _count_fragments() -> None:
    """Count the size of every C-STORE data-set fragment the streaming receiver is handed (one per P-DATA
    PDV): that is the PDU size the PACS really sends, whatever we advertised."""
    original = pacs_receive.StreamingReceiver.data_fragment

    def counted(self, message, assoc, context_id, payload, last) -> None:  # type: ignore[no-untyped-def]
        FRAGMENTS[len(payload)] += 1
        original(self, message, assoc, context_id, payload, last)

    pacs_receive.StreamingReceiver.data_fragment = counted  # type: ignore[method-assign]


def _nodes(server) -> dict[str, PacsNode]:
    return {
        "C-GET": PacsNode("bench", ae_title=server.aet, host="127.0.0.1", port=server.dicom_port,
                          calling_ae=server.client_aet, timeout=120),
        "WADO-RS": PacsNode("bench-web", protocol="dicomweb", url=server.dicomweb_url, timeout=120),
    }


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _into_db(node: PacsNode, study_uid: str, work: Path, transport: str = "pynetdicom") -> tuple[float, float, int]:
    """The real retrieve into a fresh database; CPU = this process + any getscu child it ran."""
    db_dir = Path(tempfile.mkdtemp(dir=work))
    database = Database.open(f"sqlite:///{db_dir / 'bench.db'}", store_dir=db_dir / "store")
    try:
        service = RetrieveService(database, node, cget_transport=transport)
        c0, k0, t0 = time.process_time(), _children_cpu(), time.perf_counter()
        result = service.retrieve_study(study_uid)
        elapsed = time.perf_counter() - t0
        cpu = (time.process_time() - c0) + (_children_cpu() - k0)
        if result.state != "done":
            raise SystemExit(f"retrieval did not complete: {result.message}")
        return elapsed, cpu, result.imported
    finally:
        database.dispose()
        shutil.rmtree(db_dir, ignore_errors=True)


def _getscu(server, study_uid: str, work: Path) -> tuple[float, float, int]:
    """DCMTK's C-GET SCU, tuned (no Nagle delay, largest PDU), storing files to a fresh folder."""
    out = Path(tempfile.mkdtemp(dir=work))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    run = subprocess.run(
        ["getscu", "-aet", server.client_aet, "-aec", server.aet, "-pdu", "131072", "-k", "0008,0052=STUDY",
         "-k", f"0020,000D={study_uid}", "-od", str(out), "127.0.0.1", str(server.dicom_port)],
        capture_output=True, text=True, env=dict(os.environ, TCP_NODELAY="1"), check=False)
    elapsed = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if run.returncode != 0:
        raise SystemExit(f"getscu failed: {run.stderr[-500:]}")
    n = sum(1 for p in out.iterdir() if p.is_file())
    shutil.rmtree(out, ignore_errors=True)
    return elapsed, (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime), n


def _network_only(node: PacsNode, study_uid: str) -> tuple[float, float, int]:
    count = {"n": 0}

    def drop(ds) -> None:
        _ = ds.SOPInstanceUID  # the dataset is decoded as far as the importer would need
        count["n"] += 1

    c0, t0 = time.process_time(), time.perf_counter()
    if node.protocol == "dicomweb":
        client = DicomWebClient(node)
        everything = client.find_instances(study_uid)
        client.retrieve(study_uid, everything, everything, drop)
    else:
        client = DimseClient(node)
        everything = client.find_instances(study_uid)
        client.get(DimseClient.retrieve_identifiers(study_uid, None, everything), drop,
                   sop_classes=[i.sop_class_uid for i in everything])
    return time.perf_counter() - t0, time.process_time() - c0, count["n"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slices", type=int, default=600)
    parser.add_argument("--size", type=int, default=512, help="rows = columns of each slice")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--client-max-pdu", type=int, default=pacs_dimse.CLIENT_MAX_PDU,
                        help="maximum PDU size RadStation advertises for C-GET (0 = unlimited)")
    parser.add_argument("--orthanc-max-pdu", type=int, default=None,
                        help="Orthanc's MaximumPduLength (4096-131072; default: Orthanc's own, 16384)")
    parser.add_argument("--transport", default="pynetdicom,dcmtk",
                        help="comma-separated C-GET transports for the 'into DB' rows (pynetdicom, dcmtk, auto)")
    parser.add_argument("--cget-only", action="store_true", help="leave out WADO-RS and the network-only rows")
    args = parser.parse_args()
    pacs_dimse.CLIENT_MAX_PDU = args.client_max_pdu
    _count_fragments()
    if not orthanc_available():
        print("Orthanc is not installed (apt-get install orthanc orthanc-dicomweb)", file=sys.stderr)
        return 2
    os.environ.setdefault("RADSTATION_HOME", tempfile.mkdtemp(prefix="radstation-bench-"))
    work = Path(tempfile.mkdtemp(prefix="pacs-bench-"))
    extra = {"MaximumPduLength": args.orthanc_max_pdu} if args.orthanc_max_pdu else None
    server = start_orthanc(work / "orthanc", extra_config=extra)
    have_getscu = shutil.which("getscu") is not None
    try:
        study = make_study("BENCH", "BENCH^CT", n_instances=args.slices, rows=args.size, columns=args.size)
        t0 = time.perf_counter()
        for ds in study:
            server.upload(ds)
        upload_s = time.perf_counter() - t0
        uid = study[0].StudyInstanceUID
        mb = sum(len(ds.PixelData) for ds in study) / 1e6
        del study
        print(f"stored {args.slices} slices {args.size}x{args.size} int16 ({mb:.1f} MB of pixels) into Orthanc "
              f"in {upload_s:.1f} s", file=sys.stderr)
        runs: list[tuple[str, str, object]] = []
        if have_getscu:
            runs.append(("C-GET", "DCMTK getscu to disk (TCP_NODELAY, 128 KiB PDU)", lambda: _getscu(server, uid, work)))
        transports = [t.strip() for t in args.transport.split(",") if t.strip()]
        for name, node in _nodes(server).items():
            if name == "C-GET":
                for transport in transports:
                    runs.append((name, f"RadStation into DB ({transport})",
                                 lambda n=node, t=transport: _into_db(n, uid, work, t)))
            elif not args.cget_only:
                runs.append((name, "RadStation into DB", lambda n=node: _into_db(n, uid, work)))
            if not args.cget_only:
                runs.append((name, "RadStation network only", lambda n=node: _network_only(n, uid)))
        load_before = os.getloadavg()[0]
        times: dict[int, list[float]] = collections.defaultdict(list)
        cpus: dict[int, list[float]] = collections.defaultdict(list)
        for _ in range(args.repeats):  # interleaved: every row sees the same load changes
            for i, (name, mode, fn) in enumerate(runs):
                seconds, cpu, n = fn()  # type: ignore[operator]
                if n != args.slices:
                    raise SystemExit(f"{name} {mode}: got {n} of {args.slices} instances")
                times[i].append(seconds)
                cpus[i].append(cpu)
                print(f"{name} {mode}: {seconds:.2f} s, CPU {cpu:.2f} s", file=sys.stderr)
        rows = []
        for i, (name, mode, _fn) in enumerate(runs):
            med, cpu = statistics.median(times[i]), statistics.median(cpus[i])
            rows.append((name, mode, med, min(times[i]), args.slices / med, cpu))
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    ref = next((r for r in rows if r[1].startswith("DCMTK")), None)
    cpu = platform.processor() or platform.machine()
    print(f"\nPACS retrieval from local Orthanc 1.x on 127.0.0.1 | {args.slices} CT slices {args.size}x{args.size} "
          f"16-bit ({mb:.1f} MB pixels) | median of {args.repeats} | {cpu}, {os.cpu_count()} CPUs, "
          f"load {load_before:.1f} before, {os.getloadavg()[0]:.1f} after, Python {platform.python_version()}")
    common = ", ".join(f"{size} B x {n}" for size, n in FRAGMENTS.most_common(2))
    print(f"RadStation advertises max PDU {args.client_max_pdu}, Orthanc MaximumPduLength "
          f"{args.orthanc_max_pdu or 'default'}; C-STORE data fragments received (most common): {common}\n")
    print("| method | path | median s | min s | instances/s | client CPU s | vs getscu: speed | vs getscu: CPU |")
    print("|---|---|---|---|---|---|---|---|")
    for name, mode, med, best, ips, cpu_s in rows:
        speed = f"{ips / ref[4]:.2f}x" if ref else "-"
        cpu_ratio = f"{cpu_s / ref[5]:.2f}x" if ref and ref[5] > 0 else "-"
        print(f"| {name} | {mode} | {med:.2f} | {best:.2f} | {ips:.0f} | {cpu_s:.2f} | {speed} | {cpu_ratio} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
