"""The study reading as a vote of the K most similar cases (sentence_decoding case_weight 1, cases K): a finding
is read present when enough of the K cases state it; with fewer than K cases to ask (a new site, no development
index, another embedding's index) the reader reads alone, at the thresholds chosen for it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engines.pipeline import MedimPipeline
from engines.sentences.decode import DecodeSettings
from engines.similar import CaseIndex, CaseRecord
from engines.similar.embeddings import index_name

torch.set_num_threads(1)

PNEUMONIA = ("Patchy right lower lobe airspace opacity consistent with pneumonia.", "Right lower lobe pneumonia.")
NORMAL = ("The lungs are clear. No pleural effusion or pneumothorax.", "No acute cardiopulmonary abnormality.")


def _index(n_pneumonia: int, n_normal: int, dim: int = 16) -> tuple[CaseIndex, np.ndarray]:
    rng = np.random.default_rng(0)
    vecs = rng.normal(size=(n_pneumonia + n_normal, dim)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    idx = CaseIndex(dim, index_name("pixels32"))
    recs = [CaseRecord(f"p{i}", *PNEUMONIA, origin="dev") for i in range(n_pneumonia)]
    recs += [CaseRecord(f"n{i}", *NORMAL, origin="dev") for i in range(n_normal)]
    idx.add(recs, vecs)
    query = vecs.mean(0)
    return idx, query / np.linalg.norm(query)


def _reader(pipe: MedimPipeline, pneumonia: float) -> dict[str, float]:
    reader = {f: 0.5 * float(pipe.finding_prior.get(f, 0.1)) for f in pipe.reading_findings}
    reader["No Finding"] = 0.05
    reader["Pneumonia"] = pneumonia
    return reader


def _settings(**kw) -> DecodeSettings:
    base = {"case_weight": 1.0, "cases": 10, "case_embedding": "pixels32", "scale": 1.0, "normal_scale": 3.0,
            "answer_rule": False, "min_index_cases": 10}  # these indexes are tiny (test_dev_cases_vote pins the minimum)
    return DecodeSettings(**{**base, **kw})


def _read(pipe: MedimPipeline, idx: CaseIndex, query: np.ndarray, reader: dict, s: DecodeSettings):
    pipe.case_index = idx
    try:
        return pipe.study_reading([], s, reader=reader, case_query=query)
    finally:
        pipe.case_index = None


def test_the_vote_of_k_cases_decides_what_the_draft_states(pipe):
    prior = float(pipe.finding_prior["Pneumonia"])
    assert 0.5 < prior < 0.6  # 6 of 10 is above the threshold (prevalence x 1.0), 5 of 10 below
    # (normal_scale 3: the study is normal when No Finding's share is above 3 x its prevalence, about 0.74)
    idx, q = _index(6, 4)
    reading, cases = _read(pipe, idx, q, _reader(pipe, 0.05), _settings())
    assert reading.states["Pneumonia"] == 1  # the reader alone says no; the cases' vote says yes
    assert reading.probabilities["Pneumonia"] == pytest.approx(0.6)
    assert len(cases) == 10  # every voting case's sentences are offered to the slots
    idx, q = _index(5, 5)
    reading, _ = _read(pipe, idx, q, _reader(pipe, 0.95), _settings())
    assert reading.states["Pneumonia"] == 0  # 5 of 10 is below; with case_weight 1 the reader does not vote
    idx8, q8 = _index(2, 8)
    reading, _ = _read(pipe, idx8, q8, _reader(pipe, 0.95), _settings(normal_scale=1.0))
    assert reading.present == []  # most similar studies are normal: a normal reading, nothing present
    # a lower scale states a finding fewer cases have: 5 of 10 above 0.8 x prevalence
    reading, _ = _read(pipe, idx, q, _reader(pipe, 0.05), _settings(scale=0.8))
    assert reading.states["Pneumonia"] == 1


def test_the_answer_rule_still_vetoes_what_the_image_itself_denies(pipe):
    idx, q = _index(10, 0)
    cal = pipe.answer_calibration()
    p = 0.05
    assert cal.answer(p, pipe.finding_prior["Pneumonia"]) == "no"
    reading, _ = _read(pipe, idx, q, _reader(pipe, p), _settings(answer_rule=True))
    assert reading.states["Pneumonia"] == 0
    reading, _ = _read(pipe, idx, q, _reader(pipe, 0.5), _settings(answer_rule=True))
    assert reading.states["Pneumonia"] == 1  # "uncertain" answers do not veto


def test_fewer_cases_than_the_vote_needs_read_the_reader_alone_at_its_thresholds(pipe):
    idx, q = _index(3, 0)  # a new site: three signed cases, all pneumonia
    s = _settings(alone_scale=1.5, alone_normal_scale=1.0)
    reading, cases = _read(pipe, idx, q, _reader(pipe, 0.05), s)
    assert reading.states["Pneumonia"] == 0  # three cases do not outvote the reader
    assert set(cases) == {"p0", "p1", "p2"}  # their sentences are still offered
    prior = float(pipe.finding_prior["Pneumonia"])
    assert reading.thresholds["Pneumonia"] == pytest.approx(min(prior * 1.5, 0.95))
    reading, _ = _read(pipe, idx, q, _reader(pipe, 0.9), s)
    assert reading.states["Pneumonia"] == 1 and reading.probabilities["Pneumonia"] == pytest.approx(0.9)
    # no index at all: the same reader-alone thresholds
    reading, cases = pipe.study_reading([], s, reader=_reader(pipe, 0.9))
    assert cases is None and reading.thresholds["Pneumonia"] == pytest.approx(min(prior * 1.5, 0.95))


def test_settings_thresholds_and_config_round_trip():
    s = DecodeSettings.from_config({"scale": 0.4, "normal_scale": 1.5, "case_weight": 1.0, "cases": 10,
                                    "alone_scale": 1.0, "alone_normal_scale": 0.75, "unknown_key": 3})
    assert s.thresholds(True) == (0.4, 1.5)
    assert s.thresholds(False) == (1.0, 0.75)
    assert DecodeSettings(scale=0.7, normal_scale=2.0, case_weight=1.0).thresholds(False) == (0.7, 2.0)  # unset
    assert DecodeSettings(scale=0.7, case_weight=0.0, alone_scale=3.0).thresholds(False)[0] == 0.7  # no cases chosen
    assert DecodeSettings.from_config(s.to_json()) == s
