"""The input gate end to end on a real (tiny, random) engine: statistics fitted by the lab code, saved and
loaded like the shipped ones, decisions per image, and the gated jobs the worker and the CLI run."""

from __future__ import annotations

import json

import numpy as np
import pytest

from engines.backends import create_backend
from engines.backends.results import OutOfScope, Refused, TextOutput
from engines.models.tiny import make_tiny_checkpoint
from engines.scope.embedding import medim_embedder
from engines.scope.gate import InputGate
from engines.scope.guard import OUT_OF_SCOPE, build_gate, run_gated
from engines.scope.stats import ARRAYS_NAME, JSON_NAME, ScopeStatistics, ScopeStatisticsError
from engines.worker.requests import AnswerRequest, DraftRequest
from lab.eval.scope_fit import fit_frontal, fit_ood

FINDINGS = ("No Finding", "Cardiomegaly", "Pleural Effusion")
PA = {"Modality": "DX", "BodyPartExamined": "CHEST", "ViewPosition": "PA", "PhotometricInterpretation": "MONOCHROME2"}


def _chest_like(rng: np.random.Generator) -> np.ndarray:
    """A smooth two-lobed bright field on a dark background: the 'training distribution' of this test."""
    yy, xx = np.mgrid[0:64, 0:64] / 64.0
    a = np.exp(-((xx - 0.3 - rng.normal(0, 0.02)) ** 2 + (yy - 0.5) ** 2) / 0.03)
    b = np.exp(-((xx - 0.7 - rng.normal(0, 0.02)) ** 2 + (yy - 0.5) ** 2) / 0.03)
    return np.clip(a + b + rng.normal(0, 0.02, (64, 64)), 0, 1).astype(np.float32)


def _noise(rng: np.random.Generator) -> np.ndarray:
    return rng.random((64, 64)).astype(np.float32)


@pytest.fixture(scope="module")
def backend(tmp_path_factory):
    """The built-in engine on a tiny random checkpoint with a finding head, and gate statistics fitted on
    generated images and saved next to its weights."""
    folder = make_tiny_checkpoint(tmp_path_factory.mktemp("gate"), findings=FINDINGS)
    b = create_backend("diffusion", path=folder, device="cpu")
    name, embed = medim_embedder(b.pipe)
    rng = np.random.default_rng(0)
    pos = embed([_chest_like(rng) for _ in range(40)])
    neg = embed([np.rot90(_chest_like(rng)) for _ in range(20)] + [_noise(rng) for _ in range(20)])
    mean, precision, ood_t = fit_ood(pos, reject_percent=2.0)
    f_mu, f_sd, w, bias, f_t, _rates = fit_frontal(pos, neg, reject_percent=2.0)
    ScopeStatistics(name, mean, precision, f_mu, f_sd, w, bias, ood_t, f_t, {"note": "test"}).save(folder)
    b._input_gate = None  # built from the saved files on first use
    return b


def test_statistics_round_trip_and_broken_files_name_the_problem(backend, tmp_path) -> None:
    stats = ScopeStatistics.load(backend.path)
    assert stats.embedding.startswith("medim-image-tokens@layer") and stats.info["note"] == "test"
    stats.save(tmp_path)
    again = ScopeStatistics.load(tmp_path)
    assert np.allclose(again.precision, stats.precision, atol=1e-5) and again.ood_threshold == stats.ood_threshold
    with pytest.raises(ScopeStatisticsError, match="no input-gate statistics"):
        ScopeStatistics.load(tmp_path / "missing")
    np.savez(tmp_path / ARRAYS_NAME, mean=np.zeros(3), precision=np.eye(4), frontal_mean=np.zeros(3),
             frontal_scale=np.ones(3), frontal_weights=np.zeros(3))  # tampered: sizes disagree
    with pytest.raises(ScopeStatisticsError, match="do not agree"):
        ScopeStatistics.load(tmp_path)
    (tmp_path / JSON_NAME).write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(ScopeStatisticsError):
        ScopeStatistics.load(tmp_path)


def test_gate_passes_the_fitted_distribution_and_stops_what_lies_outside(backend) -> None:
    gate = build_gate(backend)
    assert gate.image_check == "on"
    rng = np.random.default_rng(7)  # images never seen while fitting
    inside = [gate.check([_chest_like(rng)], [PA]) for _ in range(10)]
    assert sum(d.in_scope for d in inside) >= 8
    outside = [gate.check([_noise(rng)], [PA]) for _ in range(10)]
    assert not any(d.in_scope for d in outside)
    d = outside[0]
    assert d.images[0].image_checked and d.images[0].ood_score is not None
    assert "Out of scope" in d.summary() and "frontal (PA/AP) chest radiographs only" in d.summary()


