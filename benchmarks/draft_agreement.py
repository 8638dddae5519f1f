"""Do two checkouts draft the same? Drafts of the first N val images (the benchmarks' NIH image first) from the
code of `--repo`, written to JSON; `--compare A B` says whether the draft texts are identical and how far the
scores are apart. For cuts that may change the last bits of the maths (fewer rows in a matrix product, one
log-softmax instead of two), which issue 27 allows only if the text of every draft is unchanged and the scores
agree to 1e-5.

    python benchmarks/draft_agreement.py --repo /path/to/main --out main.json [--images 50] [--modes sentences free]
    python benchmarks/draft_agreement.py --repo . --out branch.json [--runtime compiled]
    python benchmarks/draft_agreement.py --compare main.json branch.json

Scores compared: every sentence's engine log-probability and slot score (sentence drafts); every generated
token's confidence and entropy (free-text drafts). One torch thread.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def _val(n: int) -> list[dict]:
    data = Path(__file__).resolve().parents[2] / "shared" / "data" / "cxr"
    rows = [json.loads(line) for line in (data / "manifest.jsonl").read_text().splitlines()]
    val = [r for r in rows if r["split"] == "val"]
    first = next(r for r in val if r["source"].startswith("nih"))
    return [first, *[r for r in val if r is not first]][:n], data


def draft(repo: Path, n: int, modes: list[str], out: Path, runtime: str = "torch") -> None:
    sys.path[:0] = [str(repo)]
    import numpy as np
    import torch
    from PIL import Image

    torch.set_num_threads(1)
    import engines
    from engines.pipeline import MedimPipeline

    if not Path(engines.__file__).resolve().is_relative_to(repo.resolve()):
        raise SystemExit(f"imported {engines.__file__}, not {repo}'s code")
    kw = {} if runtime == "torch" else {"runtime": runtime}  # a checkout from before runtimes were chosen
    if runtime.startswith("onnx"):
        kw["onnx_dir"] = Path("/tmp/radstation-bench-onnx")  # not into the checkout's weights folder
    pipe = MedimPipeline.from_pretrained(repo / "resources" / "weights" / "medim-small", device="cpu", **kw)
    rows, data = _val(n)
    if runtime == "compiled":  # compile the draft shapes first, so every draft below runs compiled
        pipe._net.wait()
        if pipe._net.error:
            raise SystemExit(f"the compiled backend failed: {pipe._net.error}")
    got: dict[str, dict] = {mode: {} for mode in modes}
    t0 = time.perf_counter()
    for r in rows:
        image = np.asarray(Image.open(data / r["file"]).convert("L"))
        for mode in modes:
            res = pipe.draft_report([image], mode=mode)
            if mode == "sentences":
                scores = [x for s in res.sentences for x in (s["engine_logp"], s["score"])]
            else:
                scores = [x for tok in res.tokens for x in (tok.confidence, tok.entropy)]
            got[mode][r["image_id"]] = {"text": res.text, "scores": scores}
    out.write_text(json.dumps({"repo": str(repo), "runtime": runtime, "images": len(rows), "drafts": got},
                              indent=1) + "\n")
    print(f"{len(rows)} images x {modes} from {repo} in {time.perf_counter() - t0:.0f} s -> {out}")


def compare(a: Path, b: Path) -> int:
    da, db = json.loads(a.read_text()), json.loads(b.read_text())
    print(f"A: {da['repo']} ({da.get('runtime', 'torch')})  B: {db['repo']} ({db.get('runtime', 'torch')})\n")
    print("| draft | images | text identical | score values | max abs score difference | within 1e-5 |")
    print("|---|---:|---:|---:|---:|---|")
    bad = 0
    for mode, drafts in da["drafts"].items():
        other = db["drafts"].get(mode, {})
        same = diff_n = 0
        worst = 0.0
        for image_id, x in drafts.items():
            y = other.get(image_id)
            if y is None:
                continue
            if x["text"] == y["text"]:
                same += 1
            else:
                print(f"  {mode} {image_id}: text differs")
            if len(x["scores"]) == len(y["scores"]):
                diff_n += len(x["scores"])
                worst = max([worst, *(abs(p - q) for p, q in zip(x["scores"], y["scores"], strict=True))])
        ok = same == len(drafts) and worst <= 1e-5
        bad += not ok
        print(f"| {mode} | {len(drafts)} | {same} | {diff_n} | {worst:.2e} | {'yes' if ok else 'NO'} |")
    return 1 if bad else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repo", type=Path, help="the checkout whose code drafts")
    p.add_argument("--out", type=Path)
    p.add_argument("--images", type=int, default=50)
    p.add_argument("--modes", nargs="+", default=["sentences", "free"])
    p.add_argument("--compare", nargs=2, type=Path, metavar=("A", "B"))
    p.add_argument("--runtime", default="torch", help="how the backbone runs: torch, onnx, onnx-int8 or compiled")
    a = p.parse_args(argv)
    if a.compare:
        return compare(*a.compare)
    if a.repo is None or a.out is None:
        p.error("--repo and --out (or --compare A B)")
    draft(a.repo, a.images, a.modes, a.out, a.runtime)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
