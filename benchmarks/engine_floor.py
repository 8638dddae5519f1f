"""Engine drafts against their FLOP floor: FLOPs per draft, the SGEMM rate measured in the same run, the
floor (FLOPs / rate), the measured median, its ratio to the floor, and drafts per minute.

    python benchmarks/engine_floor.py [--model resources/weights/medim-small] [--threads 1] [--repeats 5]
                                      [--modes sentences free] [--json OUT] [--runtime torch|compiled|onnx|onnx-int8]

FLOPs are counted by `torch.utils.flop_counter.FlopCounterMode` over one whole draft (matrix products,
convolutions and attention, the CPU attention kernel with a formula added here (count_flops); the last two
columns count without attention, as the first two rounds did: the work a BLAS-bound floor can be stated for;
elementwise ops, softmax, sorting and Python are not counted, which is why they show as the gap to the floor). The SGEMM rate is
the best of a few single-precision matrix products at the same thread count, timed right before the
drafts, per wall second and per CPU second of this process; each floor is FLOPs / its rate. "wall" is
the median wall time (on a machine shared with other work it includes waiting for a core); "CPU" the
median of this process's CPU time (all threads), the fairer one there. With `--runtime compiled` the draft
shapes are compiled (and waited for) before anything is timed, and the FLOPs are counted on the torch forward
(the same matrix products; FlopCounterMode cannot see into compiled kernels).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]  # this checkout's code, not an installed copy

from engine import DEFAULT_MODEL, _image  # noqa: E402 - the same model and val image as benchmarks/engine.py


def sgemm_rate(threads: int, sizes: tuple[int, ...] = (256, 512, 1024),
               repeats: int = 5) -> dict[int, tuple[float, float]]:
    """GFLOP/s of float32 square matrix products per size, per wall second and per CPU second of this
    process (medians of `repeats` after a warm-up)."""
    import torch

    torch.set_num_threads(threads)
    out = {}
    for n in sizes:
        a, b = torch.randn(n, n), torch.randn(n, n)
        reps = max(3, int(4e9 / (2 * n**3)))  # ~4 GFLOP per timing
        torch.mm(a, b)
        wall, cpu = [], []
        for _ in range(repeats):
            t0, c0 = time.perf_counter(), time.process_time()
            for _ in range(reps):
                torch.mm(a, b)
            wall.append((time.perf_counter() - t0) / reps)
            cpu.append((time.process_time() - c0) / reps)
        out[n] = (2 * n**3 / statistics.median(wall) / 1e9, 2 * n**3 / statistics.median(cpu) / 1e9)
    return out


def block_gemm_rate(rows: int, d: int, hidden: int, repeats: int = 5) -> float:
    """GFLOP/s per CPU second of one transformer block's four linear layers (qkv, projection, MLP in and
    out, with bias) on `rows` tokens: the matrix products the model really does, thin (k = d) ones
    included, which no BLAS runs at the square-SGEMM rate."""
    import torch

    x, h = torch.randn(rows, d), torch.randn(rows, hidden)
    layers = [(x, torch.nn.Linear(d, 3 * d)), (x, torch.nn.Linear(d, d)), (x, torch.nn.Linear(d, hidden)),
              (h, torch.nn.Linear(hidden, d))]
    flops = sum(2 * rows * lin.in_features * lin.out_features for _, lin in layers)
    reps = max(3, int(2e9 / flops))
    with torch.no_grad():
        for inp, lin in layers:
            lin(inp)
        cpu = []
        for _ in range(repeats):
            c0 = time.process_time()
            for _ in range(reps):
                for inp, lin in layers:
                    lin(inp)
            cpu.append((time.process_time() - c0) / reps)
    return flops / statistics.median(cpu) / 1e9


def count_flops(job, attention: bool = True) -> int:  # type: ignore[no-untyped-def]
    """FLOPs of one run of `job`. PyTorch's counter has no formula for the CPU attention kernel
    (aten._scaled_dot_product_flash_attention_for_cpu: it counts 0), so `attention` adds one, the same as its
    formula for the other attention kernels (QK^T and AV); attention=False counts as before (round 2's figures)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

    def cpu_flash(query_shape, key_shape, value_shape, *_, **__) -> int:  # type: ignore[no-untyped-def]
        return sdpa_flop_count(query_shape, key_shape, value_shape)

    custom = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: cpu_flash} if attention else {}
    with FlopCounterMode(display=False, custom_mapping=custom) as counter:
        job()
    return int(counter.get_total_flops())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--modes", nargs="+", default=["sentences", "free"])
    p.add_argument("--json", type=Path, help="also write the rows as JSON objects")
    p.add_argument("--runtime", default="torch", help="how the backbone runs: torch, compiled, onnx or onnx-int8")
    a = p.parse_args(argv)

    import torch

    torch.set_num_threads(a.threads)
    from engines.pipeline import MedimPipeline

    image, image_id = _image()
    onnx_dir = {"onnx_dir": Path("/tmp/radstation-bench-onnx")} if a.runtime.startswith("onnx") else {}  # as engine.py
    pipe = MedimPipeline.from_pretrained(a.model, device="cpu", runtime=a.runtime, **onnx_dir)
    if pipe.runtime != a.runtime:
        raise SystemExit(f"runtime {a.runtime} unavailable: {pipe.runtime_error}")
    jobs = {mode: (lambda mode=mode: pipe.draft_report([image], mode=mode)) for mode in a.modes}
    flops, flops_no_attention = {}, {}
    net = pipe._net
    for job in jobs.values():
        job()  # warm-up (caches, lazy loads; the compiled runtime asks for its shapes)
    if a.runtime == "compiled":
        # Before counting: FlopCounterMode hooks every module globally, which a compile running beside it sees.
        net.wait()
        if net.error:
            raise SystemExit(f"the compiled backend failed: {net.error}")
    for mode, job in jobs.items():
        pipe._net = pipe.model  # the torch forward: the same matrix products, visible to FlopCounterMode
        flops[mode] = count_flops(job)
        flops_no_attention[mode] = count_flops(job, attention=False)
        pipe._net = net
        job()
    rates = sgemm_rate(a.threads)
    peak = max(r[0] for r in rates.values())  # per wall second
    peak_cpu = max(r[1] for r in rates.values())  # per CPU second
    cfg = pipe.model_config
    hidden = int(cfg.d_model * cfg.mlp_ratio)
    tokens = cfg.text_len + cfg.image_len
    shaped = {rows: block_gemm_rate(rows, cfg.d_model, hidden) for rows in (tokens, 4 * tokens)}
    rows = []
    for mode, job in jobs.items():
        times, cpu = [], []
        for _ in range(a.repeats):
            t0, c0 = time.perf_counter(), time.process_time()
            job()
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
        floor, floor_cpu = flops[mode] / (peak * 1e9), flops[mode] / (peak_cpu * 1e9)
        wall, cpu_s = statistics.median(times), statistics.median(cpu)
        rows.append({"draft": mode, "gflop": flops[mode] / 1e9, "sgemm_gflops": peak, "sgemm_gflops_cpu": peak_cpu,
                     "floor_s": floor, "floor_cpu_s": floor_cpu, "wall_s": wall, "cpu_s": cpu_s,
                     "ratio_wall": wall / floor, "ratio_cpu": cpu_s / floor_cpu,
                     "drafts_per_min_wall": 60 / wall, "drafts_per_min_cpu": 60 / cpu_s,
                     "gflop_no_attention": flops_no_attention[mode] / 1e9,
                     "ratio_cpu_no_attention": cpu_s / (flops_no_attention[mode] / (peak_cpu * 1e9)),
                     "threads": a.threads, "repeats": a.repeats, "runtime": a.runtime})
    load = os.getloadavg()[0]
    print(f"\nmodel: {a.model.name}, runtime: {a.runtime}, image: {image_id}, "
          f"host: {platform.processor() or platform.machine()}, "
          f"torch {torch.__version__}, {a.threads} thread(s), load average {load:.1f} on {os.cpu_count()} CPUs")
    print("SGEMM GFLOP/s (float32, square n; per wall s / per CPU s): "
          + ", ".join(f"n={n}: {w:.1f} / {c:.1f}" for n, (w, c) in rates.items())
          + f"; the floors use the best, {peak:.1f} / {peak_cpu:.1f}")
    if a.runtime == "onnx-int8":
        print("runtime onnx-int8 runs the blocks' weight matrix products in int8 (VNNI where the CPU has it): its "
              "floor is still the float32 SGEMM rate's, as issue 27 defines it")
    print("the model's own block GEMMs (d=" + f"{cfg.d_model}, hidden {hidden}, with bias), GFLOP/s per CPU s: "
          + ", ".join(f"{rows} tokens: {r:.1f}" for rows, r in shaped.items()) + "\n")
    print("| draft | GFLOP | floor s (wall) | median wall s | wall / floor | floor s (CPU) | median CPU s | CPU / floor "
          "| drafts/min (wall) | drafts/min per CPU | GFLOP without attention | CPU / that floor |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['draft']} | {r['gflop']:.2f} | {r['floor_s']:.3f} | {r['wall_s']:.3f} | {r['ratio_wall']:.2f} | "
              f"{r['floor_cpu_s']:.3f} | {r['cpu_s']:.3f} | {r['ratio_cpu']:.2f} | {r['drafts_per_min_wall']:.1f} | "
              f"{r['drafts_per_min_cpu']:.1f} | {r['gflop_no_attention']:.2f} | {r['ratio_cpu_no_attention']:.2f} |")
    if a.json:
        a.json.write_text(json.dumps({"load_average": load, "sgemm_gflops_wall_cpu": rates,
                                      "block_gemm_gflops_cpu": shaped, "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
