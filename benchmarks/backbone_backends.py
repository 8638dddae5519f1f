"""One backbone forward at the shapes drafts use, per backend: torch (eager), onnxruntime, torch.compile.

    python benchmarks/backbone_backends.py [--model resources/weights/medim-small] [--threads 1] [--repeats 30]

The shapes: a sentence slot (1 row, 20 text rows read), two views of a study (2 rows), a free draft's unmasking
step (4 candidates, the 32 positions of a text block); heads "text", the finding states told, as drafts call it.
The ONNX graph is runtime onnx's drafting graph (engines.export.onnx_export.export_backbone_rows: batch and rows
dynamic, onnxruntime with every graph optimisation, torch's thread count); torch.compile is inductor with freezing,
as engines.models.compiled runs it. Prints the median CPU ms per forward (this process's CPU time, so waiting for
a core on a shared machine does not count), each backend's speed-up over torch, the largest logit difference
to torch, and the time of the first compiled call (compile, or inductor's disk cache).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]  # this checkout's code

NAMES = ["text_ids", "image_ids", "t", "text_rows", "finding_states"]
SHAPES = (("sentence slot", 1, 20), ("two views", 2, 20), ("free-draft step", 4, 32))


def _cpu_ms(fn, repeats: int) -> float:  # type: ignore[no-untyped-def]
    fn()
    times = []
    for _ in range(repeats):
        c0 = time.process_time()
        fn()
        times.append(time.process_time() - c0)
    return statistics.median(times) * 1e3


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, default=ROOT / "resources" / "weights" / "medim-small")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=30)
    a = p.parse_args(argv)

    import torch

    torch.set_num_threads(a.threads)
    from engines.models.checkpoint import load_backbone
    from engines.models.compiled import CompiledBackbone

    model, _ = load_backbone(a.model)
    cfg = model.config

    def inputs(batch: int, rows: int, seed: int = 0) -> tuple:
        g = torch.Generator().manual_seed(seed)
        return (torch.randint(0, cfg.text_vocab_size, (batch, cfg.text_len), generator=g),
                torch.randint(0, cfg.image_vocab_size, (batch, cfg.image_len), generator=g),
                torch.rand(batch, generator=g), torch.arange(10, 10 + rows),
                torch.rand(batch, len(cfg.findings), generator=g).round())

    session = None
    try:
        from engines.export.onnx_export import _session, export_backbone_rows

        path = Path(tempfile.mkdtemp()) / "backbone_rows.onnx"
        export_backbone_rows(model, path)  # the graph runtime "onnx" drafts with
        session = _session(path)
    except ImportError as exc:
        print(f"onnxruntime not measured: {exc}", file=sys.stderr)
    compiled = CompiledBackbone(model)
    rows_out = []
    with torch.no_grad():
        for name, batch, n_rows in SHAPES:
            args = inputs(batch, n_rows)
            kw = {"heads": "text", "text_rows": args[3], "finding_states": args[4]}
            ref = model(*args[:3], **kw).text_logits
            t0 = time.perf_counter()
            compiled.warm(*args[:3], **kw)
            compiled.wait()
            first = time.perf_counter() - t0
            if compiled.error:
                raise SystemExit(f"torch.compile failed: {compiled.error}")
            row = {"shape": name, "batch": batch, "rows": n_rows,
                   "torch": _cpu_ms(lambda args=args, kw=kw: model(*args[:3], **kw), a.repeats),
                   "compiled": _cpu_ms(lambda args=args, kw=kw: compiled(*args[:3], **kw), a.repeats),
                   "compiled_diff": float((compiled(*args[:3], **kw).text_logits - ref).abs().max()),
                   "compile_s": first}
            if session is not None:
                feed = {n: x.numpy() for n, x in zip(NAMES, args, strict=True)}
                row["onnx"] = _cpu_ms(lambda feed=feed: session.run(None, feed), a.repeats)
                row["onnx_diff"] = float(abs(session.run(None, feed)[0] - ref.numpy()).max())
            rows_out.append(row)
    compiled.close()
    print(f"\nmodel: {a.model.name} (d={cfg.d_model}, {cfg.n_layers} blocks, {cfg.seq_len} tokens), torch {torch.__version__}"
          f", {a.threads} thread(s), load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs, "
          f"median of {a.repeats}\n")
    print("| shape | batch | rows read | torch CPU ms | onnxruntime CPU ms | onnx speed-up | onnx max diff "
          "| compiled CPU ms | compiled speed-up | compiled max diff | first compiled call s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows_out:
        onnx = (f"{r['onnx']:.2f} | {r['torch'] / r['onnx']:.2f} | {r['onnx_diff']:.1e}" if "onnx" in r
                else "- | - | -")
        print(f"| {r['shape']} | {r['batch']} | {r['rows']} | {r['torch']:.2f} | {onnx} | {r['compiled']:.2f} | "
              f"{r['torch'] / r['compiled']:.2f} | {r['compiled_diff']:.1e} | {r['compile_s']:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
