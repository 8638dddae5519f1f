"""The tuner scores exactly what the shipped drafts state: its vectorised reading (simulate, answer_denies)
agrees with engines.sentences.study.read_study and the pipeline's answer rule on random readings."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engines.default_weights import DEFAULT_WEIGHTS
from engines.labeler.findings import FINDINGS, PATHOLOGIES
from engines.pipeline import MedimPipeline
from engines.sentences.study import read_study
from lab.eval.tune_sentences import answer_denies, fold_of, simulate

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def pipe() -> MedimPipeline:
    return MedimPipeline.from_pretrained(DEFAULT_WEIGHTS, device="cpu")


def test_answer_denies_is_the_answer_rule(pipe):
    cal = pipe.answer_calibration()
    names = list(pipe.reading_findings)
    p = np.linspace(0.001, 0.999, 200)[:, None].repeat(len(names), 1)
    denied = answer_denies(p, names, pipe.finding_prior, cal)
    for j, f in enumerate(names):
        prev = cal.prior(f, pipe.finding_prior.get(f))
        expect = [cal.answer(cal.apply({f: float(x)})[f], prev) == "no" for x in p[:, j]]
        assert denied[:, FINDINGS.index(f)].tolist() == expect, f


@pytest.mark.parametrize("case_weight", [0.0, 0.5, 1.0])
def test_simulate_states_what_the_pipeline_reading_states(pipe, case_weight):
    rng = np.random.default_rng(1)
    names = list(pipe.reading_findings)
    n = 300
    probs = rng.beta(0.7, 1.5, size=(n, len(names)))
    shares = rng.integers(0, 11, size=(n, len(FINDINGS))) / 10.0
    cal = pipe.answer_calibration()
    denied = answer_denies(probs, names, pipe.finding_prior, cal)
    pred = simulate(probs, names, pipe.finding_prior, shares, 0.6, 1.5, case_weight, denied)
    stated = 0
    for i in range(n):
        reader = dict(zip(names, map(float, probs[i]), strict=True))
        labels = {f: float(shares[i, FINDINGS.index(f)]) for f in ("No Finding", *PATHOLOGIES, "Support Devices")}
        reading = read_study(reader, pipe.finding_prior, case_labels=labels, case_weight=case_weight, scale=0.6,
                             normal_scale=1.5)
        pipe._drop_what_answers_deny(reading, reader)
        present = set(reading.present)
        for j, f in enumerate(FINDINGS):
            if f in ("No Finding", "Support Devices"):
                continue
            assert pred[i, j] == (f in present), (i, f)
        assert pred[i, 0] == (not present & set(PATHOLOGIES))
        stated += len(present)
    assert stated > n // 2  # the comparison is not between two empty readings


def test_folds_keep_a_split_group_together():
    groups = [f"g{i % 37}" for i in range(500)]
    folds = [fold_of(g, 5) for g in groups]
    by_group: dict[str, set[int]] = {}
    for g, f in zip(groups, folds, strict=True):
        by_group.setdefault(g, set()).add(f)
    assert all(len(v) == 1 for v in by_group.values())
    assert len(set(folds)) == 5
