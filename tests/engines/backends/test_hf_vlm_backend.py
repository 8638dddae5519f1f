from __future__ import annotations

import json

import numpy as np
import pytest

from engines.backends import BackendError, TextOutput, create_backend
from engines.errors import JobCancelled


@pytest.fixture(scope="module")
def vlm(tiny_vlm_dir):
    return create_backend("hf-vlm", path=tiny_vlm_dir, device="cpu", max_new_tokens=12, answer_max_new_tokens=6)


def _images(n: int = 2) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 4096, (48 + 8 * i, 40), dtype=np.uint16) for i in range(n)]


def test_draft_generates_text_with_token_confidences_and_progress(vlm) -> None:
    seen: list[tuple[int, int]] = []
    out = vlm.draft(_images(), progress=lambda d, t: seen.append((d, t)))
    assert isinstance(out, TextOutput) and out.text.strip() and out.steps == 12
    assert out.images_used == [0, 1]  # LLaVA takes every view of the study
    assert seen[0] == (0, 12) and seen[-1] == (12, 12)
    assert out.tokens and all(0.0 < t.confidence <= 1.0 and t.entropy >= 0 for t in out.tokens)
    for t in out.tokens:
        body = out.findings if t.section == "findings" else out.impression
        assert body[t.start:t.end] == t.text
    assert 0.0 < out.confidence <= 1.0
    again = TextOutput.from_json(json.loads(json.dumps(out.to_json())))
    assert again == out


def test_draft_is_deterministic(vlm) -> None:
    assert vlm.draft(_images(1)).text == vlm.draft(_images(1)).text


def test_answer_and_its_validation(vlm) -> None:
    out = vlm.answer(_images(1), "Is there a pleural effusion?")
    assert out.text and out.tokens and all(t.section == "answer" for t in out.tokens)
    with pytest.raises(BackendError, match="question is empty"):
        vlm.answer(_images(1), "  ")


def test_cancel_stops_generation(vlm) -> None:
    calls = {"n": 0}

    def cancel() -> bool:
        calls["n"] += 1
        return calls["n"] > 3

    with pytest.raises(JobCancelled):
        vlm.draft(_images(1), steps=200, cancel=cancel)
    assert calls["n"] == 4


def test_single_image_mode_uses_first_view(tiny_vlm_dir) -> None:
    single = create_backend("hf-vlm", path=tiny_vlm_dir, device="cpu", max_new_tokens=4, multi_image=False)
    assert single.draft(_images(2)).images_used == [0]
    assert single.describe()["supports_multi_image"] is False


def test_bad_dtype_is_a_clear_error(tiny_vlm_dir) -> None:
    with pytest.raises(BackendError, match="unknown dtype 'float99'"):
        create_backend("hf-vlm", path=tiny_vlm_dir, device="cpu", dtype="float99")


def test_mismatched_directory_is_a_clear_error(tiny_sd_dir, tmp_path) -> None:
    with pytest.raises(BackendError, match="no usable processor|not a transformers image-text-to-text"):
        create_backend("hf-vlm", path=tiny_sd_dir / "text_encoder", device="cpu")
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llava"}))
    with pytest.raises(BackendError):
        create_backend("hf-vlm", path=tmp_path, device="cpu")


def test_a_gemma3_style_model_directory_works_too(tmp_path) -> None:
    from tests.support.tiny_backends import build_tiny_gemma3

    gemma = create_backend("hf-vlm", path=build_tiny_gemma3(tmp_path / "gemma3"), device="cpu", max_new_tokens=5,
                           answer_max_new_tokens=3)
    assert gemma.describe()["model_type"] == "gemma3"
    out = gemma.draft(_images(2))
    assert out.text and out.images_used == [0, 1] and out.steps == 5
    assert gemma.answer(_images(1), "Is the heart enlarged?").text
