"""Two consistency faults a reader notices at once, ruled out by construction: a side or lobe the draft cannot
know ("Left upper lobe pneumonia" from a reader that reads no side), and one finding denied twice ("No
pneumothorax. No pleural effusion or pneumothorax.")."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from engines.sentences.decode import DecodeSettings
from engines.sentences.reading import names_place, read_sentence, redundant
from engines.similar import CaseIndex, CaseRecord
from tests.support.sentence_readings import clear_reading

torch.set_num_threads(1)


def _faults(sentences: list[dict]) -> tuple[list[str], list[tuple[str, str]]]:
    """(sentences that name a place, pairs of sentences that deny one finding) of a draft."""
    readings = [(s["text"], read_sentence(s["text"])) for s in sentences]
    placed = [t for t, r in readings if names_place(r)]
    twice = [(a, b) for i, (a, ra) in enumerate(readings) for b, rb in readings[i + 1:]
             if ra.absent & rb.absent or redundant(ra, rb)]
    return placed, twice


def test_the_rules_read_places_and_double_denials() -> None:
    r = read_sentence
    assert names_place(r("Left upper lobe pneumonia.")) and names_place(r("Possible right basilar atelectasis."))
    assert names_place(r("No left pleural effusion."))
    assert not names_place(r("Pneumonia.")) and not names_place(r("Both lungs are clear."))
    assert not names_place(r("No pleural effusion or pneumothorax."))
    assert redundant(r("No pneumothorax."), r("No pleural effusion or pneumothorax."))
    assert redundant(r("The lungs are clear."), r("No pulmonary edema."))  # a denied parent denies its children
    assert not redundant(r("No pneumothorax."), r("No pleural effusion."))


@pytest.mark.parametrize("present", [{"Pneumonia"}, {"Pneumonia", "Lung Opacity"}, {"Atelectasis", "Pleural Effusion"},
                                     {"Pneumothorax"}, {"Lung Lesion", "Consolidation"}, {"Pleural Other"}, set()])
def test_a_draft_names_no_side_or_lobe_and_denies_nothing_twice(pipe, image, present) -> None:
    res = pipe.draft_sentences([image], reader=clear_reading(pipe, present))
    placed, twice = _faults(res.sentences)
    assert not placed, res.text
    assert not twice, res.text
    for f in present - {"Lung Opacity"}:  # the rule leaves an unplaced wording for every finding
        assert any(res.reading["states"][f] == 1 and s["states"].get(f) == 1 for s in res.sentences), (f, res.text)


def test_a_similar_cases_side_is_not_taken_over(pipe, image) -> None:
    """Another patient's side is no evidence for this image: a similar case's own placed sentence ("Right lower
    lobe pneumonia") is offered and favoured, yet the draft states the pneumonia without a side."""
    vec = pipe.embed([image])
    idx = CaseIndex(vec.shape[1])
    idx.add([CaseRecord("case-r", "Right lower lobe pneumonia. No pleural effusion.", "Right lower lobe pneumonia.",
                        "site")], vec)
    pipe.case_index = idx
    try:
        s = DecodeSettings(case_weight=1.0, case_bonus=5.0, cases=1, answer_rule=False, min_index_cases=1)
        res = pipe.draft_sentences([image], settings=s)
    finally:
        pipe.case_index = None
    assert res.reading["states"]["Pneumonia"] == 1
    placed, twice = _faults(res.sentences)
    assert not placed and not twice, res.text
    assert any(s["states"].get("Pneumonia") == 1 for s in res.sentences), res.text


@pytest.mark.real_data
def test_twenty_val_drafts_name_no_unknown_place_and_deny_nothing_twice(pipe, cxr_root) -> None:
    from PIL import Image

    rows = [json.loads(line) for line in (cxr_root / "manifest.jsonl").read_text().splitlines()]
    val = [r for r in rows if r["split"] == "val"][:20]
    stated = 0
    for r in val:
        image = np.asarray(Image.open(cxr_root / r["file"]).convert("L"))
        res = pipe.draft_sentences([image])
        placed, twice = _faults(res.sentences)
        assert not placed and not twice, (r["image_id"], res.text)
        stated += any(s["slot"].startswith("present") for s in res.sentences)
    assert stated
