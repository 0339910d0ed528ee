#!/usr/bin/env bash
# Compare one `hot` workload between a base revision and the working tree,
# with runs interleaved so that both builds meet the same machine noise:
#
#   benches/compare.sh BASE ROUNDS HOT_ARGS...
#   e.g. HOT_THREADS=2 benches/compare.sh HEAD~1 3 counter 3
#
# BASE is built in a temporary git worktree (its uncommitted changes are not
# included), the working tree as it is; both with the same CARGO_TARGET_DIR,
# profile and compiler environment, so RocksDB's C++ is compiled once and
# only the engine and the benchmarks are rebuilt (about a minute each). Then ROUNDS rounds each run the
# base build and the new one once with HOT_ARGS (and the HOT_* variables of
# the environment), and the medians are printed per build: the figures
# BENCHMARKS.md quotes as "interleaved rounds".
set -euo pipefail

if [ $# -lt 3 ]; then
    sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
fi
base=$1
rounds=$2
shift 2
case $rounds in '' | *[!0-9]*) echo "ROUNDS must be a number, got '$rounds'" >&2; exit 2 ;; esac

root=$(git rev-parse --show-toplevel)
git -C "$root" rev-parse --verify -q "$base^{commit}" >/dev/null ||
    { echo "unknown revision '$base'" >&2; exit 2; }
target=${CARGO_TARGET_DIR:-$root/target}
work=$(mktemp -d)
cleanup() {
    git -C "$root" worktree remove --force "$work/base" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

build() { # DIR OUT
    # Both trees give the workspace's crates the same artifact names, and
    # cargo judges freshness by file times: the workspace's own crates are
    # cleaned first, so each build compiles its own sources (RocksDB is a
    # registry crate and stays built).
    (cd "$1" && export CARGO_TARGET_DIR="$target" &&
        cargo clean -q --release -p converge -p converge-benches &&
        cargo build --release -q -p converge-benches --example hot)
    cp "$target/release/examples/hot" "$2"
}
git -C "$root" worktree add -q --detach "$work/base" "$base"
echo "building $base" >&2
build "$work/base" "$work/hot-base"
echo "building the working tree" >&2
build "$root" "$work/hot-new"
if cmp -s "$work/hot-base" "$work/hot-new"; then
    echo "the two builds are the same binary: nothing to compare" >&2
    exit 1
fi

for i in $(seq 1 "$rounds"); do
    for b in base new; do
        line=$("$work/hot-$b" "$@" | tail -1)
        echo "round $i $b: $line" >&2
        echo "$b $(echo "$line" | sed -n 's/.*median \([0-9]*\) ops.*/\1/p')"
    done
done | awk -v base="$base" '
    { r[$1] = r[$1] " " $2; n[$1]++; s[$1] += $2 }
    END {
        printf "base (%s):%s ops/s\n", base, r["base"]
        printf "new (working tree):%s ops/s\n", r["new"]
        if (n["base"] && s["base"]) printf "mean new/base: %.2f\n", (s["new"] / n["new"]) / (s["base"] / n["base"])
    }'
