"""Build a sentence bank: the project-authored one that ships, or the IU one for development only.

    python -m lab.build.sentence_bank authored [--out resources/weights/medim-small]
    python -m lab.build.sentence_bank iu --out out/dev/iu_sentence_bank [--reports iu_xray_reports.jsonl]

The IU X-ray reports are CC BY-NC-ND 4.0: their sentences may be used to develop and evaluate (e.g.
`radstation-eval drafting --sentence-bank out/dev/iu_sentence_bank/sentence_bank.json`) but never shipped, so
the IU bank is refused anywhere under resources/ (docs/sentence_bank_licence.md).
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from engines.sentences.authored import SOURCE_DIR, AuthoredBankError, authored_bank
from engines.sentences.bank import BANK_FILE, CandidateBank
from lab.data.iu import load_iu_reports

ROOT = Path(__file__).resolve().parents[2]
RESOURCES = ROOT / "resources"
SHIPPED = RESOURCES / "weights" / "medim-small"
DEV_IU = ROOT / "out" / "dev" / "iu_sentence_bank"


def bank_from_iu(path: Path | str | None = None) -> CandidateBank:
    """The bank of the IU X-ray reports (JSONL at `path`, default: the shared data). Development only."""
    bank = CandidateBank()
    bank.add_reports(((r.uid, r.findings, r.impression) for r in load_iu_reports(path)), origin="iu")
    return bank


def inside_resources(path: Path) -> bool:
    """Whether `path` is in the shipped resources (where IU-derived text must never be written)."""
    return path.resolve().is_relative_to(RESOURCES.resolve())


def _summary(bank: CandidateBank, path: Path) -> str:
    parts = Counter(c.part for c in bank.candidates)
    sections = Counter(c.reading.section for c in bank.candidates)
    return (f"{path}: {len(bank)} clusters ({dict(parts)}), {sum(c.count for c in bank.candidates)} sentence uses; "
            f"sections {dict(sections)}")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lab.build.sentence_bank", description=__doc__.split("\n")[0])
    ap.add_argument("source", choices=("authored", "iu"), help="authored: resources/sentences/*.txt (shipped); "
                    "iu: the IU X-ray reports (development and evaluation only)")
    ap.add_argument("--sentences", type=Path, default=SOURCE_DIR, help="authored sentence files (default: %(default)s)")
    ap.add_argument("--reports", type=Path, default=None, help="IU reports JSONL (default: the shared data)")
    ap.add_argument("--out", type=Path, default=None,
                    help=f"folder to write {BANK_FILE} in (authored: {SHIPPED}; iu: {DEV_IU})")
    args = ap.parse_args(argv)
    out = args.out or (SHIPPED if args.source == "authored" else DEV_IU)
    if args.source == "iu":
        if inside_resources(out):
            print(f"error: {out} is in resources/, which ships: the IU reports are CC BY-NC-ND 4.0 and their "
                  "sentences may not be redistributed (write the development bank elsewhere, e.g. out/dev/)",
                  file=sys.stderr)
            return 2
        try:
            bank = bank_from_iu(args.reports)
        except (OSError, ValueError) as exc:
            print(f"error: cannot read the IU reports: {exc}", file=sys.stderr)
            return 2
    else:
        try:
            bank = authored_bank(args.sentences)
        except (OSError, AuthoredBankError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    out.mkdir(parents=True, exist_ok=True)
    bank.save(out / BANK_FILE)
    print(_summary(bank, out / BANK_FILE))
    return 0


if __name__ == "__main__":
    sys.exit(main())
