from __future__ import annotations

import numpy as np
import pytest

from engines.counterfactual import EditError, WhatIfRequest, run_variants, run_whatif
from engines.errors import JobCancelled

EFFUSION = "The lungs are clear. Small left pleural effusion."


def _image() -> np.ndarray:
    return (np.random.default_rng(1).random((40, 30)) * 255).astype(np.uint8)


def test_whatif_keeps_every_token_outside_the_region(tiny_pipeline) -> None:
    req = WhatIfRequest.from_instruction(_image(), EFFUSION, "remove the effusion", seeds=(0, 1), area=0.2)
    events: list[tuple[int, int, str]] = []
    res = run_whatif(tiny_pipeline, req, progress=lambda a, b, s: events.append((a, b, s)), with_control=True)
    g = tiny_pipeline.grid
    assert res.token_mask.shape == (g, g) and 0 < res.token_mask.sum() < g * g
    assert [c.finding for c in res.edit.changes] == ["Pleural Effusion"]
    codes = tiny_pipeline.encode_image(res.original)
    ref = tiny_pipeline.encode_image(res.reconstruction)
    beyond = res.weight == 0
    assert beyond.any() and (res.weight[res.pixel_mask] == 1).all()
    for v in [*res.variants, res.control]:
        out = tiny_pipeline.encode_image(v.decoded)
        # decoded-then-re-encoded tokens outside the region are the original's (VQ codes round-trip)
        assert (out[~res.token_mask] == ref[~res.token_mask]).mean() > 0.5
        assert v.image.shape == v.decoded.shape == res.original.shape == res.pixel_mask.shape
        # shown: the acquired image beyond the feather, the model's change added on the region
        assert (v.image[beyond] == res.original[beyond]).all()
        change = v.decoded.astype(float) - res.reconstruction
        expect = np.clip(res.original + change, 0, 255).round()
        assert (v.image[res.pixel_mask] == expect[res.pixel_mask]).all()
        assert (v.difference == v.image.astype(np.float32) - res.original).all()
    assert codes.shape == (g, g)
    assert [v.seed for v in res.variants] == [0, 1]
    assert events[-1][0] == events[-1][1] and events[-1][2] == "done"
    assert all(b == events[0][1] for _, b, _ in events)
    assert [a for a, _, _ in events] == sorted(a for a, _, _ in events)


def test_inpaint_outside_region_is_bit_exact_in_tokens(tiny_pipeline) -> None:
    """The engine keeps untouched tokens: what-if relies on it for preservation."""
    img = _image()
    g = tiny_pipeline.grid
    mask = np.zeros((g, g), bool)
    mask[1:3, 1:3] = True
    codes = tiny_pipeline.encode_image(img)
    res = tiny_pipeline.inpaint(img, mask, EFFUSION, seed=0)
    assert (res.token_grid[~mask] == codes[~mask]).all()


def test_same_seed_same_result_and_variants_reuse_the_region(tiny_pipeline) -> None:
    req = WhatIfRequest.from_instruction(_image(), EFFUSION, "remove the effusion", seeds=(5,))
    a, b = run_whatif(tiny_pipeline, req), run_whatif(tiny_pipeline, req)
    assert (a.variants[0].image == b.variants[0].image).all() and (a.token_mask == b.token_mask).all()
    more = run_variants(tiny_pipeline, req, [7, 8], a.token_mask)
    assert (more.token_mask == a.token_mask).all() and more.scores is None
    assert [v.seed for v in more.variants] == [7, 8]


def test_cancel_stops_the_job(tiny_pipeline) -> None:
    req = WhatIfRequest.from_instruction(_image(), EFFUSION, "remove the effusion", seeds=(0, 1, 2))
    calls = {"n": 0}

    def cancel() -> bool:
        calls["n"] += 1
        return calls["n"] > 3

    with pytest.raises(JobCancelled):
        run_whatif(tiny_pipeline, req, cancel=cancel)


