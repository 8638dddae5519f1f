"""radstation-train answer works on any split of the curated data (it used to load train and val only and fail
with a KeyError on test-split questions), and says which images it cannot find."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engines.models.tiny import make_tiny_checkpoint
from lab.training.answer_split import answer_split


def _curated(tmp: Path) -> Path:
    root = tmp / "cxr"
    (root / "images").mkdir(parents=True)
    rows = []
    for i, split in enumerate(("train", "test")):
        Image.fromarray(np.random.default_rng(i).integers(0, 255, (32, 32), np.uint8)).save(root / f"images/{i}.png")
        rows.append({"image_id": f"im{i}", "file": f"images/{i}.png", "source": "nih_talo", "patient_id": f"p{i}",
                     "split": split, "view_group": "frontal", "labels": ["No Finding"]})
    (root / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


def test_answers_test_split_questions_and_names_missing_images(tmp_path):
    data, model = _curated(tmp_path), make_tiny_checkpoint(tmp_path / "m")
    qs = tmp_path / "qa.jsonl"
    qs.write_text(json.dumps({"id": "q1", "image_id": "im1", "question": "Is there an effusion?"}) + "\n")
    out = tmp_path / "answers.jsonl"
    res = answer_split(model, data, qs, out, steps=2, guidance=0.0, seed=0, limit=None, device="cpu")
    assert res["n"] == 1 and json.loads(out.read_text().splitlines()[0])["id"] == "q1"
    qs.write_text(json.dumps({"id": "q2", "image_id": "nowhere", "question": "Is there an effusion?"}) + "\n")
    with pytest.raises(ValueError, match="not in the curated data.*nowhere"):
        answer_split(model, data, qs, out, steps=2, guidance=0.0, seed=0, limit=None, device="cpu")
