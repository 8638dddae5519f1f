"""Where the client CPU of a C-GET into the database goes, per part of the receive path, beside getscu.

    python benchmarks/pacs_cpu_split.py [--slices 600] [--size 512] [--repeats 2] [--transport pynetdicom|dcmtk]

Starts a private Orthanc with a synthetic CT series (as benchmarks/pacs.py), then retrieves it by C-GET
into a fresh database `--repeats` times with the thread CPU time (time.thread_time) of each part summed
around the functions named in the table: pynetdicom's reactor thread and its DIMSE decoding, the staging
writes (with SHA-256), the delivery check's header probe, the batched commits, the C-FIND listing. Parts
nest (the table says which contain which); "process" is the whole process's CPU over the retrieve. DCMTK
getscu (TCP_NODELAY, 128 KiB PDU, to disk) runs in the same script as the reference. A profiling run:
the wrappers themselves cost a little; benchmarks/pacs.py gives the unwrapped speed.

`--transport dcmtk` splits the getscu transport (app.pacs.getscu) instead: the getscu child's CPU
(RUSAGE_CHILDREN), and in this process the restage (RadStation's file meta + the data set bytes, SHA-256),
the delivery check (structure walk, header read, header fields), the folder/log polling, the batched
commits and the listing. Client CPU = process + getscu child, as benchmarks/pacs.py counts it.
"""

from __future__ import annotations

import argparse
import collections
import functools
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pynetdicom.association as pn_association  # noqa: E402
import pynetdicom.dul as pn_dul  # noqa: E402
import pynetdicom.fsm as pn_fsm  # noqa: E402

import app.importer.probe as importer_probe  # noqa: E402
import app.importer.service as importer_service  # noqa: E402
import app.importer.store as importer_store  # noqa: E402
import app.pacs.dimse as pacs_dimse  # noqa: E402
import app.pacs.getscu as pacs_getscu  # noqa: E402
import app.pacs.receive as pacs_receive  # noqa: E402
import app.pacs.retrieve as pacs_retrieve  # noqa: E402
import app.pacs.scope as pacs_scope  # noqa: E402
import app.pacs.sink as pacs_sink  # noqa: E402
from app.db.database import Database  # noqa: E402
from app.pacs.nodes import PacsNode  # noqa: E402
from app.pacs.retrieve import RetrieveService  # noqa: E402
from benchmarks.pacs import _children_cpu, _getscu  # noqa: E402
from tests.support.orthanc_fixture import make_study, orthanc_available, start_orthanc  # noqa: E402

CPU: collections.Counter[str] = collections.Counter()
_busy: set[tuple[int, str]] = set()

# (module or class, attribute, label): a part is counted once per thread even when it recurses
PARTS = [
    (pn_dul.DULServiceProvider, "run_reactor", "pynetdicom reactor thread (all of it)"),
    (pn_fsm.StateMachine, "do_action", "  state machine: P-DATA to DIMSE messages (command sets decoded)"),
    (pacs_receive.StreamingReceiver, "data_fragment", "  staging file writes + SHA-256"),
    (pacs_dimse.DimseClient, "_run_retrieve", "C-GET response loop (association thread)"),
    (pn_association.Association, "_c_store_scp", "  C-STORE sub-operations, handler included"),
    (pacs_scope, "vet_delivery", "    delivery check: header probe (issue 20)"),
    (pacs_sink.BatchingImporter, "put_staged", "    hand-over to the import thread"),
    (pacs_sink.BatchingImporter, "_run", "import thread: batched commits"),
    (pacs_dimse.DimseClient, "find_instances", "C-FIND listing of the study's instances"),
    (pacs_retrieve, "local_sop_uids", "local instances (resume), before and after"),
]

# The listing runs before anything else of the retrieve starts, so the process CPU over it is its own:
# the calling thread plus pynetdicom's reactor thread, which decodes the C-FIND responses.
LISTING_DCMTK = "C-FIND listing of the study's instances (pynetdicom; process CPU: its reactor thread too)"
PROCESS_WIDE = {LISTING_DCMTK}

# the getscu transport: this process's side of it (the child's CPU is added from RUSAGE_CHILDREN)
PARTS_DCMTK = [
    (pacs_dimse.DimseClient, "find_instances", LISTING_DCMTK),
    (pacs_retrieve, "local_sop_uids", "local instances (resume), before and after"),
    (pacs_getscu.GetscuRetriever, "get", "getscu transport, this thread (all of it)"),
    (pacs_getscu._Log, "read", "  reading getscu's log"),
    (pacs_getscu, "_complete", "  finished-file choice (sort by mtime, stat)"),
    (pacs_getscu, "accept_file", "  per file: restage + delivery check"),
    (pacs_getscu, "stage_received_file", "    restage: file meta + data set bytes, SHA-256"),
    (pacs_getscu, "vet_delivery", "    delivery check (issue 20)"),
    (importer_probe, "check_buffer", "      structure walk (integrity)"),
    (importer_probe.pydicom, "dcmread", "      pydicom header read"),
    (importer_probe.InstanceHeader, "from_dataset", "      header fields (InstanceHeader)"),
    (pacs_sink.BatchingImporter, "put_staged", "  hand-over to the import thread"),
    (pacs_sink.BatchingImporter, "_run", "import thread (all of it)"),
    (importer_service.ImportService, "examine_staged", "  examine (header already probed)"),
    (importer_store.ManagedStore, "place", "  placing files (hard link; folders made when new)"),
    (importer_service.Committer, "_transaction", "  database transaction"),
]


