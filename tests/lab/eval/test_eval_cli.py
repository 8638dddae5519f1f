"""radstation-eval on small JSONL files, its error paths, and the baselines on a real slice."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from engines.data.sample import Sample
from lab.data import SentenceBank, load_cxr, load_iu_reports, pair_reports
from lab.eval.baselines import (
    baseline_reports,
    eval_text,
    image_embedding,
    modal_report,
    nearest_neighbours,
    vqa_baselines,
)
from lab.eval.cli import main


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_score_command_writes_json_and_markdown(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    gen = _jsonl(tmp_path / "gen.jsonl", [{"id": "a", "text": "Mild cardiomegaly. No effusion."},
                                          {"id": "b", "findings": "Lungs are clear.", "impression": "Normal."}])
    ref = _jsonl(tmp_path / "ref.jsonl", [{"id": "a", "findings": "Mild cardiomegaly.", "impression": "No effusion."},
                                          {"id": "b", "text": "Small right pleural effusion."},
                                          {"id": "c", "text": "Not generated."}])
    out = tmp_path / "out"
    rc = main([str(gen), str(ref), "--out", str(out), "--tokenizer", "simple", "--no-meteor"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "BLEU-4" in printed and "CE-F1 (micro)" in printed and "1 reference id(s) have no generated" in printed
    data = json.loads((out / "eval.json").read_text())
    assert data["result"]["n"] == 2 and data["result"]["ids"] == ["a", "b"]
    assert data["result"]["clinical"]["per_finding"]["Cardiomegaly"]["f1"] == 1.0
    assert data["result"]["clinical"]["per_finding"]["Pleural Effusion"]["recall"] == 0.0
    assert (out / "eval.md").read_text().startswith("## Report generation")


def test_vqa_command(tmp_path: Path) -> None:
    gen = _jsonl(tmp_path / "g.jsonl", [{"id": 1, "answer": "yes"}, {"id": 2, "answer": "left lower lobe"}])
    ref = _jsonl(tmp_path / "r.jsonl", [{"id": 1, "answer": "Yes", "kind": "closed"},
                                        {"id": 2, "answer": "left lobe", "kind": "open"}])
    assert main(["vqa", str(gen), str(ref), "--out", str(tmp_path)]) == 0
    res = json.loads((tmp_path / "vqa.json").read_text())["result"]
    assert res["closed_accuracy"] == 1.0 and res["open_token_f1"] == pytest.approx(0.8)


def test_bad_inputs_are_clear_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = _jsonl(tmp_path / "g.jsonl", [{"id": "x", "text": "a"}])
    other = _jsonl(tmp_path / "o.jsonl", [{"id": "y", "text": "a"}])
    broken = tmp_path / "b.jsonl"
    broken.write_text('{"id": 1, "text": "ok"}\n{not json\n')
    assert main([str(good), str(tmp_path / "missing.jsonl")]) == 2
    assert main([str(good), str(other), "--no-nlg"]) == 2
    assert main([str(broken), str(good), "--no-nlg"]) == 2
    err = capsys.readouterr().err
    assert "file not found" in err and "share no id" in err and "b.jsonl:2" in err


def test_embedding_and_retrieval() -> None:
    rng = np.random.default_rng(0)
    imgs = [rng.random((256, 256), dtype=np.float32) for _ in range(3)]
    emb = np.stack([image_embedding(i) for i in imgs])
    assert emb.shape == (3, 1024) and np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    # brightness/contrast changes do not move the embedding (mean-centred, unit norm)
    q = image_embedding(imgs[1] * 0.5 + 0.2)
    assert nearest_neighbours(emb, q[None, :])[0] == 1


def test_modal_report_prefers_frequent_sentences() -> None:
    s = [Sample(f"i{k}", f"p{k}", "s", "train", "x", report_findings=t, report_impression="")
         for k, t in enumerate(["Lungs are clear. No effusion.", "Lungs are clear. Tiny nodule.", "No effusion. Lungs are clear."])]
    assert modal_report(s) in ("Lungs are clear. No effusion.", "No effusion. Lungs are clear.")


def test_baselines_on_a_real_slice(cxr_root: Path) -> None:
    bank = SentenceBank.from_reports(load_iu_reports(cxr_root / "text_only" / "iu_xray_reports.jsonl")[:1500])
    train = pair_reports(load_cxr(cxr_root, splits=("train",), limit=40), bank, seed=0)
    val = pair_reports(load_cxr(cxr_root, splits=("val",), limit=10), bank, seed=0)
    b = baseline_reports(train, val)
    assert set(b.generated) == {"most-common report", "always-normal report", "nearest neighbour (32x32 cosine)"}
    train_texts = {eval_text(s) for s in train}
    for texts in b.generated.values():
        assert len(texts) == len(val) and all(t in train_texts for t in texts)
    assert b.references == [eval_text(s) for s in val]
    assert not any("FINDINGS:" in t for t in b.references)
    vqa = vqa_baselines(b.train, b.queries, b.neighbour_ids)
    assert set(vqa) == {"majority answer (train)", "nearest neighbour's answer"}
    for r in vqa.values():
        assert r["n_closed"] > len(val) and 0.0 <= r["closed_accuracy"] <= 1.0


def _small_curated_copy(cxr_root: Path, tmp_path: Path) -> Path:
    import shutil

    root = tmp_path / "cxr"
    (root / "text_only").mkdir(parents=True)
    lines = (cxr_root / "text_only" / "iu_xray_reports.jsonl").read_text().splitlines()[:1500]
    (root / "text_only" / "iu_xray_reports.jsonl").write_text("\n".join(lines) + "\n")
    rows = [json.loads(x) for x in (cxr_root / "manifest.jsonl").read_text().splitlines()]
    keep = [r for r in rows if r["split"] == "val" and r["source"] == "nih_zech"][:4]
    for r in keep:
        (root / r["file"]).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(cxr_root / r["file"], root / r["file"])
    (root / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in keep))
    return root


def test_reference_commands(cxr_root: Path, tmp_path: Path) -> None:
    data = _small_curated_copy(cxr_root, tmp_path)
    out = tmp_path / "out"
    assert main(["references", "--split", "val", "--data", str(data), "--out", str(out)]) == 0
    refs = [json.loads(x) for x in (out / "references_val.jsonl").read_text().splitlines()]
    assert len(refs) == 4 and all(r["text"] and r["report_is_real"] is False for r in refs)
    assert main(["qa-references", "--split", "val", "--data", str(data), "--out", str(out)]) == 0
    qa = [json.loads(x) for x in (out / "qa_val.jsonl").read_text().splitlines()]
    assert {q["image_id"] for q in qa} == {r["id"] for r in refs}
    assert {q["kind"] for q in qa} <= {"closed", "open"} and len({q["id"] for q in qa}) == len(qa)
    # the references score against themselves perfectly on the clinical side
    assert main(["score", str(out / "references_val.jsonl"), str(out / "references_val.jsonl"), "--no-nlg",
                 "--out", str(out)]) == 0
    res = json.loads((out / "eval.json").read_text())["result"]["clinical"]
    assert res["micro"]["f1"] == 1.0 and res["hallucination_rate"] in (0.0, None)
