"""Python vs C over the same libconverge. Run with `make bench-python`.

1. Per-call overhead of one ``counter.increment`` (delta returned): C
   program vs Python, in alternating runs on fresh stores; plus, inside one
   process on one engine, the binding's own cost over a bare ctypes call
   (interleaved chunks, so machine noise hits both sides alike), and the
   cost of the same ctypes call over a C call, taken on a call that fails
   at once (a NULL engine), so no RocksDB noise is in it; and the Python
   side alone: ``Counter.increment`` calling no-op C stubs (stub.c) with
   the real signatures, which is the figure compared with the goal.
2. A batch of 100,000 increments over 10,000 keys written to a persisted
   engine (durability "buffered"), from C and from Python (per-item adds,
   ``increment_many``, with and without deltas), alternating runs.

Medians are reported. The Rust-API figure is not measured here (it needs a
Rust build outside this package); see README.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from array import array
from ctypes import byref

import converge
from converge import _ffi
from converge._ffi import Bytes

med = statistics.median


def run_c(exe: str, d: str, mode: str, a: argparse.Namespace) -> dict[str, float]:
    out = subprocess.run(
        [exe, d, mode, str(a.calls), str(a.ops), str(a.keys), "1"],
        check=True, capture_output=True, text=True,
    ).stdout
    return {row["case"]: row["seconds"][0] for row in map(json.loads, out.splitlines())}


def py_calls(path: str, calls: int) -> float:
    with converge.Engine(path, durability="buffered") as db:
        c = db.counter(b"likes")
        t0 = time.perf_counter()
        for _ in range(calls):
            c.increment(1)
        return (time.perf_counter() - t0) / calls


def py_overheads(path: str, chunks: int, size: int) -> dict[str, float]:
    """In one process: binding vs bare ctypes on one engine (interleaved),
    and bare ctypes vs C on the in-memory batch add."""
    lib = _ffi.lib
    inc, free, key = lib.cvg_engine_increment, lib.cvg_bytes_free, b"likes"
    wrapper, ctypes_only = [], []
    with converge.Engine(path, durability="buffered") as db:
        c, ptr = db.counter(key), db._ptr
        def bound() -> float:
            t0 = time.perf_counter()
            for _ in range(size):
                c.increment(1)
            return (time.perf_counter() - t0) / size

        def bare() -> float:
            t0 = time.perf_counter()
            for _ in range(size):
                d = Bytes()
                inc(ptr, key, 5, 1, byref(d))
                free(byref(d))
            return (time.perf_counter() - t0) / size

        for i in range(chunks):  # alternate which side goes first
            if i % 2:
                ctypes_only.append(bare())
                wrapper.append(bound())
            else:
                wrapper.append(bound())
                ctypes_only.append(bare())
        nulls = []
        for _ in range(chunks):
            t0 = time.perf_counter()
            for _ in range(size):
                d = Bytes()
                inc(None, key, 5, 1, byref(d))
                free(byref(d))
            nulls.append((time.perf_counter() - t0) / size)
        b = db.batch()
        add_raw, add, bptr = lib.cvg_batch_increment, b.increment, b._ptr
        raw_add, bound_add = [], []
        for _ in range(chunks):
            t0 = time.perf_counter()
            for _ in range(size):
                add_raw(bptr, key, 5, 1)
            t1 = time.perf_counter()
            for _ in range(size):
                add(key, 1)
            t2 = time.perf_counter()
            b.clear()
            raw_add.append((t1 - t0) / size)
            bound_add.append((t2 - t1) / size)
        b.close()
    return {
        "increment_binding": med(wrapper),
        "increment_bare_ctypes": med(ctypes_only),
        "null_engine_ctypes": med(nulls),
        "batch_add_bare_ctypes": med(raw_add),
        "batch_add_binding": med(bound_add),
    }


def py_stub(path: str, stub_lib: str, chunks: int, size: int) -> dict[str, float]:
    """The Python side of one Counter.increment alone: the binding calls
    no-op C stubs (stub.c) with the real signatures instead of the engine."""
    import ctypes

    from converge import crdts

    stub = ctypes.CDLL(stub_lib)
    inc = stub.stub_increment
    inc.restype, inc.argtypes = _ffi.FUNCTIONS["cvg_engine_increment"]  # type: ignore[misc]
    free = stub.stub_bytes_free
    free.restype, free.argtypes = _ffi.FUNCTIONS["cvg_bytes_free"]  # type: ignore[misc]
    real = crdts._increment, crdts._bytes_free
    bound, bare = [], []
    with converge.Engine(path, durability="buffered") as db:
        c, ptr, key = db.counter(b"likes"), db._ptr, b"likes"
        crdts._increment, crdts._bytes_free = inc, free
        try:
            assert c.increment(1) == bytes(40)
            for _ in range(chunks):
                t0 = time.perf_counter()
                for _ in range(size):
                    c.increment(1)
                t1 = time.perf_counter()
                for _ in range(size):
                    d = Bytes()
                    inc(ptr, key, 5, 1, byref(d))
                    free(byref(d))
                t2 = time.perf_counter()
                bound.append((t1 - t0) / size)
                bare.append((t2 - t1) / size)
        finally:
            crdts._increment, crdts._bytes_free = real
    return {"stub_binding": med(bound), "stub_bare_ctypes": med(bare)}


def py_batch(path: str, mode: str, items: list[tuple[bytes, int]], nkeys: int) -> tuple[float, float]:
    with converge.Engine(path, durability="buffered") as db:
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
        assert len(deltas) == (0 if mode == "many_nodeltas" else len(items))
        assert db.counter(items[0][0]).value() == len(items) // nkeys
    return t2 - t0, t1 - t0


def packed_input_cost(items: list[tuple[bytes, int]]) -> float:
    """What Python would spend preparing one bulk call if the C ABI took
    packed arrays (keys blob + lengths + counts): the estimate in README."""
    t0 = time.perf_counter()
    keys = [k for k, _ in items]
    blob = b"".join(keys)
    lens = array("Q", map(len, keys))
    ns = array("Q", [n for _, n in items])
    assert len(blob) >= len(lens) == len(ns)
    return time.perf_counter() - t0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--c-bench", required=True, help="the compiled bench_c program")
    p.add_argument("--stub", required=True, help="the compiled stub.c shared library")
    p.add_argument("--calls", type=int, default=20000)
    p.add_argument("--ops", type=int, default=100_000)
    p.add_argument("--keys", type=int, default=10_000)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--json", help="also write the raw results here")
    a = p.parse_args()
    keys = [f"key:{k:05}".encode() for k in range(a.keys)]
    items = [(keys[i % a.keys], 1) for i in range(a.ops)]
    res: dict[str, list[float]] = {}

    def rec(case: str, v: float) -> None:
        res.setdefault(case, []).append(v)

    with tempfile.TemporaryDirectory() as d:
        for r in range(a.reps):
            for case, v in run_c(a.c_bench, d, "call", a).items():
                rec(f"c_{case}", v)
            rec("py_call_increment_delta", py_calls(f"{d}/py-call-{r}", a.calls))
            for case, v in run_c(a.c_bench, d, "batch", a).items():
                rec(f"c_{case}", v)
            for mode in ("loop", "many", "many_nodeltas"):
                total, build = py_batch(f"{d}/py-batch-{mode}-{r}", mode, items, a.keys)
                rec(f"py_batch_total_{mode}", total)
                rec(f"py_batch_build_{mode}", build)
            rec("py_packed_input", packed_input_cost(items))
        over = py_overheads(f"{d}/overheads", chunks=40, size=500)
        over.update(py_stub(f"{d}/stub", a.stub, chunks=21, size=5000))
    m = {k: med(v) for k, v in res.items()}
    m.update(over)

    us = 1e6
    print(f"libconverge {converge.library_version()} (dev profile) at {converge.library_path()}")
    print(f"Python {sys.version.split()[0]}; medians of {a.reps} alternating runs, fresh store each\n")
    print(f"1. one counter.increment, delta returned ({a.calls} calls)")
    c_call, py_call = m["c_call_increment_delta"], m["py_call_increment_delta"]
    print(f"   C ABI from C {c_call * us:7.2f} us   Python {py_call * us:7.2f} us   "
          f"difference {(py_call - c_call) * us:+.2f} us (noisy: the call itself is a RocksDB write)")
    binding = over["increment_binding"] - over["increment_bare_ctypes"]  # RocksDB noise in it
    ctypes_cost = over["null_engine_ctypes"] - m["c_call_null_engine"]
    print(f"   binding over bare ctypes, same engine, interleaved: {binding * us:+.2f} us (noisy)")
    print(f"   bare ctypes over C, same call failing at once (NULL engine): {ctypes_cost * us:+.2f} us "
          f"({over['null_engine_ctypes'] * us:.2f} vs {m['c_call_null_engine'] * us:.2f} us)")
    print(f"   Python side alone (binding calling no-op C stubs, no engine): "
          f"{over['stub_binding'] * us:.2f} us per call (bare ctypes to the stubs: {over['stub_bare_ctypes'] * us:.2f} us)")
    print(f"   => Python extra per call ~ {over['stub_binding'] * us:.2f} us (goal <= 2 us)")
    print(f"   batch add: C {m['c_batch_build_nodeltas'] / a.ops * us:.2f} us, bare ctypes "
          f"{over['batch_add_bare_ctypes'] * us:.2f} us, Batch.increment {over['batch_add_binding'] * us:.2f} us per op\n")
    print(f"2. batch of {a.ops} increments over {a.keys} keys, durability buffered")
    rows = [
        ("C, deltas read", "c_batch_total_deltas", "c_batch_build_deltas", "c_batch_total_deltas"),
        ("C, no deltas", "c_batch_total_nodeltas", "c_batch_build_nodeltas", "c_batch_total_nodeltas"),
        ("Python Batch.increment loop, deltas", "py_batch_total_loop", "py_batch_build_loop", "c_batch_total_deltas"),
        ("Python increment_many, deltas", "py_batch_total_many", "py_batch_build_many", "c_batch_total_deltas"),
        ("Python increment_many, no deltas", "py_batch_total_many_nodeltas", "py_batch_build_many_nodeltas", "c_batch_total_nodeltas"),
    ]
    for name, total, build, ref in rows:
        t = m[total]
        print(f"   {name:<37} {t * 1e3:7.1f} ms (build {m[build] * 1e3:6.1f} ms) "
              f"{a.ops / t / 1e3:6.0f} kops/s  {m[ref] / t:4.2f}x C")
    print(f"   packing the same input for a hypothetical bulk C call: {m['py_packed_input'] * 1e3:.1f} ms")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"runs": res, "medians": m}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
