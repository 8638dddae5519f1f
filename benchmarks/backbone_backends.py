"""One backbone forward at the shapes drafts use, per backend: torch (eager), onnxruntime, torch.compile.

    python benchmarks/backbone_backends.py [--model resources/weights/medim-small] [--threads 1] [--repeats 30]

The shapes: a sentence slot (1 row, 20 text rows read), two views of a study (2 rows), a free draft's unmasking
step (4 candidates, the 32 positions of a text block); heads "text", the finding states told, as drafts call it.
The ONNX graph is runtime onnx's drafting graph (engines.export.onnx_export.export_backbone_rows: batch and rows
dynamic, onnxruntime with every graph optimisation, torch's thread count); torch.compile is inductor with freezing,
as engines.models.compiled runs it. Prints the median CPU ms per forward (this process's CPU time, so waiting for
a core on a shared machine does not count), each backend's speed-up over torch, the largest logit difference
to torch, and the time of the first compiled call (compile, or inductor's disk cache); then runtime onnx-int8's
drafting graph (engines.export.onnx_export.quantize_rows) against the float32 one, timed call by call alternately;
then the full ONNX graph (both heads, every row) that runtime onnx runs for the other jobs, against torch.
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


def _cpu_ms_alternating(fa, fb, repeats: int) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """Median CPU ms of two callables timed call by call in turn (a, b, a, b, ...), so both see the same load."""
    fa(), fb()
    ta, tb = [], []
    for _ in range(repeats):
        for fn, times in ((fa, ta), (fb, tb)):
            c0 = time.process_time()
            fn()
            times.append(time.process_time() - c0)
    return statistics.median(ta) * 1e3, statistics.median(tb) * 1e3


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

    session = full = int8 = None
    try:
        from engines.export.onnx_export import (
            OPSET,
            _session,
            export_backbone,
            export_backbone_rows,
            quantize_rows,
        )

        folder = Path(tempfile.mkdtemp())
        export_backbone_rows(model, folder / "backbone_rows.onnx")  # the graph runtime "onnx" drafts with
        export_backbone(model, folder / "backbone.onnx")  # and the one its other jobs run (both heads, every row)
        session, full = _session(folder / "backbone_rows.onnx"), _session(folder / "backbone.onnx")
        quantize_rows(folder / "backbone_rows.onnx", folder / "backbone_rows.int8.onnx")  # runtime "onnx-int8"'s
        int8 = _session(folder / "backbone_rows.int8.onnx")
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
                row["alt_fp32"], row["alt_int8"] = _cpu_ms_alternating(lambda feed=feed: session.run(None, feed),
                                                                       lambda feed=feed: int8.run(None, feed),
                                                                       a.repeats)
                row["int8_diff"] = float(abs(int8.run(None, feed)[0] - ref.numpy()).max())
            rows_out.append(row)
        full_rows = []
        for batch in (1, 4) if full is not None else ():
            text, image, t, _, states = inputs(batch, 1)
            feed = {"text_ids": text.numpy(), "image_ids": image.numpy(), "t": t.numpy(),
                    "finding_states": states.numpy()}
            ref = model(text, image, t, finding_states=states)
            got = full.run(None, feed)
            diff = max(float(abs(g - r.numpy()).max()) for g, r in zip(got, (ref.text_logits, ref.image_logits),
                                                                         strict=True))
            call = (text, image, t, states)
            full_rows.append((batch, _cpu_ms(lambda c=call: model(*c[:3], finding_states=c[3]), a.repeats),
                              _cpu_ms(lambda feed=feed: full.run(None, feed), a.repeats), diff))
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
    if session is not None:
        print("\nRuntime onnx-int8's drafting graph against the float32 one (onnx), timed alternately call by call:\n")
        print("| shape | batch | rows read | onnx CPU ms | onnx-int8 CPU ms | int8 speed-up | int8 max diff to torch |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for r in rows_out:
            print(f"| {r['shape']} | {r['batch']} | {r['rows']} | {r['alt_fp32']:.2f} | {r['alt_int8']:.2f} | "
                  f"{r['alt_fp32'] / r['alt_int8']:.2f} | {r['int8_diff']:.1e} |")
    if full_rows:
        print(f"\nThe full graph (both heads, every row: answers, synthesis, inpainting), opset {OPSET}:\n")
        print("| batch | torch CPU ms | onnxruntime CPU ms | onnx speed-up | onnx max diff |\n|---:|---:|---:|---:|---:|")
        for batch, t_ms, o_ms, diff in full_rows:
            print(f"| {batch} | {t_ms:.2f} | {o_ms:.2f} | {t_ms / o_ms:.2f} | {diff:.1e} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
