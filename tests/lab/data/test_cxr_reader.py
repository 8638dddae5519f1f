"""The curated-set reader on a slice of the real data, and its error paths on a copied manifest."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from lab.data import EmptyDatasetError, SplitLeakError, load_cxr


def test_real_slice(cxr_root: Path) -> None:
    ds = load_cxr(cxr_root, splits=("val",), limit=20)
    assert len(ds) == 20 and not ds.problems
    assert all(s.split == "val" for s in ds)
    s = ds[0]
    img = s.load_image()
    assert img.shape == (256, 256) and img.dtype == np.float32 and 0.0 <= img.min() <= img.max() <= 1.0
    assert s.view in ("frontal", "lateral", "unknown")
    assert s.report_is_real is False and s.report_text == ""


def test_real_boxes_and_findings(cxr_root: Path) -> None:
    ds = load_cxr(cxr_root, splits=("train",), sources=("nih_talo",))
    with_boxes = [s for s in ds if any(b.kind == "finding" for b in s.boxes)]
    assert with_boxes
    box = next(b for b in with_boxes[0].boxes if b.kind == "finding")
    assert 0 <= box.x < 256 and 0 <= box.y < 256 and box.w > 0
    assert box.finding is None or box.finding in with_boxes[0].findings
    assert all(set(s.findings) >= {"Pneumothorax"} for s in ds)  # NIH labels are exhaustive


def test_real_splits_never_share_a_patient(cxr_root: Path) -> None:
    ds = load_cxr(cxr_root, splits=("train", "val"))
    train = {(s.source, s.patient_id) for s in ds.by_split("train")}
    val = {(s.source, s.patient_id) for s in ds.by_split("val")}
    assert train and val and not train & val


def _copy_slice(cxr_root: Path, tmp_path: Path, n: int = 4) -> list[dict]:
    rows = []
    with open(cxr_root / "manifest.jsonl", encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            if row["split"] == "train":
                rows.append(row)
            if len(rows) == n:
                break
    for row in rows:
        dst = tmp_path / row["file"]
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(cxr_root / row["file"], dst)
    return rows


def test_broken_and_missing_files_are_reported_and_skipped(cxr_root: Path, tmp_path: Path) -> None:
    rows = _copy_slice(cxr_root, tmp_path)
    (tmp_path / rows[1]["file"]).unlink()
    lines = [json.dumps(r) for r in rows] + ["{broken json", json.dumps({"split": "train", "file": "x.png"})]
    (tmp_path / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    ds = load_cxr(tmp_path, splits=("train",))
    assert len(ds) == 3
    reasons = [str(p) for p in ds.problems]
    assert len(ds.problems) == 3
    assert any(rows[1]["file"] in r and "missing" in r for r in reasons)
    assert any("broken JSON" in r for r in reasons)
    assert any("malformed" in r for r in reasons)
    assert "3 skipped" in ds.summary()


def test_empty_dataset_is_an_error(cxr_root: Path, tmp_path: Path) -> None:
    rows = _copy_slice(cxr_root, tmp_path, n=1)
    (tmp_path / rows[0]["file"]).unlink()
    (tmp_path / "manifest.jsonl").write_text(json.dumps(rows[0]) + "\n")
    with pytest.raises(EmptyDatasetError, match="no usable items.*missing"):
        load_cxr(tmp_path, splits=("train",))
    with pytest.raises(EmptyDatasetError):
        load_cxr(tmp_path / "nowhere")


def test_patient_in_two_splits_is_refused(cxr_root: Path, tmp_path: Path) -> None:
    rows = _copy_slice(cxr_root, tmp_path, n=2)
    rows[1] = {**rows[1], "patient_group": rows[0]["patient_group"], "split": "val"}
    (tmp_path / "manifest.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    with pytest.raises(SplitLeakError):
        load_cxr(tmp_path, splits=("train", "val"))
