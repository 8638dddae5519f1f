"""Explanations and what-if images computed in the app's one engine worker process (app.model_runner over
engines.worker.client), with cancel and recovery from a killed worker; drafts run in that same worker;
the in-process runner gives the same results."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import numpy as np
import psutil
import pytest

from app.model_runner import JOB_MODULES, ClientRunner, InProcessRunner
from engines.counterfactual import WhatIfRequest
from engines.counterfactual.worker_jobs import whatif_from_result
from engines.errors import JobCancelled
from engines.models.tiny import make_tiny_checkpoint
from engines.worker.client import WorkerClient
from engines.worker.wire import to_wire
from explain.worker_jobs import explanation_from_result

REPORT = "FINDINGS: Small left pleural effusion. Heart size normal. IMPRESSION: Effusion."
IMG = (np.random.default_rng(2).random((40, 48)) * 255).astype(np.uint8)


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_checkpoint(tmp_path_factory.mktemp("runner"), text_len=48)


@pytest.fixture(scope="module")
def runner(tiny_dir: Path):
    client = WorkerClient("diffusion", {"path": str(tiny_dir), "device": "cpu", "threads": 1}, jobs=JOB_MODULES)
    yield ClientRunner(client)
    client.close()


def _workers() -> list[psutil.Process]:
    return [p for p in psutil.Process().children(recursive=True) if "engines.worker" in " ".join(p.cmdline())]


def _explain_params(k: int = 1) -> dict:
    return {"images": [IMG], "text": REPORT, "draft": None, "k_drafts": k, "steps": 4, "ig_steps": 2}


def test_explanation_runs_in_the_worker_process_and_matches_in_process(runner: ClientRunner, tiny_dir) -> None:
    seen: list[tuple[int, int]] = []
    result = runner.run("explain_study", _explain_params(), lambda d, n, *_: seen.append((d, n)))
    assert runner.pid is not None and runner.pid != os.getpid()
    exp = explanation_from_result(result)
    assert len(exp.sentences) == 3 and exp.sentences[0].grids["attention"].shape == (4, 4)
    assert seen and seen[-1][0] == seen[-1][1]
    from engines.pipeline import MedimPipeline

    local = explanation_from_result(InProcessRunner(lambda: MedimPipeline.from_pretrained(tiny_dir, "cpu")).run(
        "explain_study", _explain_params()))
    np.testing.assert_allclose(local.sentences[1].grids["attention"], exp.sentences[1].grids["attention"],
                               rtol=1e-4, atol=1e-5)
    assert local.drafts == exp.drafts


def test_whatif_result_comes_back_whole(runner: ClientRunner) -> None:
    req = WhatIfRequest(IMG, "Small left pleural effusion.", "No pleural effusion.", seeds=(0, 1), steps=3)
    stages: list[str] = []
    res = whatif_from_result(runner.run("whatif", {"request": to_wire(req)}, lambda d, n, s="": stages.append(s)))
    assert [v.seed for v in res.variants] == [0, 1] and res.variants[0].image.dtype == np.uint8
    assert res.token_mask.dtype == bool and res.edit.changes[0].finding == "Pleural Effusion"
    assert "variant 2 of 2" in stages


def test_bad_request_is_a_plain_error_and_the_worker_lives_on(runner: ClientRunner) -> None:
    pid = runner.pid
    with pytest.raises(RuntimeError, match="explain_study needs at least one image"):
        runner.run("explain_study", {**_explain_params(), "images": []})
    assert runner.pid == pid


def test_cancel_then_killed_worker_then_recovery(runner: ClientRunner) -> None:
    ticks: list[int] = []
    with pytest.raises(JobCancelled):
        runner.run("explain_study", _explain_params(k=8), lambda d, *_: ticks.append(d), cancel=lambda: bool(ticks))
    pid = runner.pid
    assert pid is not None

    def kill_on_first_tick(*_):  # the worker dies mid-job, as on a segfault or the OOM killer
        if runner.pid == pid:
            os.kill(pid, signal.SIGKILL)

    with pytest.raises(RuntimeError, match="restarted on the next request"):
        runner.run("explain_study", _explain_params(k=50), kill_on_first_tick)
    exp = explanation_from_result(runner.run("explain_study", _explain_params()))  # a fresh worker
    assert runner.pid not in (None, pid) and len(exp.sentences) == 3


def test_drafts_and_explanations_share_one_worker_and_one_copy_of_the_weights(runner: ClientRunner,
                                                                                tiny_dir: Path) -> None:
    before = {w.pid for w in _workers()}  # workers other tests of this process left running are not this one's
    draft = runner.client.run("draft", {"images": [IMG], "seed": 1, "override_scope": True}, timeout=120)
    pid = runner.pid
    assert draft.findings and draft.provenance["model"] == str(tiny_dir)
    exp = explanation_from_result(runner.run("explain_study", _explain_params()))
    assert len(exp.sentences) == 3 and runner.pid == pid
    assert [w.pid for w in _workers() if w.pid not in before or w.pid == pid] == [pid]  # no second process
    assert runner.key.startswith(f"{tiny_dir}:")  # caches are keyed by the weights that explain


def test_missing_weights_folder_is_a_clear_error(tmp_path: Path) -> None:
    client = WorkerClient("diffusion", {"path": str(tmp_path / "nowhere"), "device": "cpu", "threads": 1},
                          jobs=JOB_MODULES)
    try:
        with pytest.raises(RuntimeError, match="could not be loaded.*does not exist"):
            ClientRunner(client).run("explain_study", _explain_params())
    finally:
        client.close()
