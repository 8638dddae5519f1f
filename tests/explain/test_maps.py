"""Maps of a report over an image: shape, finiteness, geometry and alignment with the engine's row."""

from __future__ import annotations

import numpy as np
import pytest

from engines.errors import JobCancelled
from explain.align import align_report
from explain.geometry import grid_to_image, image_box_to_grid, normalise, padded_square
from explain.report import explain_report
from tests.support.explain_samples import REPORT


def test_row_matches_the_pipeline_and_spans_point_at_the_words(tiny_pipeline):
    p = tiny_pipeline
    row = align_report(p.tokenizer, REPORT, p.model_config.text_len)
    assert row.ids == p._report_ids(REPORT)
    start = REPORT.index("effusion")
    pos = row.positions(start, start + len("effusion"))
    assert pos and all(REPORT[row.spans[k][0]:row.spans[k][1]].lower() in "effusion" for k in pos)
    with pytest.raises(ValueError, match="empty"):
        align_report(p.tokenizer, "   ", 48)


@pytest.mark.parametrize("shape", [(40, 60), (64, 32), (32, 32)])
def test_maps_have_the_image_shape_and_are_finite(tiny_pipeline, shape):
    img = np.random.default_rng(0).random(shape).astype(np.float32)
    seen = []
    e = explain_report(tiny_pipeline, img, REPORT, ig_steps=4, attention_steps=2, progress=lambda d, n: seen.append(d))
    assert [s.findings for s in e.sentences] == [{"Cardiomegaly": 0}, {"Pleural Effusion": 1}, {"Edema": 1}]
    assert {f.finding for f in e.findings} == {"Cardiomegaly", "Pleural Effusion", "Edema"}
    for span in [*e.sentences, *e.findings]:
        for m in (span.attention_map, span.attribution_map):
            assert m is not None and m.shape == shape and np.isfinite(m).all()
            assert 0.0 <= m.min() and m.max() <= 1.0
    assert all(np.isfinite(s.entropy) and 0 < s.confidence < 1 for s in e.sentences)
    assert seen == sorted(seen) and seen[-1] == 2 * (len(e.sentences) + len(e.findings)) + 1


def test_bad_input_gives_clear_errors(tiny_pipeline):
    img = np.zeros((32, 32), np.float32)
    with pytest.raises(ValueError, match="empty"):
        explain_report(tiny_pipeline, img, "")
    with pytest.raises(ValueError, match="2D"):
        explain_report(tiny_pipeline, np.zeros((2, 3, 4)), REPORT)
    with pytest.raises(ValueError, match="unknown explanation methods"):
        explain_report(tiny_pipeline, img, REPORT, methods=("gradcam",))
    with pytest.raises(JobCancelled):
        explain_report(tiny_pipeline, img, REPORT, cancel=lambda: True)


def test_padding_is_undone_so_a_grid_cell_lands_on_its_pixels():
    # A 4x4 grid over a 100x200 image (padded to 200x200, 50 rows of padding above): a hot cell in
    # grid row 1 covers padded rows 50..100, i.e. image rows 0..50.
    g = np.zeros((4, 4), np.float32)
    g[1, 2] = 1.0
    m = grid_to_image(g, (100, 200))
    assert m.shape == (100, 200)
    y, x = np.unravel_index(np.argmax(m), m.shape)
    assert 0 <= y < 50 and 100 <= x < 150
    assert padded_square((100, 200)) == (200, 50, 0)
    assert image_box_to_grid((100, 0, 50, 50), (100, 200), 4) == (2.0, 1.0, 1.0, 1.0)
    assert normalise(np.array([-1.0, 0.0, 2.0]), positive_only=True).tolist() == [0.0, 0.0, 1.0]
    with pytest.raises(ValueError):
        grid_to_image(np.zeros((3, 4)), (10, 10))


def test_head_maps_for_the_findings_a_span_asserts(tmp_path):
    from engines.models.tiny import make_tiny_checkpoint
    from engines.pipeline import MedimPipeline

    pipe = MedimPipeline.from_pretrained(make_tiny_checkpoint(tmp_path, text_len=48,
                                                              findings=("Cardiomegaly", "Pleural Effusion")), "cpu")
    img = np.random.default_rng(0).random((40, 60)).astype(np.float32)
    seen = []
    e = explain_report(pipe, img, REPORT, methods=("head",), ig_steps=4, progress=lambda d, n: seen.append((d, n)))
    by_finding = {f.finding: f for f in e.findings}
    effusion = by_finding["Pleural Effusion"].pixel_map("head")
    assert effusion is not None and effusion.shape == (40, 60) and np.isfinite(effusion).all()
    assert by_finding["Cardiomegaly"].pixel_map("head") is None  # negated: nothing to point at
    assert by_finding["Edema"].pixel_map("head") is None  # not a finding the head knows
    assert np.array_equal(e.sentences[1].grids["head"], by_finding["Pleural Effusion"].grids["head"])  # one IG run
    assert seen[-1][0] == seen[-1][1] == len(e.sentences) + len(e.findings) + 1 + 1
    # The head's CAM comes with it at the cost of one forward pass and no progress step of its own.
    seen.clear()
    e = explain_report(pipe, img, REPORT, methods=("head", "cam"), ig_steps=4,
                       progress=lambda d, n: seen.append((d, n)))
    cam = {f.finding: f for f in e.findings}
    assert cam["Pleural Effusion"].pixel_map("cam").shape == (40, 60)
    assert cam["Cardiomegaly"].pixel_map("cam") is None and cam["Edema"].pixel_map("cam") is None
    assert seen[-1][0] == seen[-1][1] == len(e.sentences) + len(e.findings) + 1 + 1
