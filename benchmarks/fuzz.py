"""Coverage-guided fuzzing (atheris / libFuzzer) of every parser that reads untrusted input.

    python benchmarks/fuzz.py --minutes N [--targets dicom_probe,pixel_decode] [--work DIR]

Targets (tests/fuzz/targets.py): dicom_probe (import probe + structure walk), pixel_decode (the viewer's
decode), dicomweb_json (QIDO-RS answers), zip_dicomdir (zip and DICOMDIR sources), worker_protocol (the
engine worker's JSON lines). Each runs `--minutes` in its own process, seeded from tests/fuzz/corpus/<target>,
with a 10 s per-input timeout (a hang) and a 3 GB memory limit. Prints a table of executions, coverage
(libFuzzer's cov/ft counters), corpus size, crashes and hangs; crashing inputs are kept under
`--work`/artifacts - copy each one into tests/fuzz/corpus/<target>/ once fixed, where
tests/fuzz/test_fuzz_regressions.py replays it.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _child(target: str, seconds: int, corpus: Path, artifacts: Path) -> None:
    """Runs inside the fuzzing process: instrument the product's modules, then fuzz one target."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
    sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
    import atheris

    with atheris.instrument_imports(include=["app", "viewer", "engines", "pydicom", "fuzz"]):
        from fuzz.targets import CORPUS, TARGETS

        import app.importer.integrity  # noqa: F401
        import app.importer.probe  # noqa: F401
        import app.importer.sources  # noqa: F401
        import app.pacs.dicomweb  # noqa: F401
        import app.pacs.query  # noqa: F401
        import engines.worker.protocol  # noqa: F401
        import engines.worker.wire  # noqa: F401
        import viewer.io.image  # noqa: F401

    fn = TARGETS[target]
    import hashlib

    # Warm up on the seeds outside libFuzzer's clock: the first decode measures the decoder plugins once
    # (seconds on a loaded machine), which the per-input timeout would otherwise report as a hang.
    for seed in sorted((CORPUS / target).glob("*")):
        try:
            fn(seed.read_bytes())
        except Exception as exc:  # noqa: BLE001 - replayed by the regression test; fuzzing goes on
            print(f"seed {seed.name} raises {type(exc).__name__}: {exc}", file=sys.stderr)

    def one_input(data: bytes) -> None:
        try:
            fn(data)
        except BaseException:
            # Keep the input ourselves: libFuzzer does not always write it before the process ends.
            (artifacts / f"crash-{hashlib.sha1(data).hexdigest()}").write_bytes(data)
            raise

    args = [sys.argv[0], f"-max_total_time={seconds}", "-timeout=10", "-rss_limit_mb=3072", "-print_final_stats=1",
            "-max_len=262144", f"-artifact_prefix={artifacts}/", str(corpus)]
    seeds = CORPUS / target
    if seeds.is_dir():
        args.append(str(seeds))
    atheris.Setup(args, one_input)
    atheris.Fuzz()


_DONE = re.compile(r"#(\d+)\s+DONE\s+cov: (\d+) ft: (\d+) corp: (\d+)/(\S+)")
_ANY = re.compile(r"#(\d+)\s+\w+\s+cov: (\d+) ft: (\d+) corp: (\d+)/(\S+)")
_STAT = re.compile(r"stat::(\w+):\s+(\d+)")


def _run(target: str, minutes: float, work: Path) -> dict:
    corpus = work / "corpus" / target
    artifacts = work / "artifacts" / target
    corpus.mkdir(parents=True, exist_ok=True)
    artifacts.mkdir(parents=True, exist_ok=True)
    seconds = max(1, int(minutes * 60))
    log = work / f"{target}.log"
    started = time.monotonic()
    with open(log, "wb") as out:
        proc = subprocess.run([sys.executable, __file__, "--child", target, "--seconds", str(seconds),
                               "--corpus", str(corpus), "--artifacts", str(artifacts)],
                              stdout=out, stderr=subprocess.STDOUT, timeout=seconds + 600, check=False)
    text = log.read_text(errors="replace")
    stats = {k: int(v) for k, v in _STAT.findall(text)}
    last = _DONE.findall(text) or _ANY.findall(text)
    execs, cov, ft, corp = (int(last[-1][0]), int(last[-1][1]), int(last[-1][2]), int(last[-1][3])) if last else (0,) * 4
    crashes = sorted(p.name for p in artifacts.iterdir() if p.name.startswith(("crash-", "oom-", "leak-")))
    if not crashes and "Uncaught Python exception" in text:
        crashes = ["(uncaught exception, input not kept: see the log)"]
    hangs = sorted(p.name for p in artifacts.iterdir() if p.name.startswith(("timeout-", "slow-unit-")))
    elapsed = time.monotonic() - started
    return {"target": target, "seconds": elapsed, "execs": stats.get("number_of_executed_units", execs),
            "cov": cov, "ft": ft, "corpus": corp, "crashes": crashes, "hangs": hangs, "rc": proc.returncode,
            "rss_mb": stats.get("peak_rss_mb", 0), "log": str(log)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=1.0, help="per target")
    parser.add_argument("--targets", default="", help="comma-separated (default: all)")
    parser.add_argument("--work", type=Path, help="keep corpora, logs and crashing inputs here")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--corpus", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--artifacts", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child, args.seconds, args.corpus, args.artifacts)
        return 0
    try:
        import atheris  # noqa: F401
    except ImportError:
        print("atheris is not installed (pip install atheris)", file=sys.stderr)
        return 2
    sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
    from fuzz.targets import TARGETS

    names = [t for t in args.targets.split(",") if t] or list(TARGETS)
    unknown = [n for n in names if n not in TARGETS]
    if unknown:
        print(f"unknown target(s) {unknown}; known: {', '.join(TARGETS)}", file=sys.stderr)
        return 2
    work = args.work or Path(tempfile.mkdtemp(prefix="radstation-fuzz-"))
    rows = []
    for name in names:
        print(f"fuzzing {name} for {args.minutes:g} min ...", file=sys.stderr, flush=True)
        rows.append(_run(name, args.minutes, work))
    print(f"\nFuzzing (atheris {__import__('atheris').__version__ if hasattr(__import__('atheris'), '__version__') else ''}"
          f", libFuzzer) | {args.minutes:g} min per target | {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f} | work dir {work}\n")
    print("| target | minutes | executions | exec/s | coverage (cov / ft) | corpus | crashes | hangs |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        rate = r["execs"] / r["seconds"] if r["seconds"] else 0
        print(f"| {r['target']} | {r['seconds'] / 60:.1f} | {r['execs']} | {rate:.0f} | {r['cov']} / {r['ft']} | "
              f"{r['corpus']} | {len(r['crashes'])} | {len(r['hangs'])} |")
    bad = [r for r in rows if r["crashes"] or r["hangs"] or r["rc"] not in (0,)]
    for r in bad:
        print(f"{r['target']}: exit {r['rc']}, crashes {r['crashes']}, hangs {r['hangs']} (log {r['log']})")
    if not args.work:
        if bad:
            print(f"kept {work} for the crashing inputs", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
