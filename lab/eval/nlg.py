"""Corpus-level BLEU-1..4, METEOR 1.5, ROUGE-L and CIDEr-D with pycocoevalcap (the COCO caption tools).

Why corpus level: MeDiM's public numbers are per-sample NLTK averages and are not comparable with
R2Gen-style results; these are the standard coco-caption corpus scores.

Offline and install-safe: the PTB tokenizer jar is run here with its input in a private temp folder
(pycocoevalcap writes its temp file into site-packages, which a bundled or read-only install forbids),
and the METEOR 1.5 subprocess is always closed. Java is required for PTB tokenisation and METEOR; with
``tokenizer="simple"`` (or no Java) an in-process lower-case/punctuation tokenizer is used and METEOR is
reported as unavailable, which the result says.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

# The punctuation pycocoevalcap drops after PTB tokenisation.
PTB_PUNCTUATION = frozenset(
    ["''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-", ".", "?", "!", ",", ":", "-", "--", "...", ";"]
)


class NLGUnavailable(RuntimeError):
    """Java or the pycocoevalcap jars are missing."""


def java_available() -> bool:
    return shutil.which("java") is not None


def _tokenizer_dir() -> Path:
    import pycocoevalcap.tokenizer.ptbtokenizer as ptb  # pycocoevalcap is a namespace package: no __file__

    return Path(ptb.__file__).resolve().parent


def simple_tokenize(text: str) -> str:
    """Lower-case words and numbers; punctuation dropped (close to PTB + pycocoevalcap's filter)."""
    return " ".join(re.findall(r"[a-z0-9]+(?:[-'][a-z0-9]+)*", text.lower()))


def ptb_tokenize(texts: Sequence[str]) -> list[str]:
    """Stanford PTB tokenizer (the jar shipped with pycocoevalcap), lower-cased, punctuation removed."""
    if not java_available():
        raise NLGUnavailable("java not found on PATH (needed by the PTB tokenizer)")
    jar = _tokenizer_dir() / "stanford-corenlp-3.4.1.jar"
    if not jar.is_file():
        raise NLGUnavailable(f"{jar} missing")
    if not texts:
        return []
    lines = [t.replace("\n", " ").replace("\r", " ").strip() or "." for t in texts]
    with tempfile.TemporaryDirectory(prefix="radstation-ptb-") as tmp:
        src = Path(tmp) / "input.txt"
        src.write_text("\n".join(lines), encoding="utf-8")
        out = subprocess.run(
            ["java", "-cp", str(jar), "edu.stanford.nlp.process.PTBTokenizer", "-preserveLines", "-lowerCase", str(src)],
            capture_output=True,
            check=True,
            timeout=600,
        ).stdout.decode("utf-8")
    tokenized = out.split("\n")[: len(lines)]
    if len(tokenized) != len(lines):
        raise NLGUnavailable(f"PTB tokenizer returned {len(tokenized)} lines for {len(lines)}")
    return [" ".join(w for w in line.rstrip().split(" ") if w and w not in PTB_PUNCTUATION) for line in tokenized]


def _meteor(gts: dict[str, list[str]], res: dict[str, list[str]]) -> float:
    from pycocoevalcap.meteor.meteor import Meteor

    # METEOR's stdio protocol breaks on "|||" and on empty segments.
    clean = {k: [re.sub(r"\|{3}", " ", s).strip() or "empty" for s in v] for k, v in gts.items()}
    hyp = {k: [re.sub(r"\|{3}", " ", s).strip() or "empty" for s in v] for k, v in res.items()}
    env_cwd = os.getcwd()
    scorer = Meteor()
    try:
        score, _ = scorer.compute_score(clean, hyp)
    finally:
        os.chdir(env_cwd)
        with contextlib.suppress(Exception):
            scorer.meteor_p.stdin.close()
            scorer.meteor_p.kill()
            scorer.meteor_p.wait(timeout=10)
    return float(score)


def corpus_nlg_scores(
    generated: Sequence[str], references: Sequence[str], *, tokenizer: str = "ptb", meteor: bool = True
) -> dict:
    """BLEU-1..4, METEOR, ROUGE-L, CIDEr (CIDEr-D) over the corpus; one reference per generated report.

    Returns ``{"BLEU-1": ..., ..., "METEOR": float|None, "ROUGE-L": ..., "CIDEr": ..., "tokenizer": ...,
    "notes": [...]}``."""
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    if len(generated) != len(references):
        raise ValueError(f"{len(generated)} generated vs {len(references)} reference reports")
    if not generated:
        raise ValueError("no reports to score")
    notes: list[str] = []
    if tokenizer == "ptb" and not java_available():
        tokenizer = "simple"
        notes.append("java not found: simple tokenizer used instead of PTB")
    if tokenizer == "ptb":
        toks = ptb_tokenize([*generated, *references])
        gen_t, ref_t = toks[: len(generated)], toks[len(generated) :]
    elif tokenizer == "simple":
        gen_t = [simple_tokenize(t) for t in generated]
        ref_t = [simple_tokenize(t) for t in references]
    else:
        raise ValueError(f"tokenizer must be 'ptb' or 'simple', got {tokenizer!r}")
    keys = [str(i) for i in range(len(generated))]
    res = {k: [g] for k, g in zip(keys, gen_t, strict=True)}
    gts = {k: [r] for k, r in zip(keys, ref_t, strict=True)}
    out: dict = {}
    with contextlib.redirect_stdout(io.StringIO()):  # pycocoevalcap prints its progress
        bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
        rouge, _ = Rouge().compute_score(gts, res)
        cider, _ = Cider().compute_score(gts, res)
    for n, b in enumerate(bleu, 1):
        out[f"BLEU-{n}"] = float(b)
    out["METEOR"] = None
    if meteor and java_available():
        out["METEOR"] = _meteor(gts, res)
    elif meteor:
        notes.append("METEOR needs java: not computed")
    out["ROUGE-L"] = float(rouge)
    out["CIDEr"] = float(cider)
    out["tokenizer"] = tokenizer
    out["notes"] = notes
    return out