def test_each_image_is_judged_and_the_job_keeps_those_in_scope(backend) -> None:
    rng = np.random.default_rng(3)
    gate = build_gate(backend)
    lateral = {**PA, "ViewPosition": "LL"}
    d = gate.check([_chest_like(rng), _chest_like(rng)], [lateral, PA])
    assert d.in_scope and d.used == [1]
    assert "1 of 2 images left out" in d.summary() and "lateral view" in d.summary()
    mr = gate.check([_chest_like(rng)], [{"Modality": "MR"}])
    assert not mr.in_scope and mr.used == [] and "Modality MR" in mr.reason
    forced = gate.check([_chest_like(rng)], [{"Modality": "MR"}], override=True)
    assert forced.override and forced.used == [0] and forced.summary().startswith("Override: out of scope")


def test_statistics_of_another_embedding_are_not_used(backend) -> None:
    stats = ScopeStatistics.load(backend.path)
    gate = InputGate(lambda ims: np.zeros((len(ims), stats.dim)), stats, embedding_name="cnn-reader@v2")
    assert gate.image_check.startswith("the statistics were fitted on the embedding")
    d = gate.check([np.zeros((64, 64))], [PA])
    assert d.in_scope and not d.images[0].image_checked and "image not checked" in d.summary()


def test_gated_jobs_return_nothing_out_of_scope_unless_overridden(backend) -> None:
    rng = np.random.default_rng(5)
    image = _chest_like(rng)
    stopped = run_gated(backend, DraftRequest(images=(image,), headers=({"Modality": "MR"},), steps=2))
    assert isinstance(stopped, OutOfScope) and "Modality MR" in stopped.scope.reason
    wire = stopped.to_json()
    assert wire["kind"] == OUT_OF_SCOPE and wire["text"] == "" and "Modality MR" in wire["scope"]["reason"]
    forced = run_gated(backend, DraftRequest(images=(image,), headers=({"Modality": "MR"},), steps=2,
                                             override_scope=True))
    assert isinstance(forced, TextOutput) and forced.text and forced.scope.override and not forced.scope.in_scope
    both = run_gated(backend, DraftRequest(images=(image, image), headers=({**PA, "ViewPosition": "LL"}, PA),
                                           steps=2))
    assert both.text and both.images_used == [1] and both.scope.used == [1]
    reading = both.extra["reading"]
    assert set(reading) == set(FINDINGS) and all(r["answer"] in ("yes", "no", "uncertain") for r in reading.values())


def test_questions_outside_the_findings_are_refused_before_the_image_is_read(backend) -> None:
    image = _chest_like(np.random.default_rng(6))
    refused = run_gated(backend, AnswerRequest(images=(image,), headers=(PA,), question="Is there a pacemaker?"))
    assert isinstance(refused, Refused) and "devices" in refused.reason
    assert "cardiomegaly" in refused.can_answer and "pleural effusion" in refused.can_answer
    answered = run_gated(backend, AnswerRequest(images=(image,), headers=(PA,), question="Is there an effusion?"))
    extra = answered.extra
    assert answered.text in ("yes", "no", "uncertain") and extra["finding"] == "Pleural Effusion"
    assert 0 < extra["probability"] < 1 and extra["calibrated"] is False and answered.scope.in_scope
    out = run_gated(backend, AnswerRequest(images=(image,), headers=({"Modality": "CT"},),
                                           question="Is there an effusion?"))
    assert isinstance(out, OutOfScope)


def test_the_gate_uses_the_embedding_its_statistics_were_fitted_on(tmp_path) -> None:
    """Weights with a finding reader offer two embeddings (the reader's features, the backbone's tokens); the
    worker's gate measures in the one the shipped statistics name, and says so when they name neither."""
    import torch

    from engines.reader import FindingReader, ReaderConfig
    from engines.reader.network import ReaderNet
    from engines.scope.embedding import medim_embedders, reader_embedding_name

    folder = make_tiny_checkpoint(tmp_path / "w", findings=FINDINGS)
    torch.manual_seed(0)
    cfg = ReaderConfig(findings=FINDINGS, size=32, widths=(8, 16), crop="none")
    FindingReader(cfg, [ReaderNet(cfg)], None).save(folder / "reader")
    b = create_backend("diffusion", path=folder, device="cpu")
    offered = medim_embedders(b.pipe)
    reader_name = reader_embedding_name(b.pipe.reader)
    assert reader_name in offered and any(n.startswith("medim-image-tokens@") for n in offered)
    rng = np.random.default_rng(0)
    pos_images = [_chest_like(rng) for _ in range(40)]
    neg_images = [np.rot90(_chest_like(rng)) for _ in range(20)] + [_noise(rng) for _ in range(20)]
    for name, embed in offered.items():
        pos, neg = embed(pos_images), embed(neg_images)
        mean, precision, ood_t = fit_ood(pos, reject_percent=2.0)
        f_mu, f_sd, w, bias, f_t, _rates = fit_frontal(pos, neg, reject_percent=2.0)
        ScopeStatistics(name, mean, precision, f_mu, f_sd, w, bias, ood_t, f_t, {}).save(folder)
        gate = build_gate(b)
        assert gate.image_check == "on" and gate.embedding_name == name
        assert gate.check([pos_images[0]], [PA]).images[0].image_checked
    ScopeStatistics("some-other-reader", mean, precision, f_mu, f_sd, w, bias, ood_t, f_t, {}).save(folder)
    assert "refit them" in build_gate(b).image_check
