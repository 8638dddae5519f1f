"""Storage SCP memory while it receives one large object: peak resident memory of the SCP process.

    python benchmarks/scp_memory.py [--mb 300] [--baseline /path/to/other/checkout]

Writes a `--mb` MB multi-frame CT, starts `radstation pacs scp` (this checkout, and `--baseline` if
given, each on its own SQLite database) in a child process, pushes the object with DCMTK `storescu`,
and samples the child's VmHWM/VmRSS from /proc while it runs. Prints the resident memory before the
push, the peak, and what the sender was told. Issue 20 measured the SCP growing from 109 MB to 1.29 GB
for a 300 MB object.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _big_ct(path: Path, mb: int) -> int:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    frames = max(1, mb * 1024 * 1024 // (1024 * 1024 * 2))
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = uid = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, uid
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.PatientName, ds.PatientID, ds.Modality = "BIG^OBJECT", "BIG1", "CT"
    ds.NumberOfFrames, ds.Rows, ds.Columns = frames, 1024, 1024
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.PixelData = np.random.default_rng(1).integers(-1000, 2000, (frames, 1024, 1024), dtype=np.int16).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path.stat().st_size


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _mem_kb(pid: int) -> dict[str, int]:
    out = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0])
    except OSError:
        pass
    return out


def _measure(code: Path, obj: Path, work: Path) -> dict:
    port = _free_port()
    env = dict(os.environ, PYTHONPATH=str(code), RADSTATION_HOME=str(work / "home"), OMP_NUM_THREADS="1")
    db = work / "scp.db"
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys; from app.cli import main; sys.exit(main())", "pacs", "scp",
         "--ae", "RADSTATION", "--port", str(port), "--bind", "127.0.0.1", "--accept", "CT1",
         "--db-url", f"sqlite:///{db}", "--seconds", "900", "--max-instances", "1"],
        cwd=code, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 300
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                out = proc.stdout.read() if proc.stdout else ""
                raise SystemExit(f"the SCP of {code} did not start: {out}") from None
            time.sleep(0.2)
    time.sleep(1.0)
    before = _mem_kb(proc.pid)
    sender = subprocess.Popen(["storescu", "-aet", "CT1", "-aec", "RADSTATION", "127.0.0.1", str(port), str(obj)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peak = before.get("VmHWM", 0)
    t0 = time.perf_counter()
    while proc.poll() is None:
        peak = max(peak, _mem_kb(proc.pid).get("VmHWM", 0))
        time.sleep(0.05)
        if time.perf_counter() - t0 > 900:
            proc.kill()
            break
    sender_out = sender.communicate(timeout=60)[0]
    elapsed = time.perf_counter() - t0
    status = "success" if sender.returncode == 0 else f"storescu exit {sender.returncode}: {sender_out.strip()[-200:]}"
    return {"code": str(code), "before_mb": before.get("VmRSS", 0) / 1024, "peak_mb": peak / 1024,
            "seconds": elapsed, "status": status}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=int, default=300)
    parser.add_argument("--baseline", type=Path, help="another checkout to measure the same way")
    args = parser.parse_args()
    if shutil.which("storescu") is None:
        print("DCMTK storescu is not installed (apt-get install dcmtk)", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="scp-memory-"))
    try:
        obj = work / "big.dcm"
        size = _big_ct(obj, args.mb)
        rows = []
        for code in ([args.baseline] if args.baseline else []) + [ROOT]:
            run_dir = work / f"run{len(rows)}"
            run_dir.mkdir()
            rows.append(_measure(code.resolve(), obj, run_dir))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\nStorage SCP receiving one {size / 2**20:.0f} MiB object from DCMTK storescu | "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}\n")
    print("| code | RSS before (MiB) | peak RSS (MiB) | seconds | sender told |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['code']} | {r['before_mb']:.0f} | {r['peak_mb']:.0f} | {r['seconds']:.1f} | {r['status']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
