"""Viewport paint cost (W/L change and scrolling) in a 1200x1000 viewport, offscreen. A timing script,
not a test: it prints a table (median over repeats, sizes, machine).

usage: QT_QPA_PLATFORM=offscreen .venv/bin/python tests/viewer/widgets/bench_viewport.py [WORKDIR]
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from PySide6.QtWidgets import QApplication

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))  # the checkout: tests.support
from tests.support.widget_samples import write_ct_series  # noqa: E402
from viewer.imaging.window import WindowLevel  # noqa: E402
from viewer.io.refs import SeriesRef  # noqa: E402
from viewer.widgets.viewport import Viewport  # noqa: E402


def write_cr(path: Path, size: int = 3000) -> Path:
    meta = FileMetaDataset()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality = "CR"
    ds.Rows = ds.Columns = size
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = np.random.default_rng(0).integers(0, 4096, (size, size)).astype(np.uint16).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def timed(fn, repeats: int) -> list[float]:
    out = []
    for i in range(repeats):
        t = time.perf_counter()
        fn(i)
        out.append((time.perf_counter() - t) * 1000)
    return out


def main() -> None:
    work = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/radstation_bench_viewport")
    work.mkdir(parents=True, exist_ok=True)
    app = QApplication.instance() or QApplication([])
    vp = Viewport()
    vp.resize(1200, 1000)
    vp.show()
    app.processEvents()
    rows = []
    cr = work / "cr.dcm"
    if not cr.exists():
        write_cr(cr)
    t = time.perf_counter()
    vp.set_series(SeriesRef("cr", "CR", "", 1, (cr,)))
    vp.repaint()
    rows.append(("CR 3000x3000 16-bit", "first image shown", (time.perf_counter() - t) * 1000, 1))

    def wl_cr(i: int) -> None:
        vp.set_window(WindowLevel(2048 + i * 10, 3000 - i * 20))
        vp.repaint()

    rows.append(("CR 3000x3000 16-bit", "W/L change + repaint", statistics.median(timed(wl_cr, 30)), 30))
    ct_dir = work / "ct"
    ct = write_ct_series(ct_dir, n=40, rows=512, cols=512) if not ct_dir.exists() else SeriesRef(
        "ct", "CT", "", 1, tuple(sorted(ct_dir.glob("*.dcm"))))
    vp.set_series(ct)
    vp.repaint()
    rows.append(("CT 512x512 x40", "scroll step + repaint", statistics.median(timed(lambda _i: (vp.step(1), vp.repaint()), 39)), 39))

    def wl_ct(i: int) -> None:
        vp.set_window(WindowLevel(40 + i, 400 + i))
        vp.repaint()

    rows.append(("CT 512x512 x40", "W/L change + repaint", statistics.median(timed(wl_ct, 30)), 30))
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Qt offscreen, viewport 1200x1000")
    print(f"{'data':<22} {'operation':<24} {'median ms':>10} {'n':>4}")
    for data, op, ms, n in rows:
        print(f"{data:<22} {op:<24} {ms:>10.1f} {n:>4}")


if __name__ == "__main__":
    main()
