"""Python vs the Rust API on the same batch: 100,000 G-Counter increments
over 10,000 keys written to a fresh engine (durability "buffered"), in
alternating runs; both sides over release builds of the same code. Run with
`make bench-python-rust`, which builds the Rust program and installs the
package with the release library into a scratch directory.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time

import converge


def rust(exe: str, d: str, a: argparse.Namespace, deltas: bool) -> float:
    out = subprocess.run(
        [exe, d, str(a.ops), str(a.keys), "1", "1" if deltas else "0"],
        check=True, capture_output=True, text=True,
    ).stdout
    return float(json.loads(out)["seconds"][0])


def python(d: str, a: argparse.Namespace, deltas: bool) -> float:
    names = [b"key:%06d" % i for i in range(a.keys)]
    path = os.path.join(d, "py")
    with converge.Engine(path, durability="buffered") as db:
        t = time.perf_counter()
        b = db.batch(deltas=deltas)
        b.increment_many((names[i % a.keys], 1) for i in range(a.ops))
        b.commit()
        elapsed = time.perf_counter() - t
        b.close()
    shutil.rmtree(path)
    return elapsed


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--rust", required=True, help="the batch_rust program")
    p.add_argument("--ops", type=int, default=100_000)
    p.add_argument("--keys", type=int, default=10_000)
    p.add_argument("--reps", type=int, default=7)
    a = p.parse_args()
    print(f"library: {converge._ffi.lib.path}")
    for deltas in (False, True):
        rs, ps = [], []
        for _ in range(a.reps):
            with tempfile.TemporaryDirectory() as d:
                rs.append(rust(a.rust, d, a, deltas))
                ps.append(python(d, a, deltas))
        r, q = statistics.median(rs), statistics.median(ps)
        print(
            f"batch {a.ops} increments / {a.keys} keys, deltas {'read' if deltas else 'off'}: "
            f"Rust {a.ops / r / 1e3:.0f} kops/s, Python {a.ops / q / 1e3:.0f} kops/s, "
            f"ratio {r / q:.2f}x (goal >= 0.8x)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