def _instrument(parts: list) -> None:
    for owner, name, label in parts:
        fn = getattr(owner, name)
        wrap_static = isinstance(owner, type) and isinstance(owner.__dict__.get(name), classmethod)

        clock = time.process_time if label in PROCESS_WIDE else time.thread_time

        @functools.wraps(fn)
        def timed(*args, __fn=fn, __label=label, __clock=clock, **kwargs):  # noqa: ANN002, ANN003, ANN202
            key = (threading.get_ident(), __label)
            if key in _busy:
                return __fn(*args, **kwargs)
            _busy.add(key)
            t0 = __clock()
            try:
                return __fn(*args, **kwargs)
            finally:
                CPU[__label] += __clock() - t0
                _busy.discard(key)

        setattr(owner, name, staticmethod(timed) if wrap_static else timed)
    pacs_dimse.vet_delivery = pacs_scope.vet_delivery  # imported by name there


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slices", type=int, default=600)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--transport", choices=("pynetdicom", "dcmtk"), default="pynetdicom")
    args = parser.parse_args()
    if not orthanc_available():
        print("Orthanc is not installed (apt-get install orthanc orthanc-dicomweb)", file=sys.stderr)
        return 2
    os.environ.setdefault("RADSTATION_HOME", tempfile.mkdtemp(prefix="radstation-bench-"))
    parts = PARTS_DCMTK if args.transport == "dcmtk" else PARTS
    _instrument(parts)
    work = Path(tempfile.mkdtemp(prefix="pacs-split-"))
    server = start_orthanc(work / "orthanc")
    runs: list[dict[str, float]] = []
    refs: list[tuple[float, float]] = []
    try:
        study = make_study("BENCH", "BENCH^CT", n_instances=args.slices, rows=args.size, columns=args.size)
        for ds in study:
            server.upload(ds)
        uid = study[0].StudyInstanceUID
        del study
        node = PacsNode("bench", ae_title=server.aet, host="127.0.0.1", port=server.dicom_port,
                        calling_ae=server.client_aet, timeout=120)
        for _ in range(args.repeats):
            if shutil.which("getscu"):
                seconds, cpu, n = _getscu(server, uid, work)
                if n != args.slices:
                    raise SystemExit(f"getscu got {n} of {args.slices}")
                refs.append((seconds, cpu))
            db_dir = Path(tempfile.mkdtemp(dir=work))
            database = Database.open(f"sqlite:///{db_dir / 'bench.db'}", store_dir=db_dir / "store")
            CPU.clear()
            c0, k0, t0 = time.process_time(), _children_cpu(), time.perf_counter()
            result = RetrieveService(database, node, cget_transport=args.transport).retrieve_study(uid)
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            child = _children_cpu() - k0
            database.dispose()
            shutil.rmtree(db_dir, ignore_errors=True)
            if result.state != "done" or result.imported != args.slices:
                raise SystemExit(f"retrieval did not complete: {result.message}")
            runs.append({**CPU, "process": cpu, "child": child, "client": cpu + child, "wall": wall})
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)

    def med(key: str) -> float:
        return statistics.median(r.get(key, 0.0) for r in runs)

    print(f"\nC-GET of {args.slices} CT slices {args.size}^2 from a local Orthanc into a fresh SQLite database, "
          f"median of {args.repeats} | {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}\n")
    print("| part (thread CPU s unless it says otherwise, nested parts indented) | CPU s | ms per instance | "
          "share of process CPU |")
    print("|---|---:|---:|---:|")
    total = med("process")
    for _owner, _name, label in parts:
        value = med(label)
        print(f"| {label.replace('  ', '&nbsp;&nbsp;')} | {value:.3f} | {1000 * value / args.slices:.2f} | "
              f"{100 * value / total:.0f}% |")
    print(f"| **process CPU over the retrieve** | **{total:.3f}** | {1000 * total / args.slices:.2f} | 100% |")
    if args.transport == "dcmtk":
        child, client = med("child"), med("client")
        print(f"| getscu child (RUSAGE_CHILDREN) | {child:.3f} | {1000 * child / args.slices:.2f} | "
              f"{100 * child / total:.0f}% |")
        print(f"| **client CPU (process + getscu child)** | **{client:.3f}** | {1000 * client / args.slices:.2f} | |")
        total = client
    print(f"| wall s (instances/s) | {med('wall'):.2f} | ({args.slices / med('wall'):.0f}/s) | |")
    if refs:
        ref_wall = statistics.median(r[0] for r in refs)
        ref_cpu = statistics.median(r[1] for r in refs)
        print(f"| DCMTK getscu, same run: CPU s | {ref_cpu:.3f} | {1000 * ref_cpu / args.slices:.2f} | "
              f"{100 * ref_cpu / total:.0f}% |")
        print(f"| DCMTK getscu: wall s (instances/s) | {ref_wall:.2f} | ({args.slices / ref_wall:.0f}/s) | |")
        print(f"\nRadStation vs getscu: speed {ref_wall / med('wall'):.2f}x, client CPU {total / ref_cpu:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
