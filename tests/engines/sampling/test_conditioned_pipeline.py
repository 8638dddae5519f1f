"""A finding-conditioned checkpoint in the pipeline: drafts are told the head's reading, images their report's
findings, on torch and on onnxruntime alike."""

from __future__ import annotations

import numpy as np
import pytest

from engines.export.onnx_export import export_model_folder
from engines.models.tiny import make_tiny_checkpoint
from engines.pipeline import MedimPipeline

FINDINGS = ("No Finding", "Pleural Effusion")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_tiny_checkpoint(tmp_path_factory.mktemp("cond"), text_len=40, findings=FINDINGS,
                                finding_condition=True)


@pytest.fixture()
def pipe(folder) -> MedimPipeline:
    p = MedimPipeline.from_pretrained(folder, device="cpu")
    p.finding_prior = {"No Finding": 0.3, "Pleural Effusion": 0.1}
    return p


def _image():
    return np.random.default_rng(0).integers(0, 255, (40, 40), dtype=np.uint8)


def test_drafts_are_told_what_the_head_read(pipe):
    img = _image()
    plain = pipe.draft_report([img], steps=3, temperature=0)
    assert plain.finding_states is None
    told = pipe.draft_report([img], steps=3, temperature=0, condition="head-prior")
    p = pipe.finding_probabilities([img])[0]
    normal = p["No Finding"] > 0.3
    assert told.finding_states == {"No Finding": float(normal or p["Pleural Effusion"] <= 0.1),
                                   "Pleural Effusion": float(not normal and p["Pleural Effusion"] > 0.1)}
    # The states reach the model: flipping the prevalence flips what it is told and what it writes.
    pipe.finding_prior = {"No Finding": 1.0 if normal else 0.0, "Pleural Effusion": 0.0 if normal else 1.0}
    flipped = pipe.draft_report([img], steps=3, temperature=0, condition="head-prior")
    assert flipped.finding_states != told.finding_states and flipped.text != told.text
    several = pipe.draft_report([img, img[::-1]], steps=3, temperature=0, condition="head-prior", consensus=2)
    assert several.finding_states is not None


def test_images_are_told_their_reports_findings(pipe):
    a = pipe.synthesise("Small left pleural effusion.", steps=3, temperature=0, condition=True)
    b = pipe.synthesise("Small left pleural effusion.", steps=3, temperature=0, condition=False)
    assert not np.array_equal(a.token_grid, b.token_grid)
    mask = np.zeros((pipe.grid, pipe.grid), bool)
    mask[:2] = True
    c = pipe.inpaint(_image(), mask, "No acute abnormality.", steps=3, temperature=0, condition=True)
    assert np.array_equal(c.token_grid[2:], pipe.encode_image(_image())[2:])


def test_bad_condition_requests_are_clear_errors(pipe, tmp_path):
    with pytest.raises(ValueError, match="unknown condition"):
        pipe.draft_report([_image()], steps=2, condition="oracle")
    plain = MedimPipeline.from_pretrained(make_tiny_checkpoint(tmp_path / "plain", findings=FINDINGS), device="cpu")
    with pytest.raises(ValueError, match="not trained with finding conditioning"):
        plain.draft_report([_image()], steps=2, condition="head-prior")
    with pytest.raises(ValueError, match="not trained with finding conditioning"):
        plain.synthesise("Small left pleural effusion.", steps=2, condition=True)


def test_onnx_graph_takes_the_finding_states(folder, pipe):
    rep = export_model_folder(folder)
    assert rep["backbone_max_abs_diff"] < 1e-4
    ort = MedimPipeline.from_pretrained(folder, runtime="onnx", device="cpu")
    ort.finding_prior = pipe.finding_prior
    img = _image()
    a = ort.draft_report([img], steps=3, temperature=0, condition="head-prior")
    b = pipe.draft_report([img], steps=3, temperature=0, condition="head-prior")
    assert a.text == b.text and a.finding_states == b.finding_states
    assert ort.draft_report([img], steps=3, temperature=0).text == pipe.draft_report([img], steps=3,
                                                                                     temperature=0).text


def test_split_drafting_tells_each_image_its_own_reading(pipe):
    a, b = _image(), np.random.default_rng(1).integers(0, 255, (40, 40), dtype=np.uint8)
    pa, pb = pipe.finding_probabilities([a, b])
    pipe.finding_prior = {"No Finding": (pa["No Finding"] + pb["No Finding"]) / 2, "Pleural Effusion": 0.0}
    got = pipe.draft_reports([a, b], steps=3, temperature=0.0, seed=0, consensus=1, condition="head-prior")
    for img, (f, i) in zip((a, b), got, strict=True):
        one = pipe.draft_report([img], steps=3, temperature=0, consensus=1, condition="head-prior")
        assert (one.findings_text, one.impression_text) == (f, i)
    # One draft per image needs no selection, whatever the configured one (it used to demand head probabilities).
    picky = pipe.draft_reports([a, b], steps=3, temperature=0.0, seed=0, consensus=1, select="verified-prior",
                               condition="none")
    assert picky == pipe.draft_reports([a, b], steps=3, temperature=0.0, seed=0, consensus=1, condition="none")
    with pytest.raises(ValueError, match="unknown condition"):
        pipe.draft_reports([a], steps=3, temperature=0.0, seed=0, condition="oracle")


def test_ship_writes_the_condition_defaults(folder, tmp_path):
    import json

    from lab.cli import main

    out = tmp_path / "shipped"
    assert main(["ship", "--work", str(folder), "--out", str(out), "--condition", "head-prior",
                 "--condition-images", "yes", "--whatif-head-guidance", "2", "--synthesis-head-guidance", "1.5",
                 "--whatif-head-region", "0.5"]) == 0
    sampling = json.loads((out / "config.json").read_text())["sampling"]
    assert sampling["condition"] == "head-prior" and sampling["condition_images"] is True
    assert sampling["whatif_head_guidance"] == 2.0 and sampling["synthesis_head_guidance"] == 1.5
    shipped = MedimPipeline.from_pretrained(out, device="cpu")
    assert shipped.default_head_guidance == 2.0 and shipped.default_synthesis_head_guidance == 1.5
    assert sampling["whatif_head_region"] == 0.5 and shipped.default_head_region == 0.5
    with pytest.raises(SystemExit):
        main(["ship", "--work", str(folder), "--out", str(out), "--condition-images", "maybe"])


def test_a_contrast_report_steers_guidance_away_from_its_findings(pipe):
    mask = np.zeros((pipe.grid, pipe.grid), bool)
    mask[:, :2] = True
    edited, current = "No acute abnormality.", "Small left pleural effusion."

    def run(guidance, contrast):
        return pipe.inpaint(_image(), mask, edited, steps=3, temperature=0, guidance=guidance, condition=True,
                            contrast_report=contrast).token_grid

    assert not np.array_equal(run(3.0, current), run(3.0, None))  # the unconditional pass is told other findings
    assert np.array_equal(run(0.0, current), run(0.0, None))  # without guidance there is no unconditional pass
    kept = run(3.0, current)
    assert np.array_equal(kept[:, 2:], pipe.encode_image(_image())[:, 2:])
