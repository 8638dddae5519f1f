"""Build the IU sentence bank shipped beside the weights:
``python -m lab.build.sentence_bank [--reports iu_xray_reports.jsonl] --out resources/weights/medim-small``."""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from engines.sentences.bank import BANK_FILE, CandidateBank
from lab.data.iu import load_iu_reports


def bank_from_iu(path: Path | str | None = None) -> CandidateBank:
    """The bank of the IU X-ray reports (JSONL at `path`, default: the shared data)."""
    bank = CandidateBank()
    bank.add_reports(((r.uid, r.findings, r.impression) for r in load_iu_reports(path)), origin="iu")
    return bank


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lab.build.sentence_bank", description=__doc__.split("\n")[0])
    ap.add_argument("--reports", type=Path, default=None, help="IU reports JSONL (default: the shared data)")
    ap.add_argument("--out", type=Path, required=True, help="weights folder (writes sentence_bank.json there)")
    args = ap.parse_args(argv)
    try:
        bank = bank_from_iu(args.reports)
    except (OSError, ValueError) as exc:
        print(f"error: cannot read the IU reports: {exc}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    bank.save(args.out / BANK_FILE)
    parts = Counter(c.part for c in bank.candidates)
    sections = Counter(c.reading.section for c in bank.candidates)
    print(f"{args.out / BANK_FILE}: {len(bank)} clusters ({dict(parts)}), "
          f"{sum(c.count for c in bank.candidates)} sentence uses; sections {dict(sections)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
