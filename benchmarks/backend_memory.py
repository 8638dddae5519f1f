"""Resident memory of the built-in engine per backbone backend (issue 27): each backend loads the shipped
weights in its own fresh process, drafts once in sentence mode and once in free mode, and reports its RSS and
USS (psutil). onnxruntime's sessions hold their own copies of the graphs, so the onnx backends cost more than
torch; this says how much.

    python benchmarks/backend_memory.py [--model resources/weights/medim-small] [--backends torch onnx onnx-int8]

Prints a markdown table (backend asked, backend running, RSS MiB, USS MiB) with the platform.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MODEL = ROOT / "resources" / "weights" / "medim-small"

_CHILD = """
import json, sys
import numpy as np, psutil, torch
torch.set_num_threads(1)
from engines.pipeline import MedimPipeline
pipe = MedimPipeline.from_pretrained(sys.argv[1], device="cpu", runtime=sys.argv[2])
image = np.random.default_rng(0).integers(0, 255, (256, 256)).astype(np.uint8)
pipe.draft_sentences([image])
pipe.draft_report([image], steps=8)
info = psutil.Process().memory_full_info()
print(json.dumps({"running": pipe.runtime, "rss_mib": info.rss / 2**20, "uss_mib": info.uss / 2**20}))
"""


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    p.add_argument("--backends", nargs="+", default=["torch", "onnx", "onnx-int8"])
    a = p.parse_args(argv)
    rows = []
    for backend in a.backends:
        res = subprocess.run([sys.executable, "-c", _CHILD, str(a.model), backend], cwd=ROOT, capture_output=True,
                             text=True, timeout=900, env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin",
                                                          "PYTHONPATH": str(ROOT)})
        if res.returncode != 0:
            print(f"{backend}: failed: {res.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
            continue
        rows.append((backend, json.loads(res.stdout.strip().splitlines()[-1])))
    print(f"engine worker memory after one sentence and one free draft | {platform.machine()}, "
          f"Python {platform.python_version()} | model {a.model.name}")
    print("| backend asked | running | RSS MiB | USS MiB |\n|---|---|---:|---:|")
    for backend, r in rows:
        print(f"| {backend} | {r['running']} | {r['rss_mib']:.0f} | {r['uss_mib']:.0f} |")
    return 0 if rows else 1


if __name__ == "__main__":
    raise SystemExit(main())
