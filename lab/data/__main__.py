"""`python -m lab.data ROOT [--layout L] [--splits train val]`: read a dataset folder, list every
skipped file with its reason, and end with the counts (a quick check before training or evaluation)."""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from lab.data.dataset import EmptyDatasetError, SplitLeakError
from lab.data.layouts import LAYOUTS, load_dataset


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lab.data", description=__doc__.split("\n")[0])
    ap.add_argument("root", type=Path)
    ap.add_argument("--layout", choices=LAYOUTS, default=None, help="default: detected")
    ap.add_argument("--splits", nargs="+", default=None, help="default: the reader's own")
    args = ap.parse_args(argv)
    try:
        ds = load_dataset(args.root, args.layout, args.splits)
    except (EmptyDatasetError, SplitLeakError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for problem in ds.problems:
        print(f"skipped: {problem}")
    views = Counter(s.view for s in ds)
    real = sum(s.report_is_real for s in ds)
    print(f"{ds.summary()}; views {dict(views)}; {real} with a real report; "
          f"{len({(s.source, s.patient_id) for s in ds})} patients")
    return 0


if __name__ == "__main__":
    sys.exit(main())
