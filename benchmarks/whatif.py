"""What-if latency: time from "What if" to the first counterfactual image, with the default weights.

    python benchmarks/whatif.py [--model resources/weights/medim-small] [--threads 2] [--repeats 3]
                                [--device cpu] [--steps N] [--variants 1] [--head-guidance X]

Stages timed separately: region (labeler diff + attention + likelihood shift), one inpaint run (the
resampling under the edited report with guidance and, as the app does, the finding head's guidance; decode
included), and the whole job for
`--variants` seeds. The image is the demo nodule radiograph (NIH, shipped) with the nodule removed
from its report. Prints a markdown table (stage, device, threads, steps, grid, median s, min s).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DEFAULT_MODEL = ROOT / "resources" / "weights" / "medim-small"
DEMO = ROOT / "resources" / "demo" / "PT000002" / "ST000000" / "SE000000" / "IM000000"
REPORT = ("The heart is normal in size. There is a right upper lobe nodule. No pleural effusion.\n\n"
          "IMPRESSION: Right upper lobe nodule.")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--variants", type=int, default=1)
    ap.add_argument("--head-guidance", type=float, default=None,
                    help="finding-head guidance of the edited resample (default: the weights' whatif_head_guidance)")
    args = ap.parse_args()

    import pydicom
    import torch

    from engines.counterfactual import WhatIfRequest, run_whatif
    from engines.counterfactual.edits import diff_reports
    from engines.counterfactual.ranking import edit_signs
    from engines.counterfactual.region import score_region, select_tokens
    from engines.pipeline import MedimPipeline, prepare_image

    torch.set_num_threads(args.threads)
    if not args.model.exists():
        print(f"error: no model at {args.model} (train and ship the default weights, or pass --model)",
              file=sys.stderr)
        return 2
    t = time.perf_counter()
    pipe = MedimPipeline.from_pretrained(args.model, device=args.device)
    load_s = time.perf_counter() - t
    image = pydicom.dcmread(DEMO).pixel_array
    req = WhatIfRequest.from_instruction(image, REPORT, "remove the nodule", seeds=tuple(range(args.variants)),
                                         steps=args.steps, head_guidance=args.head_guidance)
    edit = diff_reports(req.current_report, req.edited_report)
    model_img = prepare_image(image, pipe.image_size)
    steps = args.steps or pipe.default_steps
    head = pipe.default_head_guidance if args.head_guidance is None else args.head_guidance
    push = edit_signs(edit, pipe.model_config.findings) if head else None

    def region() -> np.ndarray:
        sc = score_region(pipe, model_img, req.current_report, req.edited_report,
                          [s.text for s in edit.removed_sentences], [s.text for s in edit.added_sentences])
        return select_tokens(sc.combined, req.area, req.margin)

    mask = region()

    def inpaint() -> None:
        pipe.inpaint(model_img, mask, req.edited_report, steps=steps, guidance=req.guidance, seed=0,
                     contrast_report=req.current_report, head_push=push, head_guidance=head)

    def whole() -> None:
        run_whatif(pipe, req)

    whole()  # warm-up
    rows = []
    for name, fn in (("region selection", region), ("inpaint (1 variant)", inpaint),
                     (f"what-if job ({args.variants} variant(s))", whole)):
        times = []
        for _ in range(args.repeats):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        rows.append((name, statistics.median(times), min(times)))
    dev = str(pipe.device)
    if dev.startswith("cuda"):
        dev += f" ({torch.cuda.get_device_name()})"
    else:
        dev += f" ({platform.processor() or platform.machine()})"
    print(f"model {args.model} ({pipe.weights_hash[:12]}), {pipe.model_config.name}, grid {pipe.grid}x{pipe.grid}, "
          f"image {pipe.image_size}px, load {load_s:.2f} s, region {mask.mean():.0%} of tokens, "
          f"guidance {req.guidance}, head guidance {head}, repeats {args.repeats}")
    print("| stage | device | threads | steps | median s | min s |")
    print("|---|---|---|---|---|---|")
    for name, med, mn in rows:
        print(f"| {name} | {dev} | {args.threads} | {steps} | {med:.3f} | {mn:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
