#!/usr/bin/env bash
# Short libFuzzer run of every C-core harness (tests/fuzz), for CI.
#
#   .ci/fuzz_smoke.sh [seconds-per-harness]     (default 30)
#
# Installs clang with apt when no clang is found (root or sudo needed), builds the harnesses
# with ASan + UBSan + libFuzzer, and runs each one starting from the committed seed corpus
# (tests/fuzz/seeds.tar.gz). Fails on any crash, sanitizer report, leak, timeout or failed
# check; the reproducer is printed (replay it with tests/fuzz/build/fuzz_<harness> FILE).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SECS=${1:-30}
t0=$(date +%s)

have_clang() {
    command -v clang >/dev/null && return 0
    for v in 19 18 17 16 15 14; do command -v "clang-$v" >/dev/null && return 0; done
    return 1
}
if ! have_clang; then
    SUDO=
    [ "$(id -u)" -eq 0 ] || SUDO=sudo
    $SUDO apt-get update -q
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends clang libc6-dev
fi

export FUZZ_WORK=${FUZZ_WORK:-$(mktemp -d "${TMPDIR:-/tmp}/synthdof-fuzz-smoke.XXXXXX")}
"$ROOT/tests/fuzz/build.sh"
t1=$(date +%s)
echo "== build took $((t1 - t0)) s"
status=0
"$ROOT/tests/fuzz/run.sh" "$SECS" || status=$?
if [ $status -ne 0 ]; then
    for f in "$FUZZ_WORK"/artifacts/*/*; do
        [ -e "$f" ] || continue
        echo "== reproducer $f ($(stat -c %s "$f") bytes, base64):"
        base64 -w 0 "$f"; echo
    done
    for h in "$FUZZ_WORK"/logs/*.log; do
        grep -qE 'ERROR|runtime error|fuzz check failed' "$h" || continue
        echo "== $h"; grep -E -A 30 'ERROR|runtime error|fuzz check failed' "$h" | head -n 60
    done
fi
echo "== fuzz smoke took $(( $(date +%s) - t0 )) s"
exit $status
