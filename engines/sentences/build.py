"""Build the IU sentence bank shipped beside the weights:
``python -m engines.sentences.build [--reports iu_xray_reports.jsonl] --out resources/weights/medim-small``."""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from engines.sentences.bank import BANK_FILE, CandidateBank


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m engines.sentences.build", description=__doc__.split("\n")[0])
    ap.add_argument("--reports", type=Path, default=None, help="IU reports JSONL (default: the shared data)")
    ap.add_argument("--out", type=Path, required=True, help="weights folder (writes sentence_bank.json there)")
    args = ap.parse_args(argv)
    try:
        bank = CandidateBank.from_iu(args.reports)
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
