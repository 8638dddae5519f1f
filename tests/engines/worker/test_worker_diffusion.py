"""The built-in engine (tiny random checkpoint) through the real worker: every job kind, arrays both ways."""

from __future__ import annotations

import numpy as np
import pytest

from engines.backends.results import ImageOutput, RegionMaps
from engines.worker.client import WorkerClient, WorkerFailed

tiny = pytest.importorskip("engines.models.tiny", reason="the built-in engine is not in this checkout")


def test_all_jobs_of_the_builtin_engine_through_the_worker(tmp_path) -> None:
    ckpt = tiny.make_tiny_checkpoint(tmp_path / "medim")
    img = (np.random.default_rng(0).random((40, 48)) * 4095).astype(np.uint16)
    with WorkerClient("diffusion", {"path": str(ckpt), "device": "cpu", "threads": 1}) as w:
        status = w.start()
        assert status["name"] == "diffusion" and "inpaint" in status["capabilities"]
        seen: list[tuple[int, int]] = []
        draft = w.wait(w.submit("draft", {"images": [img, img], "seed": 1}), on_progress=lambda d, t, _s: seen.append((d, t)))
        assert draft.findings and draft.images_used == [0, 1] and seen[-1] == (draft.steps, draft.steps)
        assert draft.provenance["weights_hash"] == status["weights_hash"]
        synth = w.run("synthesise", {"report": "Small left pleural effusion.", "seed": 2})
        assert isinstance(synth, ImageOutput) and synth.image.dtype == np.uint8 and synth.image.ndim == 2
        mask = np.zeros(synth.maps["token_grid"].shape, bool)
        mask[:2] = True
        painted = w.run("inpaint", {"image": synth.image, "token_mask": mask, "report": "The lungs are clear."})
        assert painted.image.shape == synth.image.shape
        maps = w.run("explain", {"images": [img], "text": "The heart is normal in size."})
        assert isinstance(maps, RegionMaps) and maps.maps["attention"].shape == mask.shape
        with pytest.raises(WorkerFailed, match="token_mask") as info:
            w.run("inpaint", {"image": synth.image, "token_mask": np.zeros((2, 2), bool), "report": "x"})
        assert info.value.kind == "backend"


def test_extra_jobs_beside_another_engine_run_on_the_builtin_weights_in_the_same_worker(tmp_path,
                                                                                         tiny_vlm_dir) -> None:
    """The app's one worker drafts with the chosen engine and explains with the built-in one beside it."""
    from explain.worker_jobs import explanation_from_result

    ckpt = tiny.make_tiny_checkpoint(tmp_path / "medim", text_len=48)
    img = (np.random.default_rng(3).random((40, 48)) * 255).astype(np.uint8)
    config = {"path": str(tiny_vlm_dir), "device": "cpu", "threads": 1, "max_new_tokens": 4,
              "internals_path": str(ckpt)}
    with WorkerClient("hf-vlm", config, jobs=("explain.worker_jobs",)) as w:
        assert w.start()["name"] == "hf-vlm"
        pid = w.pid
        assert w.run("draft", {"images": [img]}).text
        params = {"images": [img], "text": "Small left pleural effusion. Heart size normal.", "draft": None,
                  "k_drafts": 1, "steps": 3, "ig_steps": 2}
        exp = explanation_from_result(w.run("explain_study", params))
        assert len(exp.sentences) == 2 and w.pid == pid
