"""What an edit of the report changes: findings that flip between two report texts, the sentences that
carry them, and short edit instructions ("remove the effusion", "add a right upper lobe nodule") turned
into edited report text through the labeler's own vocabulary (so what the labeler reads back is what
was asked for).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from engines.labeler import FINDINGS, PATHOLOGIES, LabelResult, SentenceLabels, label_report


class EditError(ValueError):
    """The edit cannot be understood or changes nothing the labeler can see."""


@dataclass(frozen=True)
class FindingChange:
    """One finding whose value differs between the current and the edited report.

    Values are the labeler's: 1 positive, 0 negative, -1 uncertain, None not mentioned."""

    finding: str
    before: int | None
    after: int | None

    @property
    def kind(self) -> str:
        """'add' (becomes positive), 'remove' (was positive, now not) or 'modify' (anything else)."""
        if self.after == 1 and self.before != 1:
            return "add"
        if self.before == 1 and self.after != 1:
            return "remove"
        return "modify"

    def describe(self) -> str:
        return {"add": f"add {self.finding}", "remove": f"remove {self.finding}"}.get(
            self.kind, f"{self.finding}: {self.before} -> {self.after}")


@dataclass(frozen=True)
class ReportEdit:
    """The comparison of two report texts: changed findings and the sentences (with their offsets in
    the text they come from) that speak of them - those are what the image is re-masked for."""

    before_text: str
    after_text: str
    changes: tuple[FindingChange, ...]
    removed_sentences: tuple[SentenceLabels, ...]  # from before_text
    added_sentences: tuple[SentenceLabels, ...]  # from after_text

    @property
    def findings(self) -> list[str]:
        return [c.finding for c in self.changes]


def _value(result: LabelResult, finding: str) -> int | None:
    return result.findings.get(finding)


def _norm(s: str) -> str:
    return re.sub(r"\s+", " ", s.strip().lower())


def diff_reports(before: str, after: str) -> ReportEdit:
    """Findings that differ (No Finding is left out: it follows from the pathologies) and the sentences
    that mention a changed finding and are new in / gone from the text."""
    if not isinstance(before, str) or not isinstance(after, str):
        raise TypeError("reports must be strings")
    if not after.strip():
        raise EditError("the edited report is empty")
    a, b = label_report(before), label_report(after)
    # not mentioned and denied look the same in an image: only a change of presence counts
    changes = tuple(FindingChange(f, _value(a, f), _value(b, f)) for f in FINDINGS
                    if f != "No Finding" and (_value(a, f) or 0) != (_value(b, f) or 0))
    changed = {c.finding for c in changes}
    kept_a = {_norm(s.text) for s in a.sentences}
    kept_b = {_norm(s.text) for s in b.sentences}
    removed = tuple(s for s in a.sentences if _norm(s.text) not in kept_b and changed & set(s.findings))
    added = tuple(s for s in b.sentences if _norm(s.text) not in kept_a and changed & set(s.findings))
    return ReportEdit(before, after, changes, removed, added)


# ---------------------------------------------------------------------------- instructions
_REMOVE = re.compile(r"^\s*(?:please\s+)?(?:remove|delete|drop|take\s+out|without|no)\b\s*(?:the\s+|a\s+|an\s+|any\s+)?(.*)$",
                     re.I)
_ADD = re.compile(r"^\s*(?:please\s+)?(?:add|insert|put|show|with|include)\b\s*(?:a\s+|an\s+|the\s+|some\s+)?(.*)$",
                  re.I)

#: How an absent finding is said, in words the labeler reads as negative for exactly that finding.
NEGATIVE_SENTENCES: dict[str, str] = {
    "Enlarged Cardiomediastinum": "The mediastinum is not widened.",
    "Cardiomegaly": "No cardiomegaly.",
    "Lung Opacity": "No focal airspace opacity.",
    "Lung Lesion": "No pulmonary nodule or mass.",
    "Edema": "No pulmonary edema.",
    "Consolidation": "No focal consolidation.",
    "Pneumonia": "No evidence of pneumonia.",
    "Atelectasis": "No atelectasis.",
    "Pneumothorax": "No pneumothorax.",
    "Pleural Effusion": "No pleural effusion.",
    "Pleural Other": "No pleural thickening.",
    "Fracture": "No acute fracture.",
    "Support Devices": "No support devices.",
}

#: A plain positive sentence per finding, used when the instruction names the finding but no phrase to keep.
POSITIVE_SENTENCES: dict[str, str] = {
    "Enlarged Cardiomediastinum": "The mediastinum is widened.",
    "Cardiomegaly": "The heart is enlarged.",
    "Lung Opacity": "There is an airspace opacity.",
    "Lung Lesion": "There is a pulmonary nodule.",
    "Edema": "There is pulmonary edema.",
    "Consolidation": "There is a focal consolidation.",
    "Pneumonia": "Findings are consistent with pneumonia.",
    "Atelectasis": "There is atelectasis.",
    "Pneumothorax": "There is a pneumothorax.",
    "Pleural Effusion": "There is a pleural effusion.",
    "Pleural Other": "There is pleural thickening.",
    "Fracture": "There is a rib fracture.",
    "Support Devices": "A support device is present.",
}


