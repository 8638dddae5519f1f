"""engines.reader: preprocessing, the reader folder round trip, calibration, CAM, and the pipeline's use of it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from engines.reader import FindingReader, ReaderConfig, ReaderError
from engines.reader.network import LungBoxNet, ReaderNet
from engines.reader.preprocess import content_box, equalise, square_crop

FINDINGS = ("No Finding", "Edema", "Pneumonia")


def _reader(crop: str = "lung", members: int = 2, calibration: dict | None = None) -> FindingReader:
    torch.manual_seed(0)
    cfg = ReaderConfig(findings=FINDINGS, size=32, widths=(8, 16), crop=crop, calibration=calibration or {})
    return FindingReader(cfg, [ReaderNet(cfg) for _ in range(members)], LungBoxNet() if crop == "lung" else None)


def test_content_box_drops_padding_bars_and_keeps_flat_images_whole():
    im = np.zeros((100, 120), np.uint8)
    im[10:90, 30:100] = np.random.default_rng(0).integers(20, 240, (80, 70))
    assert content_box(im) == (30, 10, 100, 90)
    assert content_box(np.full((50, 50), 7, np.uint8)) == (0, 0, 50, 50)


def test_equalise_keeps_black_black_and_spreads_the_rest():
    im = np.zeros((64, 64), np.uint8)
    im[8:56, 8:56] = np.linspace(100, 120, 48 * 48).reshape(48, 48).astype(np.uint8)
    eq = equalise(im)
    assert (eq[:8] == 0).all() and eq[8:56, 8:56].min() >= 1
    assert eq[8:56, 8:56].max() - eq[8:56, 8:56].min() > 200  # a 20-level range stretched to the full scale


def test_square_crop_is_square_and_black_outside_the_image():
    im = np.full((40, 40), 200, np.uint8)
    crop = square_crop(im, (20, 0, 60, 40), 16)  # half of the window lies right of the image
    assert crop.shape == (16, 16) and crop[:, -2:].max() == 0 and crop[:, :6].min() == 200


def test_folder_round_trip_reads_the_same(tmp_path):
    r = _reader()
    r.save(tmp_path / "reader")
    back = FindingReader.from_pretrained(tmp_path / "reader")
    assert len(back.members) == 2 and back.findings == FINDINGS and len(back.weights_hash) == 64
    ims = [np.random.default_rng(i).random((70, 50)).astype(np.float32) for i in range(3)]
    a, b = r.probabilities(ims), back.probabilities(ims)
    assert [list(x) for x in a] == [list(FINDINGS)] * 3
    assert np.allclose([list(x.values()) for x in a], [list(x.values()) for x in b], atol=1e-6)
    assert back.embed(ims).shape == (3, 16)


def test_calibration_is_applied_per_finding():
    r = _reader(crop="none", members=1, calibration={"Edema": (2.0, -1.0)})
    logits = np.array([[0.5, 0.5, 0.5]])
    p = r.calibrated(logits)[0]
    assert p[0] == pytest.approx(1 / (1 + np.exp(-0.5)))  # unfitted: identity
    assert p[1] == pytest.approx(1 / (1 + np.exp(-(2.0 * 0.5 - 1.0))))
    with pytest.raises(ValueError, match="slopes must be > 0"):
        ReaderConfig(findings=FINDINGS, calibration={"Edema": (0.0, 1.0)})


def test_cam_is_in_the_image_grid_and_zero_outside_the_read_region():
    r = _reader(crop="trim", members=1)
    im = np.zeros((80, 100), np.float32)
    im[10:70, 30:80] = np.random.default_rng(1).random((60, 50))
    cam = r.cam(im, "Edema")
    assert cam.shape == (80, 100) and (cam >= 0).all()
    assert cam[:, :25].max() == 0 and cam[:, 85:].max() == 0  # outside the square around the content box
    with pytest.raises(ValueError, match="does not read"):
        r.cam(im, "Pacemaker")


def test_broken_folders_give_clear_errors(tmp_path):
    with pytest.raises(ReaderError, match="lacks config.json"):
        FindingReader.from_pretrained(tmp_path)
    r = _reader()
    r.save(tmp_path / "r")
    (tmp_path / "r" / "lungbox.safetensors").unlink()
    with pytest.raises(ReaderError, match="lungbox"):
        FindingReader.from_pretrained(tmp_path / "r")
    cfg = json.loads((tmp_path / "r" / "config.json").read_text())
    cfg["widths"] = [4, 8]
    cfg["crop"] = "none"
    (tmp_path / "r" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ReaderError, match="does not match"):
        FindingReader.from_pretrained(tmp_path / "r")
    with pytest.raises(ValueError, match="2D"):
        _reader(crop="none").probabilities([np.zeros((3, 4, 4))])


def test_pipeline_reads_with_the_reader_when_the_folder_ships_one(tmp_path):
    from engines.models.tiny import make_tiny_checkpoint
    from engines.pipeline import MedimPipeline

    folder = make_tiny_checkpoint(tmp_path, findings=("Edema", "Pneumonia"))
    head = MedimPipeline.from_pretrained(folder, device="cpu")
    assert head.reading_source == "head"
    r = _reader(crop="none", members=1, calibration={"Edema": (1.0, 8.0)})  # the reader says Edema, surely
    r.config = ReaderConfig(**{**r.config.to_dict(), "prevalence": {"Edema": 0.3}})
    r.save(folder / "reader")
    pipe = MedimPipeline.from_pretrained(folder, device="cpu")
    assert pipe.reading_source == "reader" and pipe.reading_findings == FINDINGS
    assert pipe.finding_prior["Edema"] == 0.3  # "usual" is the reader's own prevalence
    im = np.random.default_rng(0).random((32, 32)).astype(np.float32)
    p = pipe.finding_probabilities([im])[0]
    assert set(p) == set(FINDINGS) and p["Edema"] > 0.99
    assert pipe.image_embedding([im]).shape == (1, 16)
    assert head.image_embedding([im]).shape[0] == 1


def test_pipeline_refuses_a_reader_that_misses_a_conditioned_finding(tmp_path):
    from engines.models.tiny import make_tiny_checkpoint
    from engines.pipeline import MedimPipeline

    folder = make_tiny_checkpoint(tmp_path, findings=("Edema", "Cardiomegaly"))
    _reader(crop="none", members=1).save(folder / "reader")
    with pytest.raises(ValueError, match="does not read"):
        MedimPipeline.from_pretrained(folder, device="cpu")


def test_reader_maps_join_the_explanation_methods(tmp_path):
    from engines.models.tiny import make_tiny_checkpoint
    from engines.pipeline import MedimPipeline
    from explain.reader_cam import READER_GRID, reader_grid
    from explain.report import explain_report

    folder = make_tiny_checkpoint(tmp_path, findings=("Edema", "Pneumonia"))
    _reader(crop="trim", members=1).save(folder / "reader")
    pipe = MedimPipeline.from_pretrained(folder, device="cpu")
    im = np.zeros((40, 60), np.float32)
    im[5:35, 10:50] = np.random.default_rng(2).random((30, 40))
    g = reader_grid(pipe.reader, im, ["Edema", "Pneumonia"])
    assert g.shape == (READER_GRID, READER_GRID) and (g >= 0).all()
    with pytest.raises(ValueError, match="not the reader's"):
        reader_grid(pipe.reader, im, ["Fracture"])
    # class-contrastive: a finding's map is where its evidence exceeds the mean of the reader's other findings';
    # naming every finding the reader reads leaves nothing to contrast with (their plain sum)
    names = list(pipe.reader.findings)
    plain = {f: reader_grid(pipe.reader, im, [f], contrast=False) for f in names}
    e = reader_grid(pipe.reader, im, ["Edema"])
    others = np.mean([plain[f] for f in names if f != "Edema"], axis=0)
    np.testing.assert_allclose(e, np.clip(plain["Edema"] - others, 0, None), atol=1e-6)
    np.testing.assert_allclose(reader_grid(pipe.reader, im, names), sum(plain.values()), atol=1e-5)
    rep = explain_report(pipe, im, "FINDINGS: There is pulmonary edema. The heart is normal.",
                         methods=("reader",))
    edema = next(f for f in rep.findings if f.finding == "Edema")
    assert edema.pixel_map("reader").shape == (40, 60)
    np.testing.assert_allclose(edema.grids["reader"], e, atol=1e-6)  # the panel shows the contrastive map
    assert rep.sentences[1].pixel_map("reader") is None  # a sentence asserting nothing the reader reads


def _combined_reader(tmp_path):
    from engines.reader.features import FeatureSpec, LinearReadout, image_features

    spec = {"hog": [[32, 8]], "pixels": [8]}
    n = len(image_features(np.zeros((32, 32), np.uint8), FeatureSpec.from_dict(spec)))
    rng = np.random.default_rng(0)
    cfg = ReaderConfig(findings=FINDINGS, size=32, widths=(8, 16), crop="trim", features=spec,
                       combine={"cnn": 1.0, "linear": 2.0},
                       component_norm={"linear": {"Edema": (0.5, 2.0)}})
    linear = LinearReadout(rng.normal(size=(3, n)), rng.normal(size=3), rng.random(n))
    torch.manual_seed(0)
    return FindingReader(cfg, [ReaderNet(cfg)], None, linear=linear)


def test_cnn_and_linear_components_combine_and_round_trip(tmp_path):
    r = _combined_reader(tmp_path)
    im = np.random.default_rng(3).random((48, 40)).astype(np.float32)
    crops, _ = r.prepare([im])
    cnn, _ = r.cnn_scores(crops)
    lin = r.linear.logits(r.crop_features(crops))
    expect = (1.0 * cnn + 2.0 * lin * np.array([1, 0.5, 1]) - 2.0 * np.array([0, 0.25, 0])) / 3.0
    got, emb = r.scores_of_crops(crops)
    assert np.allclose(got, expect, atol=1e-5) and emb.shape == (1, 16)
    r.save(tmp_path / "r")
    back = FindingReader.from_pretrained(tmp_path / "r")
    assert np.allclose(back.scores_of_crops(crops)[0], got, atol=1e-5)
    cam = back.cam(im, "Edema")
    assert cam.shape == (48, 40) and cam.max() > 0
    (tmp_path / "r" / "linear.safetensors").unlink()
    with pytest.raises(ReaderError, match="linear.safetensors"):
        FindingReader.from_pretrained(tmp_path / "r")


def test_a_linear_readout_that_does_not_fit_its_features_is_refused():
    from engines.reader.features import LinearReadout

    cfg = ReaderConfig(findings=FINDINGS, size=32, crop="none", features={"hog": [[32, 8]], "pixels": [8]},
                       combine={"linear": 1.0})
    with pytest.raises(ValueError, match="does not fit"):
        FindingReader(cfg, [], None, linear=LinearReadout(np.zeros((3, 5)), np.zeros(3), np.zeros(5)))
    with pytest.raises(ValueError, match="feature spec"):
        ReaderConfig(findings=FINDINGS, combine={"linear": 1.0})
