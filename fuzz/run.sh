#!/usr/bin/env bash
# Run fuzz targets: run.sh BIN_DIR SECONDS TARGET... (from fuzz/fuzz.mk).
# Each target runs over its checked-in seed corpus (fuzz/corpus/<target>),
# then mutates until SECONDS have passed since it started. New inputs go to
# a scratch corpus, so the checked-in one is never touched; an input that
# fails a target is written to fuzz/artifacts/<target>-*, and the run stops
# with the target's exit status. Prints one line per target: executions,
# executions per second, coverage (libFuzzer's cov: points), seeds and new
# inputs found. Extra libFuzzer flags: $FUZZ_EXTRA.
set -uo pipefail
bin=$1 seconds=$2
shift 2
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$here/artifacts"
for t in "$@"; do
    work=$(mktemp -d)
    log=$work/log
    mkdir "$work/new"
    # shellcheck disable=SC2086
    "$bin/$t" "$work/new" "$here/corpus/$t" -max_len=65536 -rss_limit_mb=4096 \
        -print_final_stats=1 -max_total_time="$seconds" \
        -artifact_prefix="$here/artifacts/$t-" ${FUZZ_EXTRA:-} >"$log" 2>&1
    rc=$?
    if [ $rc -ne 0 ]; then
        tail -60 "$log"
        echo "fuzz: $t FAILED (exit $rc); the failing input is in $here/artifacts" >&2
        rm -rf "$work"
        exit $rc
    fi
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | tr -dc 0-9)
    printf 'fuzz: %-13s %10s execs %8s execs/s  cov %6s  seeds %3s  new inputs %5s  (%s s)\n' \
        "$t" "$execs" "$rate" "$cov" "$(ls "$here/corpus/$t" | wc -l)" "$(ls "$work/new" | wc -l)" "$seconds"
    rm -rf "$work"
done
