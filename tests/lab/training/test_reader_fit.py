"""`radstation-train reader` end to end on a tiny curated folder: lung boxes, CV of both components, calibration,
and a reader folder the pipeline loads."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from engines.reader import FindingReader
from lab.cli import main as train_main


def _curated(tmp: Path, n: int = 36) -> Path:
    root = tmp / "cxr"
    (root / "images").mkdir(parents=True)
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        im = rng.integers(30, 90, (64, 64)).astype(np.uint8)
        im[12:52, 10:54] += 40  # the "lungs"
        sick = i % 2 == 0
        if sick:
            im[20:36, 20:36] = 240
        Image.fromarray(im).save(root / f"images/{i}.png")
        source = "nih_talo" if i % 3 else "covid_ieee8023"
        rows.append({"image_id": f"im{i}", "file": f"images/{i}.png", "source": source, "patient_id": f"p{i}",
                     "split": "train", "view_group": "frontal",
                     "labels": ["Effusion"] if sick else ["No Finding"],
                     "boxes": [] if i % 4 else [
                         {"label": "Right Lung", "kind": "anatomy", "bbox_xywh_256": [10, 12, 22, 40]},
                         {"label": "Left Lung", "kind": "anatomy", "bbox_xywh_256": [32, 12, 22, 40]}]})
    (root / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


def test_train_reader_command_writes_a_loadable_calibrated_reader(tmp_path, capsys):
    data = _curated(tmp_path)
    out = tmp_path / "reader"
    rc = train_main(["reader", "--data", str(data), "--out", str(out), "--findings", "No Finding,Pleural Effusion",
                     "--size", "32", "--widths", "8,16", "--epochs", "2", "--batch", "8", "--folds", "2",
                     "--combine", "cnn=1,linear=1", "--linear-pca", "8", "--linear-c", "1",
                     "--lungbox-epochs", "3", "--resamples", "20"])
    assert rc == 0
    summary = json.loads((out / "training.json").read_text())
    assert set(summary["cv_tables"]) == {"cnn", "linear", "combined"} and summary["lungbox_cv_iou"]["n"] == 9
    reader = FindingReader.from_pretrained(out)
    assert set(reader.config.calibration) == {"No Finding", "Pleural Effusion"}
    assert set(reader.config.component_norm) == {"cnn", "linear"}
    im = np.asarray(Image.open(data / "images/0.png"), np.float32) / 255
    p = reader.probabilities([im])[0]
    assert 0 < p["Pleural Effusion"] < 1 and reader.lungbox is not None
    oof = np.load(out / "oof_train.npz")  # what the per-finding calibration is chosen on (radstation-eval calibration)
    assert list(oof["names"]) == ["No Finding", "Pleural Effusion"] and oof["probs"].shape == (36, 2)
    assert sorted(map(str, oof["ids"])) == sorted(f"im{i}" for i in range(36))
    assert np.all((oof["probs"] > 0) & (oof["probs"] < 1))
