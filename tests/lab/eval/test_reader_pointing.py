"""lab.eval.reader_pointing: rows per boxed finding with the reader, head CAM, centre and random maps, by split."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import torch

from engines.data.sample import Box
from engines.models.tiny import make_tiny_checkpoint
from engines.pipeline import MedimPipeline
from engines.reader import FindingReader, ReaderConfig
from engines.reader.network import ReaderNet
from lab.eval.reader_pointing import pointing_rows, table


def test_rows_and_table(tmp_path):
    folder = make_tiny_checkpoint(tmp_path, findings=("Edema", "Pneumonia"))
    torch.manual_seed(0)
    cfg = ReaderConfig(findings=("Edema", "Pneumonia"), size=32, widths=(8, 16), crop="none")
    FindingReader(cfg, [ReaderNet(cfg)], None).save(folder / "reader")
    pipe = MedimPipeline.from_pretrained(folder, device="cpu")
    img = np.random.default_rng(0).random((64, 64)).astype(np.float32)
    samples = [SimpleNamespace(image_id="a", split="val", load_image=lambda: img,
                               boxes=[Box("Edema", "Edema", 10, 10, 20, 20), Box("Right Lung", None, 0, 0, 30, 60,
                                                                                  kind="anatomy")]),
               SimpleNamespace(image_id="b", split="train", load_image=lambda: img,
                               boxes=[Box("Mass", "Lung Lesion", 1, 1, 5, 5)])]  # not a finding the reader reads
    rows = pointing_rows(pipe, samples)
    assert len(rows) == 1 and rows[0]["finding"] == "Edema"
    assert set(rows[0]) >= {"reader", "reader plain", "head CAM", "centre", "random"}
    assert "| val | 1 |" in table(rows)