def test_painted_region_is_used_as_given(tiny_pipeline) -> None:
    g = tiny_pipeline.grid
    region = np.zeros((g, g), bool)
    region[0, 0] = True
    req = WhatIfRequest(_image(), EFFUSION, "The lungs are clear. No pleural effusion.", region=region)
    res = run_whatif(tiny_pipeline, req)
    assert (res.token_mask == region).all() and res.scores is None
    bad = np.zeros((g + 1, g + 1), bool)
    bad[0, 0] = True
    with pytest.raises(ValueError, match="painted token mask"):
        run_whatif(tiny_pipeline, WhatIfRequest(_image(), EFFUSION, "No pleural effusion.", region=bad))


def test_requests_are_validated_up_front(tiny_pipeline) -> None:
    with pytest.raises(ValueError, match="2D"):
        WhatIfRequest(np.zeros((3, 3, 3)), EFFUSION, "No effusion.")
    with pytest.raises(EditError, match="empty"):
        WhatIfRequest(_image(), EFFUSION, "  ")
    with pytest.raises(ValueError, match="seed"):
        WhatIfRequest(_image(), EFFUSION, "No effusion.", seeds=())
    with pytest.raises(ValueError, match="region method"):
        WhatIfRequest(_image(), EFFUSION, "No effusion.", method="magic")
    with pytest.raises(ValueError, match="non-empty"):
        WhatIfRequest(_image(), EFFUSION, "No effusion.", region=np.zeros((4, 4), bool))
    with pytest.raises(EditError, match="same findings"):
        run_whatif(tiny_pipeline, WhatIfRequest(_image(), EFFUSION, EFFUSION + " The heart is normal."))
    with pytest.raises(ValueError, match="head_guidance"):
        WhatIfRequest(_image(), EFFUSION, "No effusion.", head_guidance=-1.0)


def test_head_guidance_steers_the_edit_and_leaves_the_control(tmp_path) -> None:
    """The edited resamples are pushed by the finding head (here: the effusion down), the control never; the
    weights' sampling default applies when the request leaves it open. (The tiny VQ decodes every code alike,
    so the inpainted token grids are compared, recorded on their way through the real inpaint.)"""
    import json

    from engines.models.tiny import make_tiny_checkpoint
    from engines.pipeline import MedimPipeline

    folder = make_tiny_checkpoint(tmp_path, findings=("No Finding", "Pleural Effusion"))

    results = []

    def run(pipe: MedimPipeline, **extra) -> list[tuple[dict | None, float, np.ndarray]]:
        calls = []
        inpaint = pipe.inpaint

        def recording(*a, **kw):
            res = inpaint(*a, **kw)
            calls.append((kw.get("head_push"), kw.get("head_guidance"), res.token_grid))
            return res

        pipe.inpaint = recording
        try:
            results.append(run_whatif(pipe, WhatIfRequest.from_instruction(
                _image(), EFFUSION, "remove the effusion", seeds=(0, 1), area=0.3, guidance=0.0, rank=False, **extra),
                with_control=True))
        finally:
            del pipe.inpaint
        return calls

    pipe = MedimPipeline.from_pretrained(folder, device="cpu")
    assert pipe.default_head_guidance == 0.0
    plain, steered = run(pipe), run(pipe, head_guidance=8.0)
    assert [c[:2] for c in plain] == [(None, 0.0)] * 3
    assert [c[:2] for c in steered] == [({"Pleural Effusion": -1.0}, 8.0)] * 2 + [(None, 8.0)]
    assert any(not np.array_equal(p[2], s[2]) for p, s in zip(plain[:2], steered[:2], strict=True))
    assert np.array_equal(plain[2][2], steered[2][2])  # the control: the same resample
    assert [r.head_guidance for r in results] == [0.0, 8.0]  # the result says whether it was steered
    cfg = json.loads((folder / "config.json").read_text())
    cfg.setdefault("sampling", {})["whatif_head_guidance"] = 8.0
    (folder / "config.json").write_text(json.dumps(cfg))
    default = run(MedimPipeline.from_pretrained(folder, device="cpu"))
    assert [c[1] for c in default] == [8.0] * 3
    assert all(np.array_equal(d[2], s[2]) for d, s in zip(default, steered, strict=True))
    cfg["sampling"]["whatif_head_guidance"] = -1
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="whatif_head_guidance"):
        MedimPipeline.from_pretrained(folder, device="cpu")


