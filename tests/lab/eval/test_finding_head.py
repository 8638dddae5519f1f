"""lab.eval.finding_head and MedimPipeline.finding_probabilities on tiny model folders."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from engines.models.tiny import make_tiny_checkpoint
from engines.pipeline import MedimPipeline
from lab.eval.finding_head import head_aurocs


def _samples(n: int = 10):
    rng = np.random.default_rng(0)
    out = []
    for k in range(n):
        im = rng.random((32, 32)).astype(np.float32)
        out.append(SimpleNamespace(load_image=lambda im=im: im, findings={"Edema": int(k % 2), "Pneumonia": 1}))
    return out


def test_head_probabilities_and_aurocs(tmp_path):
    pipe = MedimPipeline.from_pretrained(make_tiny_checkpoint(tmp_path, findings=("Edema", "Pneumonia")),
                                         device="cpu")
    samples = _samples()
    probs = pipe.finding_probabilities([s.load_image() for s in samples[:3]])
    assert len(probs) == 3 and set(probs[0]) == {"Edema", "Pneumonia"}
    assert all(0.0 < v < 1.0 for p in probs for v in p.values())
    res = head_aurocs(pipe, samples, batch=4)
    assert res["n_images"] == 10 and res["findings"]["Edema"]["positives"] == 5
    assert 0.0 <= res["findings"]["Edema"]["auroc"] <= 1.0
    assert res["findings"]["Pneumonia"]["auroc"] is None  # one class only: no AUROC, not a number
    assert res["macro_auroc"] == res["findings"]["Edema"]["auroc"]


def test_weights_without_a_head_say_so(tmp_path):
    pipe = MedimPipeline.from_pretrained(make_tiny_checkpoint(tmp_path), device="cpu")
    assert pipe.finding_probabilities([np.zeros((32, 32), np.float32)]) == [{}]
    with pytest.raises(ValueError, match="no finding head"):
        head_aurocs(pipe, _samples(2))
