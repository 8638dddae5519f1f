"""Counts two consistency faults in drafts written by `radstation-eval drafting` (drafts_*.jsonl): a draft that
names a side or lobe (a right/left word or a lobe; engines.sentences.reading.names_place for what a sentence
places), and a finding denied in two sentences of one draft (the labeler's absent states; with the hierarchy,
"the lungs are clear" also denies edema). Prints one table row per file.

    python benchmarks/draft_faults.py OUT/drafts_sentences_val.jsonl [more.jsonl ...]
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # this checkout's code, not the installed copy (a worktree measures itself)
    sys.path.insert(0, str(ROOT))

from engines.labeler.label import split_sentences  # noqa: E402
from engines.sentences.reading import names_place, read_sentence, redundant  # noqa: E402
from lab.eval.jsonl import read_reports  # noqa: E402

_SIDE_WORD = re.compile(r"\b(?:right|left|lobes?|lingula\w*)\b", re.I)


def faults(text: str) -> tuple[bool, bool, bool, bool]:
    """(side or lobe word, a sentence that places a finding, a finding denied twice by the labeler's reading,
    ... or with the hierarchy)."""
    sents = [text[a:b].strip() for a, b in split_sentences(text)]
    readings = [read_sentence(s) for s in sents if s]
    pairs = [(a, b) for i, a in enumerate(readings) for b in readings[i + 1:]]
    return (bool(_SIDE_WORD.search(text)), any(names_place(r) for r in readings),
            any(a.absent & b.absent for a, b in pairs), any(redundant(a, b) for a, b in pairs))


def main(paths: list[str]) -> int:
    print("| drafts | n | side/lobe word | places a finding | finding denied twice | ... with hierarchy |")
    print("|---|---:|---:|---:|---:|---:|")
    for p in paths:
        texts = list(read_reports(Path(p)).values())
        counts = [sum(col) for col in zip(*(faults(t) for t in texts), strict=True)]
        print(f"| {Path(p).parent.name}/{Path(p).name} | {len(texts)} | " + " | ".join(map(str, counts)) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
