"""The built-in engine behind the backend interface, on the engine's own tiny random checkpoint."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from engines.backends import BackendError, create_backend
from engines.errors import JobCancelled

tiny = pytest.importorskip("engines.models.tiny", reason="the built-in engine is not in this checkout")


@pytest.fixture(scope="module")
def medim(tmp_path_factory):
    return create_backend("diffusion", path=tiny.make_tiny_checkpoint(tmp_path_factory.mktemp("medim")), device="cpu")


def _img(seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).random((48, 40)) * 1000).astype(np.float32)


def test_describe_and_capabilities(medim) -> None:
    d = medim.describe()
    assert d["name"] == "diffusion" and d["device"] == "cpu" and len(d["weights_hash"]) >= 16
    assert {"draft", "answer", "synthesise", "inpaint", "explain"} <= set(d["capabilities"])
    assert d["supports_multi_image"] is True


def test_draft_uses_every_view_and_maps_tokens_into_sections(medim) -> None:
    seen: list[tuple[int, int]] = []
    out = medim.draft([_img(0), _img(1)], seed=3, progress=lambda d, t: seen.append((d, t)))
    assert out.images_used == [0, 1] and out.seed == 3 and seen[-1] == (out.steps, out.steps)
    assert out.findings and out.tokens
    for t in out.tokens:
        assert (out.findings if t.section == "findings" else out.impression)[t.start:t.end] == t.text
    assert medim.draft([_img(0), _img(1)], seed=3).text == out.text


def test_answer_synthesise_inpaint_explain(medim) -> None:
    ans = medim.answer([_img()], "Is there a pleural effusion?")  # yes/no: scored in one forward pass
    assert ans.text in ("yes", "no") and 0.5 <= ans.confidence <= 1 and ans.extra["mode"] == "closed"
    assert set(ans.extra["scores"]) == {"yes", "no"} and ans.tokens[0].section == "answer"
    scores = ans.extra["scores"]
    assert ans.text == max(scores, key=scores.get)
    free = medim.answer([_img()], "Where is the opacity?")  # open: iterative unmasking of the answer
    assert "mode" not in free.extra and all(t.section == "answer" for t in free.tokens)
    img = medim.synthesise("The heart is normal in size.", seed=1)
    assert img.image.dtype == np.uint8 and img.image.ndim == 2 and "token_confidence" in img.maps
    grid = img.maps["token_grid"].shape
    mask = np.zeros(grid, bool)
    mask[0, 0] = True
    painted = medim.inpaint(img.image, mask, "Small left pleural effusion.", seed=1)
    assert painted.image.shape == img.image.shape
    att = medim.explain([_img()], "The lungs are clear.")["attention"]
    assert att.shape == grid and 0.0 <= att.min() and att.max() <= 1.0


def test_engine_validation_errors_become_backend_errors(medim) -> None:
    with pytest.raises(BackendError, match="empty"):
        medim.synthesise("   ")
    with pytest.raises(BackendError, match="token_mask"):
        medim.inpaint(_img(), np.zeros((3, 3), bool), "The lungs are clear.")
    with pytest.raises(JobCancelled):  # the one cancellation type: the worker reports "cancelled"
        medim.draft([_img()], cancel=lambda: True)


def test_yes_no_question_detection() -> None:
    from engines.backends.diffusion import is_yes_no_question

    assert is_yes_no_question("Is there a pleural effusion?") and is_yes_no_question("Are the lungs clear?")
    assert not is_yes_no_question("Where is the opacity?") and not is_yes_no_question("Is it left or right?")
    assert is_yes_no_question("Is there a lung lesion (nodule or mass)?")  # a gloss, not a choice


def test_bad_checkpoint_folder_is_a_clear_error(tmp_path) -> None:
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(BackendError, match="cannot load engine weights"):
        create_backend("diffusion", path=tmp_path)


def test_onnx_runtime_backend_matches_torch(tmp_path, medim) -> None:
    onnx = create_backend("diffusion-onnx", path=medim.path, device="cpu")
    assert onnx.describe()["runtime"] == "onnx" and onnx.weights_hash == medim.weights_hash
    assert onnx.draft([_img(2)], seed=5).text == medim.draft([_img(2)], seed=5).text


def test_backend_option_chooses_the_runtime_and_falls_back_to_torch(tmp_path, medim, monkeypatch) -> None:
    """The `backend` option (app setting engine_backend): onnx runs onnxruntime; without the package, torch."""
    folder = tiny.make_tiny_checkpoint(tmp_path / "m")
    be = create_backend("diffusion", path=folder, device="cpu", backend="onnx")
    assert be.describe()["runtime"] == "onnx"
    assert be.draft([_img(2)], seed=5).text == medim.draft([_img(2)], seed=5).text
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # an installation without onnxruntime
    fallback = create_backend("diffusion", path=tiny.make_tiny_checkpoint(tmp_path / "n"), device="cpu",
                              backend="onnx")
    assert fallback.describe()["runtime"] == "torch" and "onnxruntime" in fallback.describe()["runtime_error"]
    assert fallback.draft([_img(2)], seed=5).text == medim.draft([_img(2)], seed=5).text
    with pytest.raises(BackendError, match="unknown runtime"):
        create_backend("diffusion", path=folder, device="cpu", backend="tensorrt")


def test_finding_questions_are_answered_by_the_finding_head(tmp_path) -> None:
    be = create_backend("diffusion", path=tiny.make_tiny_checkpoint(tmp_path, findings=("No Finding", "Edema")),
                        device="cpu")
    p = be.pipe.finding_probabilities([_img()])[0]
    ans = be.answer([_img()], "Is there pulmonary edema?")
    assert ans.extra["mode"] == "finding head" and ans.extra["finding"] == "Edema"
    assert ans.text == ("yes" if p["Edema"] >= 0.5 else "no")
    assert ans.confidence == pytest.approx(max(p["Edema"], 1 - p["Edema"]), abs=1e-6)
    assert be.answer([_img()], "Is this chest radiograph normal?").extra["finding"] == "No Finding"
    # A finding the head does not know, or a question that is not one finding's presence: the answer segment.
    assert be.answer([_img()], "Is there a pleural effusion?").extra["mode"] == "closed"
    assert be.answer([_img()], "Is there edema on the left?").extra["mode"] == "closed"


def test_a_conditioned_draft_says_what_it_was_told(tmp_path) -> None:
    import json

    folder = tiny.make_tiny_checkpoint(tmp_path, findings=("No Finding", "Edema"), finding_condition=True)
    cfg = json.loads((folder / "config.json").read_text())
    cfg["finding_prior"] = {"No Finding": 1.0, "Edema": 0.0}  # never likelier than usual normal; edema always
    cfg["sampling"]["condition"] = "head-prior"
    (folder / "config.json").write_text(json.dumps(cfg))
    out = create_backend("diffusion", path=folder, device="cpu").draft([_img()], seed=0)
    assert out.extra["told_findings"] == ["Edema"]
