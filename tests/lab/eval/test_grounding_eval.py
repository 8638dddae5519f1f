"""The proof CLI's parts on a few real boxed images with a tiny engine (numbers are not the point here:
the shipped-weights tables are produced by `python -m lab.eval.grounding`)."""

from __future__ import annotations

import numpy as np
import pytest

from lab.eval.grounding import (
    box_table,
    box_tasks,
    lung_table,
    main,
    run_boxes,
    run_lungs,
    run_uncertainty,
)


@pytest.fixture(scope="module")
def data(cxr_root):
    from lab.data import load_cxr
    from lab.data.iu import load_iu_reports
    from lab.data.paired import SentenceBank

    samples = list(load_cxr(cxr_root).samples)
    boxed = [s for s in samples if any(b.kind == "finding" for b in s.boxes)]
    lungs = [s for s in samples if sum(b.kind == "anatomy" for b in s.boxes) >= 2]
    iu = load_iu_reports(cxr_root / "text_only" / "iu_xray_reports.jsonl")
    return samples, boxed, lungs, SentenceBank.from_reports(iu[:800])


@pytest.fixture(scope="module")
def long_pipeline(tmp_path_factory):
    """Tiny engine with the shipped text length, so composed reports are not cut off."""
    from engines.models.tiny import make_tiny_checkpoint
    from engines.pipeline import MedimPipeline

    return MedimPipeline.from_pretrained(make_tiny_checkpoint(tmp_path_factory.mktemp("long"), text_len=128), "cpu")


def test_box_tasks_cover_every_boxed_finding(data):
    samples, boxed, _, bank = data
    tasks = box_tasks(boxed, bank)
    pairs = {(s.image_id, b.finding) for s in boxed for b in s.boxes if b.kind == "finding"}
    assert {(t.image_id, t.finding) for t in tasks} == pairs
    for t in tasks:
        assert t.report[t.sentence.start:t.sentence.end] == t.sentence.text
        assert t.sentence.start <= t.mention.start < t.mention.end <= t.sentence.end
    assert {t.split for t in tasks} <= {"train", "val"}


def test_parts_run_and_tabulate(data, long_pipeline):
    samples, boxed, lungs, bank = data
    by_id = {s.image_id: s for s in samples}
    tasks = box_tasks(boxed[:2], bank)
    rows = run_boxes(long_pipeline, by_id, tasks, ("attention", "ig"), 4, 2, lambda m: None)
    assert len(rows) == len(tasks)
    assert all("centre" in r and "random" in r for r in rows)
    assert any("ig/mention" in r and "attention/sentence" in r for r in rows)  # others: cut off by text_len
    for r in rows:
        for key in ("attention/sentence", "attention/mention", "ig/sentence", "ig/mention", "centre", "random"):
            if key in r:
                hit, i = r[key]
                assert 0 <= hit <= 1 and 0 <= i <= 1
    table = box_table(rows, ("attention", "ig"))
    assert f"| all | {len(rows)} |" in table
    lrows = run_lungs(long_pipeline, lungs[:1], ("attention",), 4, 2, lambda m: None)
    assert {"attention/phrase/left", "attention/sentence/right", "random/left"} <= set(lrows[0])
    assert "| all | 1 |" in lung_table(lrows, ("attention",))
    val = [s for s in samples if s.split == "val" and s.findings][:1]
    u = run_uncertainty(long_pipeline, val, 2, 2, lambda m: None)
    assert u["decisions"] == 14 and u["images"] == 1
    assert np.isfinite(u["disagreement"]["f1_withhold_random20"])


def test_cli_refuses_a_missing_model(tmp_path, capsys):
    assert main(["--weights", str(tmp_path / "none")]) == 2
    assert "does not exist" in capsys.readouterr().err
