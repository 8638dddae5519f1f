"""The shipped sentence bank is the project's own text: every authored sentence reads as it declares, every
finding and state the study reading can report has sentences (drafted end to end through the shipped engine),
and nothing derived from the IU reports (CC BY-NC-ND 4.0) ships in resources/."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from engines.default_weights import DEFAULT_WEIGHTS
from engines.labeler.findings import PATHOLOGIES
from engines.labeler.label import label_report, split_sentences
from engines.sentences.authored import (
    SOURCE_DIR,
    AuthoredBankError,
    authored_bank,
    disagreements,
    read_sentence_files,
)
from engines.sentences.bank import BANK_FILE, CandidateBank, normalise
from lab.build.sentence_bank import main as build_main
from lab.eval.consistency import contradictions

torch.set_num_threads(1)
RESOURCES = Path(__file__).resolve().parents[3] / "resources"
REPORTABLE = (*PATHOLOGIES, "Support Devices")  # what a study reading can state (reader or similar cases' vote)


def test_every_authored_sentence_reads_as_declared():
    sentences = read_sentence_files()
    assert len(sentences) > 200
    assert disagreements(sentences) == []


def test_a_sentence_that_reads_otherwise_than_declared_is_an_error(tmp_path):
    (tmp_path / "lungs.txt").write_text("[findings: Pneumonia present]\nRight lower lobe pneumonia.\n"
                                        "The lungs are clear.\n\n[impression: none]\nStable since the prior study.\n")
    problems = disagreements(read_sentence_files(tmp_path))
    assert len(problems) == 2
    assert problems[0].startswith("lungs.txt:3: 'The lungs are clear.' declared {'Pneumonia': 1}")
    assert "lungs.txt:6" in problems[1] and "prior" in problems[1]
    with pytest.raises(AuthoredBankError, match="2 authored sentence"):
        authored_bank(tmp_path)
    (tmp_path / "lungs.txt").write_text("Clear lungs.\n")
    with pytest.raises(AuthoredBankError, match=r"lungs.txt:1: a sentence before any"):
        read_sentence_files(tmp_path)
    (tmp_path / "lungs.txt").write_text("[findings: Pneumonia likely]\nPneumonia.\n")
    with pytest.raises(AuthoredBankError, match=r"lungs.txt:1: 'Pneumonia likely' is not"):
        read_sentence_files(tmp_path)
    (tmp_path / "lungs.txt").write_text("[findings: Pneumonitis present]\nPneumonia.\n")
    with pytest.raises(AuthoredBankError, match="unknown finding"):
        read_sentence_files(tmp_path)
    assert build_main(["authored", "--sentences", str(tmp_path), "--out", str(tmp_path / "o")]) == 2


def test_every_reportable_finding_and_state_has_sentences_with_side_severity_and_place():
    bank = authored_bank()
    cands = bank.candidates
    for f in REPORTABLE:
        for part in ("findings", "impression"):
            for v in (1, -1):
                assert any(c.part == part and c.reading.states.get(f) == v for c in cands), (f, part, v)
        assert any(c.part == "findings" and c.reading.is_normal_statement and f in c.reading.effective_absent
                   for c in cands), f
    for f in ("Lung Opacity", "Lung Lesion", "Consolidation", "Pneumonia", "Atelectasis", "Pleural Effusion",
              "Pneumothorax", "Pleural Other"):
        sides = {c.reading.laterality for c in cands if c.reading.states.get(f) == 1}
        assert {"right", "left"} <= sides, (f, sides)
    for f in ("Lung Opacity", "Pleural Effusion", "Atelectasis", "Pneumonia", "Pleural Other", "Edema"):
        assert "bilateral" in {c.reading.laterality for c in cands if c.reading.states.get(f) == 1}, f
    for f in ("Cardiomegaly", "Edema", "Pleural Effusion", "Pneumothorax"):
        grades = {c.reading.severity for c in cands if c.reading.states.get(f) == 1}
        assert {"mild", "moderate", "severe"} <= grades, (f, grades)
    lung_places = {w for c in cands if c.reading.present & {"Lung Opacity", "Consolidation", "Pneumonia",
                                                            "Atelectasis", "Lung Lesion"} for w in c.reading.location}
    assert {"upper", "middle", "lower", "base", "basilar", "perihilar", "retrocardiac", "lingula"} <= lung_places
    assert sum(c.normal_impression for c in cands) >= 3
    assert any(c.reading.section == "bones" and not c.reading.states for c in cands)


def test_the_shipped_bank_is_the_authored_one_and_no_iu_text_ships():
    shipped = CandidateBank.load(DEFAULT_WEIGHTS / BANK_FILE)
    built = authored_bank()
    assert [(c.text, c.part, c.reading.to_json(), c.sources) for c in shipped.candidates] == \
        [(c.text, c.part, c.reading.to_json(), c.sources) for c in built.candidates], \
        "resources/weights/medim-small/sentence_bank.json is stale: python -m lab.build.sentence_bank authored"
    assert {c.origin for c in shipped.candidates} == {"authored"}
    for path in RESOURCES.rglob("*"):  # no IU provenance anywhere in what ships (every bank, every text file)
        if path.is_file() and path.suffix in (".json", ".txt", ".md", ".csv", ".jsonl", ".yaml", ".yml"):
            text = path.read_text(encoding="utf-8", errors="replace")
            assert '"origin":"iu"' not in text.replace(" ", "") and '"iu:cxr' not in text.lower(), path


def test_the_iu_bank_is_refused_in_resources(tmp_path, capsys):
    assert build_main(["iu", "--out", str(RESOURCES / "weights" / "medim-small")]) == 2
    assert "CC BY-NC-ND" in capsys.readouterr().err
    reports = tmp_path / "iu.jsonl"
    reports.write_text(json.dumps({"uid": "CXR1", "findings": "The heart is normal in size. The lungs are clear.",
                                   "impression": "No acute disease."}) + "\n")
    assert build_main(["iu", "--reports", str(reports), "--out", str(tmp_path / "dev")]) == 0
    assert {c.origin for c in CandidateBank.load(tmp_path / "dev" / BANK_FILE).candidates} == {"iu"}


def test_no_long_authored_sentence_is_an_iu_sentence(cxr_root):
    """Stock phrases ("The lungs are clear.") are everyone's; a long sentence equal to an IU one was copied."""
    from lab.data.iu import load_iu_reports

    iu = {normalise(body[a:b]) for r in load_iu_reports(cxr_root / "text_only" / "iu_xray_reports.jsonl") for body in (r.findings or "", r.impression or "")
          for a, b in split_sentences(body)}
    copied = [s.text for s in read_sentence_files() if len(s.text.split()) >= 8 and normalise(s.text) in iu]
    assert copied == []


