"""Python vs C over the same libconverge: per-call overhead of one counter
increment, and a batch of 100,000 increments over 10,000 keys into a
persisted engine (durability "buffered"). Run with `make bench-python`.

Every case runs REPS times in a fresh store; the medians are reported.
The Rust-API figure for the batch is not measured here (it would need a
build outside this package); see README.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from ctypes import byref

import converge
from converge import _ffi
from converge._ffi import Bytes


def per_call(dirname: str, calls: int, reps: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"handle": [], "handle_each_call": [], "raw_ctypes": []}
    for r in range(reps):
        with converge.Engine(f"{dirname}/py-call-{r}", durability="buffered") as db:
            c = db.counter(b"likes")
            t0 = time.perf_counter()
            for _ in range(calls):
                c.increment(1)
            out["handle"].append((time.perf_counter() - t0) / calls)
            t0 = time.perf_counter()
            for _ in range(calls):
                db.counter(b"likes").increment(1)
            out["handle_each_call"].append((time.perf_counter() - t0) / calls)
            inc, free, ptr, key = _ffi.lib.cvg_engine_increment, _ffi.lib.cvg_bytes_free, db._ptr, b"likes"
            t0 = time.perf_counter()
            for _ in range(calls):
                d = Bytes()
                inc(ptr, key, 5, 1, byref(d))
                free(byref(d))
            out["raw_ctypes"].append((time.perf_counter() - t0) / calls)
    return out


def batch(dirname: str, ops: int, nkeys: int, reps: int) -> dict[str, list[float]]:
    keys = [f"key:{k:05}".encode() for k in range(nkeys)]
    items = [(keys[i % nkeys], 1) for i in range(ops)]
    out: dict[str, list[float]] = {}

    def record(case: str, value: float) -> None:
        out.setdefault(case, []).append(value)

    for r in range(reps):
        for mode in ("loop", "many", "many_nodeltas"):
            with converge.Engine(f"{dirname}/py-batch-{mode}-{r}", durability="buffered") as db:
                t0 = time.perf_counter()
                b = db.batch(deltas=mode != "many_nodeltas")
                if mode == "loop":
                    add = b.increment
                    for k, n in items:
                        add(k, n)
                else:
                    b.increment_many(items)
                t1 = time.perf_counter()
                deltas = b.commit()
                b.close()
                t2 = time.perf_counter()
                assert len(deltas) == (0 if mode == "many_nodeltas" else ops)
                assert db.counter(keys[0]).value() == ops // nkeys
                record(f"batch_build_{mode}", t1 - t0)
                record(f"batch_total_{mode}", t2 - t0)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--c-bench", required=True, help="the compiled bench_c program")
    p.add_argument("--calls", type=int, default=20000)
    p.add_argument("--ops", type=int, default=100_000)
    p.add_argument("--keys", type=int, default=10_000)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--json", help="also write the raw results here")
    a = p.parse_args()
    med = statistics.median
    with tempfile.TemporaryDirectory() as d:
        c_out = subprocess.run(
            [a.c_bench, d, str(a.calls), str(a.ops), str(a.keys), str(a.reps)],
            check=True, capture_output=True, text=True,
        ).stdout
        c = {row["case"]: row["seconds"] for row in map(json.loads, c_out.splitlines())}
        py = per_call(d, a.calls, a.reps)
        py.update(batch(d, a.ops, a.keys, a.reps))

    c_call = med(c["call_increment_delta"])
    print(f"libconverge {converge.library_version()} at {converge.library_path()}")
    print(f"Python {sys.version.split()[0]}; medians of {a.reps} runs, fresh store each\n")
    print(f"per-call counter.increment ({a.calls} calls, delta returned)")
    print(f"  C ABI from C                     {c_call * 1e6:8.2f} us")
    for case in ("handle", "handle_each_call", "raw_ctypes"):
        t = med(py[case])
        print(f"  Python {case:<25} {t * 1e6:8.2f} us   (+{(t - c_call) * 1e6:.2f} us)")
    print(f"\nbatch of {a.ops} increments over {a.keys} keys, durability buffered")
    rows = [
        ("C, deltas read", c["batch_total_deltas"], c["batch_build_deltas"]),
        ("C, no deltas", c["batch_total_nodeltas"], c["batch_build_nodeltas"]),
        ("Python b.increment loop, deltas", py["batch_total_loop"], py["batch_build_loop"]),
        ("Python increment_many, deltas", py["batch_total_many"], py["batch_build_many"]),
        ("Python increment_many, no deltas", py["batch_total_many_nodeltas"], py["batch_build_many_nodeltas"]),
    ]
    base = {"deltas": med(c["batch_total_deltas"]), "no deltas": med(c["batch_total_nodeltas"])}
    for name, total, build in rows:
        t = med(total)
        ref = base["no deltas"] if "no deltas" in name else base["deltas"]
        print(
            f"  {name:<34} {t * 1e3:8.1f} ms  build {med(build) * 1e3:7.1f} ms  "
            f"{a.ops / t / 1e3:7.0f} kops/s  {ref / t:5.2f}x C"
        )
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"c": c, "python": py}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
