"""Engine latency: median time of each job with the shipped weights, peak memory, ONNX vs torch.

    python benchmarks/engine.py [--model resources/weights/medim-small] [--threads 2] [--repeats 5]
                                [--device cpu] [--steps N] [--runtimes torch onnx compiled]

Prints a markdown table (job, runtime, device, threads, steps, median s, min s, peak RSS MB); the
input image is a real val radiograph when the shared data are present, else a synthetic one.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # this checkout's code, not the installed copy (a worktree measures itself)
    sys.path.insert(0, str(ROOT))
DEFAULT_MODEL = ROOT / "resources" / "weights" / "medim-small"
REPORT = ("The heart size is normal. There is a small right pleural effusion. No pneumothorax.\n"
          "IMPRESSION: Small right pleural effusion.")


def _image() -> tuple[np.ndarray, str]:
    data = ROOT.parent / "shared" / "data" / "cxr"
    if (data / "manifest.jsonl").exists():
        from PIL import Image

        for line in (data / "manifest.jsonl").read_text().splitlines():
            row = json.loads(line)
            if row["split"] == "val" and row["source"].startswith("nih"):
                return np.asarray(Image.open(data / row["file"]).convert("L")), row["image_id"]
    rng = np.random.default_rng(0)
    return (rng.random((256, 256)) * 255).astype(np.uint8), "synthetic"


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--device", default="cpu")
    p.add_argument("--steps", type=int)
    p.add_argument("--runtimes", nargs="+", default=["torch", "onnx"])
    p.add_argument("--jobs", nargs="+", default=None, help="only these jobs (e.g. draft_report \"draft_report (free text)\")")
    p.add_argument("--case-index", type=Path, default=None,
                   help="a similar-case index folder (engines.similar.CaseIndex) sentence drafts vote with, e.g. "
                        "python -m lab.build.case_index --out DIR; without it drafts read the reader alone")
    p.add_argument("--settings", default="", help="JSON overriding sentence_decoding, e.g. '{\"cases\": 1}'")
    a = p.parse_args(argv)

    import torch

    torch.set_num_threads(a.threads)
    from engines.pipeline import MedimPipeline

    image, image_id = _image()
    rows = []
    medians: dict[tuple[str, str], float] = {}
    for runtime in a.runtimes:
        onnx_dir = Path("/tmp/radstation-bench-onnx") if runtime.startswith("onnx") else None
        pipe = MedimPipeline.from_pretrained(a.model, device=a.device, runtime=runtime, onnx_dir=onnx_dir)
        if runtime.startswith("onnx"):
            print(f"onnx parity (max abs diff): {pipe.onnx_parity}", file=sys.stderr)
        if a.case_index is not None:
            from engines.similar import CaseIndex

            pipe.case_index = CaseIndex.load(a.case_index)
        if a.settings:
            from dataclasses import replace

            pipe.decode_settings = replace(pipe.decode_settings, **json.loads(a.settings))
        g = pipe.grid
        mask = np.zeros((g, g), bool)
        mask[g // 4:g // 2, g // 2:3 * g // 4] = True
        jobs = {
            "draft_report": lambda pipe=pipe: pipe.draft_report([image], steps=a.steps),  # the default mode
            "draft_report (free text)": lambda pipe=pipe: pipe.draft_report([image], steps=a.steps, mode="free"),
            "answer": lambda pipe=pipe: pipe.answer(image, "Is there a pleural effusion?", steps=a.steps),
            "synthesise": lambda pipe=pipe: pipe.synthesise(REPORT, steps=a.steps),
            "inpaint": lambda pipe=pipe, mask=mask: pipe.inpaint(image, mask, REPORT, steps=a.steps),
            "joint": lambda pipe=pipe: pipe.joint("right pleural effusion", steps=a.steps),
        }
        for name, job in jobs.items():
            if a.jobs and name not in a.jobs:
                continue
            job()  # warm-up (the compiled runtime asks for the job's shapes, compiled in the background)
            if runtime == "compiled":
                pipe._net.wait()
                job()
            times, cpu = [], []
            for _ in range(a.repeats):
                t0, c0 = time.perf_counter(), time.process_time()
                job()
                times.append(time.perf_counter() - t0)
                cpu.append(time.process_time() - c0)
            med = statistics.median(times)
            medians[(name, runtime)] = med
            mode = pipe.default_draft_mode if name == "draft_report" else ""
            steps = "sentence slots" if mode == "sentences" else (a.steps or pipe.default_steps)
            rows.append((name + (f" ({mode})" if mode else ""), runtime, str(pipe.device), a.threads, steps, med,
                         min(times), _peak_mb(), statistics.median(cpu)))
    print(f"\nmodel: {a.model} ({json.loads((a.model / 'config.json').read_text())['model']['name']}), "
          f"image: {image_id}, host: {platform.processor() or platform.machine()}, torch {torch.__version__}\n")
    if a.case_index is not None:
        s = pipe.decode_settings
        print(f"similar cases: {a.case_index} ({len(pipe.case_index)} cases, {pipe.case_index.embedder}); sentence "
              f"reading: case_weight {s.case_weight}, cases {s.cases}, {s.case_embedding}\n")
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (wall times include waiting for a CPU; "
          "CPU s is the process's own time, all threads)\n")
    print("| job | runtime | device | threads | steps | median s | min s | median CPU s | peak RSS MB |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]} | {r[3]} | {r[4]} | {r[5]:.3f} | {r[6]:.3f} | {r[8]:.3f} | {r[7]:.0f} |")
    for other in ("onnx", "compiled"):
        if "torch" in a.runtimes and other in a.runtimes:
            print(f"\n| job | {other} / torch time |\n|---|---|")
            for name in sorted({k[0] for k in medians if (k[0], "torch") in medians and (k[0], other) in medians}):
                print(f"| {name} | {medians[(name, other)] / medians[(name, 'torch')]:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