def test_the_engine_drafts_every_reportable_finding_present_and_uncertain(pipe):
    """End to end through the shipped engine: a reading with one finding present (or uncertain) gives a draft
    whose findings and impression state it so, with nothing contradicting it."""
    yy, xx = np.mgrid[0:256, 0:256]
    image = (128 + 60 * np.sin(xx / 17.0) * np.cos(yy / 23.0)).astype(np.uint8)
    base = replace(pipe.decode_settings, answer_rule=False, case_weight=0.0, scale=1.0, normal_scale=1.0,
                   alone_scale=1.0, alone_normal_scale=1.0)
    for state, band in ((1, 0.0), (-1, 100.0)):  # a band wider than any margin: everything read is uncertain
        settings = replace(base, uncertain_band=band)
        for f in REPORTABLE:
            reader = {g: 0.001 for g in REPORTABLE} | {"No Finding": 0.001, f: 0.999}
            res = pipe.draft_sentences([image], reader=reader, settings=settings)
            assert res.reading["states"][f] == state, (f, res.reading["states"])
            assert label_report(res.findings_text).findings.get(f) == state, (f, state, res.text)
            assert label_report(res.impression_text).findings.get(f) == state, (f, state, res.text)
            assert not contradictions(res.text), res.text
            assert all(s["sources"][0].startswith("authored:") for s in res.sentences)
    normal = pipe.draft_sentences([image], reader={g: 0.001 for g in REPORTABLE} | {"No Finding": 0.999},
                                  settings=base)
    assert label_report(normal.text).findings.get("No Finding") == 1, normal.text
    assert SOURCE_DIR.is_dir()