def findings_named(phrase: str) -> list[str]:
    """Findings the labeler hears in `phrase` (read as a positive statement)."""
    res = label_report(phrase.strip().rstrip(".") + ".")
    found = [f for f in FINDINGS if f != "No Finding" and f in res.findings]
    if not found:  # e.g. "the effusion" alone, or a negated phrase: try it as "There is <phrase>."
        res = label_report(f"There is {phrase.strip().rstrip('.')}.")
        found = [f for f in FINDINGS if f != "No Finding" and f in res.findings]
    return found


def _sentences(text: str) -> list[SentenceLabels]:
    return label_report(text).sentences


def _rebuild(text: str, drop: set[int], extra: list[str]) -> str:
    """Text without the sentences at the indices in `drop`, plus `extra` sentences at the end of the
    findings (before an IMPRESSION section if there is one)."""
    sents = _sentences(text)
    kept = [s.text for i, s in enumerate(sents) if i not in drop]
    imp = re.search(r"\bimpression\s*:", text, re.I)
    if imp is None:
        return " ".join(kept + extra).strip()
    head = [s.text for i, s in enumerate(sents) if i not in drop and s.start < imp.start()]
    tail = [s.text for i, s in enumerate(sents) if i not in drop and s.start >= imp.start()]
    tail_text = " ".join(tail)
    tail_text = re.sub(r"^\s*impression\s*:\s*", "", tail_text, flags=re.I)
    return (" ".join(head + extra) + "\n\nIMPRESSION: " + tail_text).strip()


def apply_instruction(report: str, instruction: str) -> str:
    """The report with a short instruction applied: 'remove X' drops every sentence asserting (or
    hedging) X and states it is absent; 'add X' drops sentences denying X or calling the study normal
    and states X. Raises EditError when the instruction names no finding the labeler knows."""
    if not isinstance(instruction, str) or not instruction.strip():
        raise EditError("the edit instruction is empty")
    report = report or ""
    m_rem, m_add = _REMOVE.match(instruction), _ADD.match(instruction)
    if not (m_rem or m_add):
        raise EditError(f"say 'remove ...' or 'add ...' (got {instruction!r})")
    phrase = (m_rem or m_add).group(1).strip().rstrip(".")
    findings = findings_named(phrase)
    if not findings:
        raise EditError(f"no finding recognised in {phrase!r}; name one of: "
                        + ", ".join(f.lower() for f in PATHOLOGIES))
    sents = _sentences(report)
    if m_rem:
        drop = {i for i, s in enumerate(sents) if any(s.findings.get(f) in (1, -1) for f in findings)}
        extra = [NEGATIVE_SENTENCES[f] for f in findings]
        if not any(label_report(report).findings.get(f) in (1, -1) for f in findings):
            raise EditError(f"the report does not mention {', '.join(findings)} as present")
        out = _rebuild(report, drop, extra)
        if not any(v in (1, -1) for f, v in label_report(out).findings.items() if f in PATHOLOGIES):
            out = re.sub(r"IMPRESSION:\s*$", "IMPRESSION: No acute cardiopulmonary abnormality.", out)
        return out
    drop = {i for i, s in enumerate(sents)
            if any(s.findings.get(f) == 0 for f in findings) or s.findings.get("No Finding") == 1
            or re.search(r"\b(?:no\s+acute|normal\s+(?:chest|study|radiograph)|unremarkable\s+(?:chest|study))",
                         s.text, re.I)}
    # a dropped sentence may deny other findings too ("no effusion or pneumothorax"): keep those denials
    kept_denials = [NEGATIVE_SENTENCES[f] for f in FINDINGS
                    if f in NEGATIVE_SENTENCES and f not in findings
                    and any(sents[i].findings.get(f) == 0 for i in drop)
                    and not any(s.findings.get(f) == 0 for i, s in enumerate(sents) if i not in drop)]
    sentence = phrase[0].upper() + phrase[1:] if phrase else ""
    if not re.match(r"(?i)(?:there|the|a|an|\w+\s+(?:is|are))\b", sentence):
        sentence = f"There is {'an' if phrase[:1].lower() in 'aeiou' else 'a'} {phrase}"
    sentence = sentence.rstrip(".") + "."
    if any(label_report(sentence).findings.get(f) != 1 for f in findings):
        sentence = " ".join(POSITIVE_SENTENCES[f] for f in findings)
    out = _rebuild(report, drop, kept_denials + [sentence])
    if re.search(r"IMPRESSION:\s*$", out):
        out = out + " " + sentence
    return out
