"""The project-authored sentence bank: sentences the project wrote itself, kept as reviewable text
(`resources/sentences/*.txt`), each group declaring what its sentences state.

Why: the IU X-ray reports are CC BY-NC-ND 4.0 (no commercial use, no derivatives), so a workstation may not ship
their sentences; the shipped bank is built from this text instead (`python -m lab.build.sentence_bank authored`),
and every sentence goes through the same labeler reading (`read_sentence`) as any other candidate. A sentence
whose reading differs from what its group declares is an error, not a silent candidate: the decoder would put
it in the wrong slot.

Format (one sentence per line, grouped; `#` starts a comment line):

    [findings: Pleural Effusion present, Pneumothorax absent]
    Small right pleural effusion without pneumothorax.

The part is `findings` or `impression`; the states are `present`, `absent` or `uncertain`, or the group is
`none` (a sentence that states no finding, e.g. "The osseous structures are intact.").
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from engines.sentences.bank import Candidate, CandidateBank
from engines.sentences.reading import SentenceReading, read_sentence

SOURCE_DIR = Path(__file__).resolve().parents[2] / "resources" / "sentences"
ORIGIN = "authored"
STATE_WORDS = {"present": 1, "absent": 0, "uncertain": -1}
_HEADER = re.compile(r"^\[(findings|impression)\s*:\s*(.*)\]$")
# Words that make a sentence lean on a prior study or on what a single image cannot tell (narrower than
# rules.UNFIT, which also drops IU's own quirks such as "XXXX" and would reject "intact" for its "CT").
_NEEDS_CONTEXT = re.compile(r"\b(?:compar\w*|prior|previous\w*|unchanged|stable|again|interval|since|new|"
                            r"improv\w*|worse\w*|resolv\w*|persist\w*|follow\w*|recommend\w*|correlat\w*|"
                            r"history|clinical\w*|XXXX)\b", re.I)


class AuthoredBankError(ValueError):
    """A sentence file that cannot be read, with the file and line at fault."""


@dataclass(frozen=True)
class AuthoredSentence:
    text: str
    part: str  # findings | impression
    declared: dict[str, int]  # finding -> 1 present, 0 absent, -1 uncertain
    where: str  # "lungs.txt:12"


def _states(spec: str, where: str) -> dict[str, int]:
    if spec.strip().lower() == "none":
        return {}
    out: dict[str, int] = {}
    for item in spec.split(","):
        name, _, state = item.strip().rpartition(" ")
        if not name or state not in STATE_WORDS:
            raise AuthoredBankError(f"{where}: '{item.strip()}' is not '<Finding> present|absent|uncertain'")
        out[name.strip()] = STATE_WORDS[state]
    return out


def read_sentence_files(folder: Path | str = SOURCE_DIR) -> list[AuthoredSentence]:
    """Every sentence of the `*.txt` files in `folder`, in file and line order, with its declared states."""
    from engines.labeler.findings import FINDINGS

    folder = Path(folder)
    files = sorted(folder.glob("*.txt"))
    if not files:
        raise AuthoredBankError(f"{folder}: no sentence files (*.txt)")
    out: list[AuthoredSentence] = []
    for path in files:
        part, declared = None, None
        for n, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            line, where = raw.strip(), f"{path.name}:{n}"
            if not line or line.startswith("#"):
                continue
            m = _HEADER.match(line)
            if m is not None:
                part, declared = m.group(1), _states(m.group(2), where)
                unknown = [f for f in declared if f not in FINDINGS or f == "No Finding"]
                if unknown:
                    raise AuthoredBankError(f"{where}: unknown finding(s) {unknown}")
                continue
            if part is None or declared is None:
                raise AuthoredBankError(f"{where}: a sentence before any [findings: ...] or [impression: ...] header")
            out.append(AuthoredSentence(line, part, dict(declared), where))
    return out


def disagreements(sentences: Iterable[AuthoredSentence]) -> list[str]:
    """One line per sentence the labeler reads otherwise than declared, that leans on a prior or outside
    context (`_NEEDS_CONTEXT`), or that appears twice."""
    problems, seen = [], {}
    for s in sentences:
        got = dict(read_sentence(s.text).states)
        if got != s.declared:
            problems.append(f"{s.where}: {s.text!r} declared {s.declared}, the labeler reads {got}")
        if _NEEDS_CONTEXT.search(s.text):
            problems.append(f"{s.where}: {s.text!r} needs a prior or outside context")
        key = (s.part, s.text.lower())
        if key in seen:
            problems.append(f"{s.where}: {s.text!r} repeats {seen[key]}")
        seen[key] = s.where
    return problems


def authored_bank(folder: Path | str = SOURCE_DIR) -> CandidateBank:
    """The bank of the authored sentences (origin "authored", source "authored:<file>:<line>"); raises
    AuthoredBankError listing every sentence whose reading disagrees with its declaration."""
    sentences = read_sentence_files(folder)
    problems = disagreements(sentences)
    if problems:
        raise AuthoredBankError(f"{len(problems)} authored sentence(s) do not read as declared:\n"
                                + "\n".join(problems))
    bank = CandidateBank()
    for s in sentences:
        reading: SentenceReading = read_sentence(s.text)
        bank._insert(Candidate(s.text, s.part, reading, 1, [f"{ORIGIN}:{s.where}"], ORIGIN))
    return bank
