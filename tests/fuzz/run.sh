#!/usr/bin/env bash
# Runs every libFuzzer harness for a while and prints a summary per harness.
#
#   tests/fuzz/run.sh [seconds-per-harness] [harness...]     (default: 60 s, all of them)
#
# Environment: FUZZ_JOBS harnesses at a time (default: number of cores), FUZZ_WORK the working
# directory (default ${TMPDIR:-/tmp}/synthdof-fuzz: corpus/<harness>, artifacts/<harness>,
# logs/<harness>.log), FUZZ_BUILD the harness binaries (default tests/fuzz/build, built first
# when missing or older than the sources). The committed seed corpus (tests/fuzz/seeds.tar.gz,
# one directory per harness, unpacked to $FUZZ_WORK/seeds) is read but never written.
# Exit status 1 when any harness found a crash, leak, timeout or failed check; the reproducing
# input is in artifacts/<harness>/ (replay: build/fuzz_<harness> FILE).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SECS=${1:-60}
shift || true
HARNESSES=("$@")
[ ${#HARNESSES[@]} -gt 0 ] || HARNESSES=(spread render pushpull coc edge maps alloc)
WORK=${FUZZ_WORK:-${TMPDIR:-/tmp}/synthdof-fuzz}
BUILD=${FUZZ_BUILD:-$HERE/build}
JOBS=${FUZZ_JOBS:-$(nproc 2>/dev/null || echo 2)}

stale=0
for h in "${HARNESSES[@]}"; do
    bin=$BUILD/fuzz_$h
    if [ ! -x "$bin" ]; then stale=1; continue; fi
    for src in "$HERE"/*.c "$HERE"/*.h "$HERE"/../../csrc/*.c "$HERE"/../../csrc/*.h; do
        [ "$src" -nt "$bin" ] && stale=1
    done
done
[ $stale -eq 0 ] || "$HERE/build.sh" "$BUILD"

if [ -f "$HERE/seeds.tar.gz" ]; then
    rm -rf "$WORK/seeds"
    mkdir -p "$WORK/seeds"
    tar -xzf "$HERE/seeds.tar.gz" -C "$WORK/seeds"
fi

run_one() {
    local h=$1 seeds=()
    mkdir -p "$WORK/corpus/$h" "$WORK/artifacts/$h" "$WORK/logs"
    [ -d "$WORK/seeds/$h" ] && seeds=("$WORK/seeds/$h")
    # detect_leaks stays on: every entry point must free what it allocates, cancelled or not.
    ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_stack_use_after_return=1} \
    UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1} \
    "$BUILD/fuzz_$h" -max_total_time="$SECS" -timeout=20 -rss_limit_mb=2048 -max_len=16384 \
        -print_final_stats=1 -artifact_prefix="$WORK/artifacts/$h/" \
        "$WORK/corpus/$h" "${seeds[@]}" >"$WORK/logs/$h.log" 2>&1
}

echo "fuzzing ${HARNESSES[*]} for $SECS s each, $JOBS at a time (logs in $WORK/logs)"
declare -A status
running=()
for h in "${HARNESSES[@]}"; do
    while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n || true; done
    run_one "$h" &
    status[$h]=$!
done
fail=0
printf '%-9s %12s %9s %7s %7s %7s  %s\n' harness execs exec/s cov ft corpus result
for h in "${HARNESSES[@]}"; do
    rc=0
    wait "${status[$h]}" || rc=$?
    log=$WORK/logs/$h.log
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -n 1 || true)
    speed=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -n 1 || true)
    last=$(grep -E '^#[0-9]+' "$log" | tail -n 1 || true)
    cov=$(echo "$last" | grep -o 'cov: [0-9]*' | grep -o '[0-9]*' || true)
    ft=$(echo "$last" | grep -o 'ft: [0-9]*' | grep -o '[0-9]*' || true)
    corp=$(echo "$last" | grep -o 'corp: [0-9]*' | grep -o '[0-9]*' || true)
    res=ok
    if [ $rc -ne 0 ]; then
        res="FAILED (exit $rc): $(grep -m1 -E 'ERROR: |runtime error|fuzz check failed|SUMMARY' "$log" || echo 'see log')"
        fail=1
    fi
    printf '%-9s %12s %9s %7s %7s %7s  %s\n' "$h" "${execs:-?}" "${speed:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" "$res"
done
[ $fail -eq 0 ] || echo "reproducers: $WORK/artifacts/<harness>/ (replay with $BUILD/fuzz_<harness> FILE)"
exit $fail
