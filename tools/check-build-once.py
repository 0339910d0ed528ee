#!/usr/bin/env python3
"""Fail if cargo would build librocksdb-sys more than once.

Usage: check-build-once.py CARGO 'INVOCATION' ['INVOCATION' ...]

Each INVOCATION is the argument list of one cargo command that `make test`,
`make demo` and the C/Python targets run (for example
"clippy --workspace --all-targets"). Run after those targets have built
everything. Each invocation is run again with --message-format=json; the
check fails if any of them compiles librocksdb-sys ("fresh": false), or if
they do not all use the same librocksdb-sys build-script output directory
(one build of RocksDB's C++ per profile, not one per invocation).
"""

import json
import shlex
import subprocess
import sys


def rocksdb_units(cargo: str, invocation: str) -> tuple[list[bool], set[str]]:
    cmd = [cargo, *shlex.split(invocation), "--message-format=json"]
    run = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    if run.returncode != 0:
        sys.exit(f"check-build-once: `{' '.join(cmd)}` failed (exit {run.returncode})")
    fresh: list[bool] = []
    out_dirs: set[str] = set()
    for line in run.stdout.splitlines():
        try:
            msg = json.loads(line)
        except json.JSONDecodeError:
            continue
        pkg = msg.get("package_id", "")
        if "librocksdb-sys@" not in pkg and "#librocksdb-sys" not in pkg:
            continue
        if msg.get("reason") == "compiler-artifact":
            fresh.append(bool(msg.get("fresh")))
        elif msg.get("reason") == "build-script-executed":
            out_dirs.add(msg.get("out_dir", ""))
    return fresh, out_dirs


def main() -> None:
    cargo, invocations = sys.argv[1], sys.argv[2:]
    seen: dict[str, str] = {}
    for inv in invocations:
        fresh, out_dirs = rocksdb_units(cargo, inv)
        if not fresh or not out_dirs:
            sys.exit(f"check-build-once: cargo {inv}: no librocksdb-sys unit reported")
        if not all(fresh):
            sys.exit(f"check-build-once: cargo {inv} rebuilt librocksdb-sys")
        for d in out_dirs:
            seen.setdefault(d, inv)
        print(f"check-build-once: cargo {inv}: librocksdb-sys fresh, {', '.join(sorted(out_dirs))}")
    if len(seen) != 1:
        detail = "\n".join(f"  {d}  (first used by cargo {inv})" for d, inv in seen.items())
        sys.exit(f"check-build-once: {len(seen)} builds of librocksdb-sys, expected 1:\n{detail}")
    print("check-build-once: one build of librocksdb-sys serves every invocation")


if __name__ == "__main__":
    main()
