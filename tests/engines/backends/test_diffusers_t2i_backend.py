from __future__ import annotations

import numpy as np
import pytest

from engines.backends import BackendError, ImageOutput, create_backend
from engines.errors import JobCancelled


@pytest.fixture(scope="module")
def t2i(tiny_sd_dir):
    return create_backend("diffusers-t2i", path=tiny_sd_dir, device="cpu", steps=3, height=16, width=16)


def test_synthesise_makes_a_grayscale_image_with_progress(t2i) -> None:
    seen: list[tuple[int, int]] = []
    out = t2i.synthesise("the heart is normal in size", seed=1, progress=lambda d, t: seen.append((d, t)))
    assert isinstance(out, ImageOutput) and out.image.shape == (16, 16) and out.image.dtype == np.uint8
    assert out.image.std() > 0
    assert seen == [(0, 3), (1, 3), (2, 3), (3, 3)]
    again = t2i.synthesise("the heart is normal in size", seed=1)
    np.testing.assert_array_equal(out.image, again.image)
    assert t2i.describe()["pipeline"] == "StableDiffusionPipeline"


def test_cancel_and_bad_input(t2i) -> None:
    with pytest.raises(JobCancelled):
        t2i.synthesise("lungs clear", cancel=lambda: True)
    with pytest.raises(BackendError, match="empty"):
        t2i.synthesise(" ")
    with pytest.raises(BackendError, match="cannot draft"):
        t2i.draft([np.zeros((32, 32))])


def test_a_model_directory_is_not_a_pipeline(tiny_vlm_dir, tmp_path) -> None:
    with pytest.raises(BackendError, match="no model_index.json"):
        create_backend("diffusers-t2i", path=tiny_vlm_dir)
    (tmp_path / "model_index.json").write_text("{not json")
    with pytest.raises(BackendError, match="cannot be read"):
        create_backend("diffusers-t2i", path=tmp_path)
