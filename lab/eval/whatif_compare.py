"""Paired comparison of two what-if settings judged on the same cases (JSON from evaluate.py --json).

Success rates of two settings differ by a few points on 150 cases, so the comparison is paired: the cases one
setting turns from failure into success and back are counted, and a two-sided sign test (exact binomial on
the discordant cases) says how likely the split is by chance. Several draws (e.g. --seed 0 and --seed 1 runs)
are pooled; per finding type the pooled success of the second setting is listed.

    python -m lab.eval.whatif_compare base_seed0.json new_seed0.json [base_seed1.json new_seed1.json ...]
    python -m lab.eval.whatif_compare --base-field success_decoded run.json run.json   # decoded vs shown
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path


def _successes(path: Path, field: str = "success") -> dict[tuple[str, str, str], bool]:
    rows = json.loads(Path(path).read_text())["rows"]
    return {(r["image_id"], r["kind"], r["finding"]): bool(r[field]) for r in rows}


def paired(base: dict, new: dict) -> list[tuple[tuple[str, str, str], bool, bool]]:
    """(case, base success, new success) for the cases both runs judged."""
    return [(k, base[k], new[k]) for k in base if k in new]


def sign_test(better: int, worse: int) -> float:
    """Two-sided exact sign test on the discordant pairs (1.0 when there are none)."""
    from scipy.stats import binomtest

    n = better + worse
    return 1.0 if n == 0 else float(binomtest(better, n, 0.5).pvalue)


def compare(pairs: Sequence[tuple[tuple[str, str, str], bool, bool]]) -> dict:
    better = sum(1 for _, a, b in pairs if b and not a)
    worse = sum(1 for _, a, b in pairs if a and not b)
    by: dict[tuple[str, str], list[tuple[bool, bool]]] = defaultdict(list)
    for (_, kind, finding), a, b in pairs:
        by[(kind, finding)].append((a, b))
    types = {f"{k} {f}": {"n": len(v), "base": sum(a for a, _ in v) / len(v), "new": sum(b for _, b in v) / len(v)}
             for (k, f), v in sorted(by.items())}
    n = max(len(pairs), 1)
    return {"n": len(pairs), "base": sum(a for _, a, _ in pairs) / n, "new": sum(b for _, _, b in pairs) / n,
            "better": better, "worse": worse, "p": sign_test(better, worse), "types": types,
            "majority_base": sum(t["base"] > 0.5 for t in types.values()),
            "majority_new": sum(t["new"] > 0.5 for t in types.values())}


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lab.eval.whatif_compare", description=__doc__.split("\n")[0])
    ap.add_argument("runs", nargs="+", type=Path, help="pairs of evaluate.py JSON files: base new [base new ...]")
    ap.add_argument("--base-field", default="success",
                    help="which success the base runs are read for: success (the shown image) or success_decoded")
    ap.add_argument("--new-field", default="success", help="the same for the new runs")
    args = ap.parse_args(argv)
    if len(args.runs) % 2:
        ap.error("give the runs in pairs: base new [base new ...]")
    pairs = []
    try:
        for base, new in zip(args.runs[::2], args.runs[1::2], strict=True):
            got = paired(_successes(base, args.base_field), _successes(new, args.new_field))
            pairs += got
            r = compare(got)
            print(f"{base.name} -> {new.name}: {r['n']} cases, {r['base']:.2f} -> {r['new']:.2f}, "
                  f"{r['better']} better / {r['worse']} worse, sign test p = {r['p']:.3f}")
    except (OSError, KeyError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not pairs:
        print("error: the runs share no case", file=sys.stderr)
        return 1
    r = compare(pairs)
    print(f"pooled: {r['n']} cases, {r['base']:.2f} -> {r['new']:.2f}, {r['better']} better / {r['worse']} worse, "
          f"sign test p = {r['p']:.3f}; types with a majority {r['majority_base']} -> {r['majority_new']} "
          f"of {len(r['types'])}")
    print("| edit | n | base | new |\n|---|---|---|---|")
    for name, t in r["types"].items():
        print(f"| {name} | {t['n']} | {t['base']:.2f} | {t['new']:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