def test_painted_pixel_mask_becomes_the_token_region(tiny_pipeline) -> None:
    g = tiny_pipeline.grid
    paint = np.zeros((60, 60), bool)
    paint[:30, :30] = True  # the top-left quarter of the (square) image
    req = WhatIfRequest(_image(), EFFUSION, "The lungs are clear. No pleural effusion.", painted=paint)
    res = run_whatif(tiny_pipeline, req)
    expected = np.zeros((g, g), bool)
    expected[: g // 2, : g // 2] = True
    assert (res.token_mask == expected).all() and res.scores is None
    with pytest.raises(ValueError, match="painted region is empty"):
        WhatIfRequest(_image(), EFFUSION, "No pleural effusion.", painted=np.zeros((8, 8), bool))


def test_the_head_can_help_choose_the_region(tmp_path) -> None:
    """With a head weight the finding head's potential (where resampling could move it the asked way) joins
    attention and likelihood; at weight 1 or with method "head" it alone ranks the tokens; the weights' sampling
    default applies when the request leaves it open, and a model without a head cannot be asked for it."""
    import json

    from engines.counterfactual.region import _rank01, select_tokens
    from engines.models.tiny import make_tiny_checkpoint
    from engines.pipeline import MedimPipeline

    folder = make_tiny_checkpoint(tmp_path / "head", findings=("No Finding", "Pleural Effusion"))
    pipe = MedimPipeline.from_pretrained(folder, device="cpu")
    assert pipe.default_head_region == 0.0

    def region(**kw) -> tuple[np.ndarray, object]:
        res = run_whatif(pipe, WhatIfRequest.from_instruction(_image(), EFFUSION, "remove the effusion", area=0.2,
                                                              steps=2, rank=False, **kw))
        return res.token_mask, res.scores

    plain, scores = region()
    assert scores.head is None
    only_head, s1 = region(head_region=1.0)
    assert s1.head is not None and s1.head.min() >= 0
    assert np.array_equal(s1.combined, _rank01(s1.head) * (0.5 + 0.5 * s1.prior))
    assert np.array_equal(only_head, select_tokens(s1.combined, 0.2, 1))
    assert np.array_equal(region(method="head")[0], select_tokens(s1.head, 0.2, 1))
    half, s5 = region(head_region=0.5)
    cues = 0.5 * (0.5 * _rank01(s5.attention) + 0.5 * _rank01(s5.likelihood)) + 0.5 * _rank01(s5.head)
    assert np.allclose(s5.combined, cues * (0.5 + 0.5 * s5.prior))
    with pytest.raises(ValueError, match="head_region"):
        WhatIfRequest(_image(), EFFUSION, "No effusion.", head_region=1.5)
    cfg = json.loads((folder / "config.json").read_text())
    cfg.setdefault("sampling", {})["whatif_head_region"] = 0.5
    (folder / "config.json").write_text(json.dumps(cfg))
    pipe = MedimPipeline.from_pretrained(folder, device="cpu")
    assert np.array_equal(region()[0], half)
    cfg["sampling"]["whatif_head_region"] = 2.0
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="whatif_head_region"):
        MedimPipeline.from_pretrained(folder, device="cpu")
    bare = MedimPipeline.from_pretrained(make_tiny_checkpoint(tmp_path / "bare"), device="cpu")
    with pytest.raises(EditError, match="head knows none"):
        run_whatif(bare, WhatIfRequest.from_instruction(_image(), EFFUSION, "remove the effusion", method="head"))
