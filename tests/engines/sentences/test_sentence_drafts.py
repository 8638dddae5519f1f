"""Sentence-level drafts from the shipped weights and sentence bank: real sentences only, consistent by
construction, written to the study reading, ordered by the template, with provenance; free text still there."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from engines.errors import JobCancelled
from engines.labeler.label import label_report
from engines.sentences.bank import normalise
from engines.sentences.decode import DecodeSettings
from engines.sentences.reading import conflicts, read_sentence
from engines.similar import CaseIndex, CaseRecord
from lab.eval.consistency import contradictions
from tests.support.sentence_readings import clear_reading

torch.set_num_threads(1)


def test_sentences_is_the_default_and_every_sentence_is_a_real_one(pipe, image):
    assert pipe.default_draft_mode == "sentences"
    res = pipe.draft_report([image])
    assert res.mode == "sentences" and res.sentences
    bank = {normalise(c.text) for c in pipe.sentence_decoder.bank.candidates}
    for s in res.sentences:
        assert normalise(s["text"]) in bank
        assert s["sources"] and s["sources"][0].split(":")[0] in ("authored", "case")
        assert res.text[s["char_start"]:s["char_end"]] == s["text"]
    assert res.impression_text and res.findings_text
    assert not contradictions(res.text)


def test_the_draft_states_what_the_reading_finds_and_the_impression_follows(pipe, image):
    res = pipe.draft_sentences([image], reader=clear_reading(pipe, {"Pleural Effusion", "Cardiomegaly"}))
    found = label_report(res.findings_text).findings
    assert found.get("Pleural Effusion") == 1 and found.get("Cardiomegaly") == 1
    imp = label_report(res.impression_text).findings
    assert imp.get("Pleural Effusion") == 1 or imp.get("Cardiomegaly") == 1
    assert not any(v == 1 for f, v in imp.items() if f not in ("Pleural Effusion", "Cardiomegaly",
                                                               "Enlarged Cardiomediastinum"))
    assert not contradictions(res.text)
    effusion = [s for s in res.sentences if s["slot"] == "present:Pleural Effusion"][0]
    assert effusion["confidence"] == pytest.approx(0.95)
    normal = pipe.draft_sentences([image], reader=clear_reading(pipe))
    labels = label_report(normal.text).findings
    assert labels.get("No Finding") == 1 and not contradictions(normal.text)
    assert all(s["slot"] in ("normal", "bones", "impression") for s in normal.sentences)
    assert normal.reading["states"]["Pleural Effusion"] == 0


def test_a_finding_is_never_stated_on_both_sides_or_both_ways(pipe, image):
    for present in ({"Pneumonia", "Lung Opacity"}, {"Atelectasis", "Pleural Effusion"}, {"Pneumothorax"},
                    {"Edema", "Cardiomegaly", "Pleural Effusion"}):
        res = pipe.draft_sentences([image], reader=clear_reading(pipe, present))
        assert not contradictions(res.text), res.text
        if present & {"Pneumonia", "Atelectasis", "Edema"}:
            assert "lungs are clear" not in res.text.lower()
        readings = [read_sentence(s["text"]) for s in res.sentences]
        assert not any(conflicts(a, b) for i, a in enumerate(readings) for b in readings[i + 1:]), res.text


def test_the_template_order_changes_the_order(pipe, image):
    reader = clear_reading(pipe, {"Pleural Effusion", "Cardiomegaly"})
    heart_first = pipe.draft_sentences([image], reader=reader, section_order=["heart", "lungs", "pleura", "bones"])
    pleura_first = pipe.draft_sentences([image], reader=reader, section_order=["pleura", "heart", "lungs", "bones"])
    assert heart_first.sentences[0]["section"] == "heart" and pleura_first.sentences[0]["section"] == "pleura"
    assert sorted(s["text"] for s in heart_first.sentences) == sorted(s["text"] for s in pleura_first.sentences)
    with pytest.raises(ValueError, match="unknown report section"):
        pipe.draft_sentences([image], reader=reader, section_order=["kidneys"])


def test_similar_cases_ground_the_draft_and_are_its_provenance(pipe, image):
    idx = CaseIndex(pipe.embed([image]).shape[1])
    vec = pipe.embed([image])
    case = CaseRecord("case-1", "Moderate cardiomegaly. Large pleural effusion layering at the bases.",
                      "Cardiomegaly with large pleural effusions.", "site")
    idx.add([case], vec)
    pipe.case_index = idx
    try:
        s = DecodeSettings(case_weight=1.0, case_bonus=5.0, cases=1, answer_rule=False, min_index_cases=1)
        res = pipe.draft_sentences([image], settings=s)
        ruled = pipe.draft_sentences([image], settings=replace(s, answer_rule=True))
    finally:
        pipe.case_index = None
    assert res.reading["cases"] == ["case-1"]
    assert res.reading["states"]["Pleural Effusion"] == 1 and res.reading["states"]["Cardiomegaly"] == 1
    assert any(src.startswith("case:case-1") for sent in res.sentences for src in sent["sources"])
    assert not contradictions(res.text)
    # With the answer rule the cases cannot state what the image's own yes/no answer calls absent.
    cal, own = pipe.answer_calibration(), pipe.finding_probabilities([image])[0]
    for f in ("Pleural Effusion", "Cardiomegaly"):
        denied = cal.answer(cal.apply({f: own[f]})[f], pipe.finding_prior.get(f)) == "no"
        assert ruled.reading["states"][f] == (0 if denied else 1)


def test_free_text_stays_available_and_jobs_report_progress_and_cancel(pipe, image):
    free = pipe.draft_report([image], mode="free", steps=4, consensus=1)
    assert free.mode == "free" and free.sentences is None
    seen = []
    pipe.draft_report([image], progress=lambda d, n: seen.append((d, n)))
    assert seen and seen[-1][0] == seen[-1][1]
    with pytest.raises(JobCancelled):
        pipe.draft_report([image], cancel=lambda: True)
    with pytest.raises(ValueError, match="unknown draft mode"):
        pipe.draft_report([image], mode="poetry")
