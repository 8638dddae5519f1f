"""The CPU that hashing every received byte costs by itself (issue 27's C-GET CPU target): SHA-256 (hashlib,
as the store and the getscu transport hash) of N instances of a given size, against which getscu's whole CPU
for the same retrieve (benchmarks/pacs.py) can be read.

    python benchmarks/hash_floor.py [--instances 600] [--size-kib 512] [--repeats 5]

Prints a markdown table: CPU s for all instances (median and min of the repeats) and ms per instance.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import statistics
import time


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--instances", type=int, default=600)
    p.add_argument("--size-kib", type=int, default=512, help="bytes per instance (a 512^2 16-bit CT slice: 512)")
    p.add_argument("--repeats", type=int, default=5)
    a = p.parse_args(argv)
    data = os.urandom(a.size_kib * 1024)
    times = []
    for _ in range(a.repeats):
        t0 = time.process_time()
        for _ in range(a.instances):
            hashlib.sha256(data).digest()
        times.append(time.process_time() - t0)
    med = statistics.median(times)
    print(f"SHA-256 of {a.instances} x {a.size_kib} KiB | median of {a.repeats} | {platform.machine()}, "
          f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}, Python {platform.python_version()}")
    print("| instances | KiB each | CPU s (median) | CPU s (min) | ms per instance |\n|---:|---:|---:|---:|---:|")
    print(f"| {a.instances} | {a.size_kib} | {med:.3f} | {min(times):.3f} | {1000 * med / a.instances:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
