"""Opening a study with presentation states and key object selections: time to read them.

    python benchmarks/study_objects.py [--counts 1 10 100 500] [--repeats 5]

The workspace reads a study's GSPS and KOS files (viewer.presentation.StudyObjects.from_paths) when the study
opens, on a background thread (the image shows at once; the states apply when read): this measures that
read, i.e. how long after opening they appear, for N GSPS (each one distance-style
polyline, a text, a window, an area over one CT image, as another viewer writes them) plus one KOS over
all N images, and the per-image lookup the viewport does on every image change. Prints a markdown table
(median of --repeats runs) with the machine it ran on.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the checkout: tests.support

from tests.support.presentation_samples import foreign_gsps, foreign_kos, read, save  # noqa: E402
from tests.support.widget_samples import write_ct_series  # noqa: E402
from viewer.presentation.study_objects import StudyObjects  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--counts", type=int, nargs="+", default=[1, 10, 100, 500])
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        top = max(args.counts)
        series = write_ct_series(Path(tmp) / "ct", n=top, rows=64, cols=64)
        images = [read(p) for p in series.paths]
        gsps = [save(foreign_gsps([ds], annotate=ds), Path(tmp) / f"pr{i}.dcm") for i, ds in enumerate(images)]
        kos = save(foreign_kos(images), Path(tmp) / "ko.dcm")
        size = sum(p.stat().st_size for p in gsps) / len(gsps)
        for n in args.counts:
            paths = [*gsps[:n], kos]
            opens, lookups = [], []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                objects = StudyObjects.from_paths(paths)
                opens.append(time.perf_counter() - t0)
                assert len(objects.states) == n and not objects.problems
                uid = str(images[n - 1].SOPInstanceUID)
                t0 = time.perf_counter()
                for _ in range(100):
                    state = objects.states_for(uid)[0]
                    state.for_image(uid, 0)
                    objects.key_titles(uid, 0)
                lookups.append((time.perf_counter() - t0) / 100)
            rows.append((n, statistics.median(opens) * 1000, statistics.median(lookups) * 1e6))
    print(f"machine: {platform.node()} {platform.processor() or platform.machine()}, Python {platform.python_version()}; "
          f"GSPS file {size / 1024:.1f} KiB; median of {args.repeats}")
    print()
    print("| GSPS files (+1 KOS) | read at study open (ms) | per image change lookup (us) |")
    print("| ---: | ---: | ---: |")
    for n, open_ms, lookup_us in rows:
        print(f"| {n} | {open_ms:.1f} | {lookup_us:.1f} |")


if __name__ == "__main__":
    main()
