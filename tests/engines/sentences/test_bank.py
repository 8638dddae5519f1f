"""The candidate bank: real sentences, filtered for single-study use, clustered, saved and loaded."""

from __future__ import annotations

import pytest

from engines.sentences.bank import BANK_FILE, CandidateBank, normalise
from engines.sentences.decode import DecodeSettings

REPORTS = [
    ("r1", "Heart size is normal. The lungs are clear. No pleural effusion.", "No acute cardiopulmonary abnormality."),
    ("r2", "Normal heart size. The lungs are clear. Compared to the prior study, no change.", "Normal chest."),
    ("r3", "Heart size is normal. However, there is a small left pleural effusion.", "Small left effusion."),
]


def test_sentences_are_clustered_and_keep_their_sources():
    bank = CandidateBank()
    bank.add_reports(REPORTS)
    texts = [c.text for c in bank.candidates]
    assert not any("prior" in t or t.startswith("However") for t in texts)  # context a single study lacks
    heart = [c for c in bank.candidates if "heart" in normalise(c.text)]
    assert len(heart) == 1  # "Heart size is normal." and "Normal heart size." say the same with the same words
    assert heart[0].count == 3 and heart[0].text == "Heart size is normal."  # the most used wording represents
    assert heart[0].sources == ["site:r1", "site:r2", "site:r3"]
    clear = next(c for c in bank.candidates if c.text == "The lungs are clear.")
    assert clear.count == 2 and clear.reading.states["Lung Opacity"] == 0
    assert {c.part for c in bank.candidates} == {"findings", "impression"}
    assert next(c for c in bank.candidates if c.text.startswith("No acute")).normal_impression


def test_save_and_load_round_trip_and_bad_files(tmp_path):
    bank = CandidateBank()
    bank.add_reports(REPORTS)
    bank.save(tmp_path / BANK_FILE)
    back = CandidateBank.load(tmp_path / BANK_FILE)
    assert [(c.text, c.count, c.reading.states, c.sources) for c in back.candidates] == \
        [(c.text, c.count, c.reading.states, c.sources) for c in bank.candidates]
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="bad.json: cannot read the sentence bank"):
        CandidateBank.load(tmp_path / "bad.json")
    (tmp_path / "other.json").write_text('{"format": "something else"}')
    with pytest.raises(ValueError, match="not a RadStation sentence bank"):
        CandidateBank.load(tmp_path / "other.json")


def test_settings_come_from_the_config_and_ignore_unknown_keys():
    s = DecodeSettings.from_config({"scale": 1.5, "case_weight": 0.5, "future_key": 1})
    assert (s.scale, s.case_weight) == (1.5, 0.5)
