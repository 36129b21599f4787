#!/usr/bin/env bash
# Short libFuzzer run of every C-core harness (tests/fuzz), for CI.
#
#   .ci/fuzz_smoke.sh [seconds-per-harness]     (default 30)
#
# Installs clang and its libFuzzer/sanitizer runtimes with apt when no clang can link a fuzzer
# (root or sudo needed), builds the harnesses with ASan + UBSan + libFuzzer, and runs each one
# starting from the committed seed corpus (tests/fuzz/seeds.tar.gz). Fails on any crash,
# sanitizer report, leak, timeout or failed check; the reproducer is printed (replay it with
# tests/fuzz/build/fuzz_<harness> FILE).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SECS=${1:-30}
t0=$(date +%s)

find_clang() {
    local cands=(clang clang-19 clang-18 clang-17 clang-16 clang-15 clang-14)
    case "${CC:-}" in *clang*) cands=("$CC" "${cands[@]}") ;; esac
    for c in "${cands[@]}"; do
        command -v "$c" >/dev/null && { echo "$c"; return 0; }
    done
    return 1
}
# clang alone is not enough: libFuzzer and the sanitizer runtimes are a package of their own on
# Debian 12 and later (libclang-rt-N-dev, only recommended by clang), so probe a real link.
can_fuzz() {
    local cc probe
    cc=$(find_clang) || return 1
    probe=$(mktemp -d "${TMPDIR:-/tmp}/synthdof-probe.XXXXXX")
    printf '#include <stddef.h>\n#include <stdint.h>\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }\n' >"$probe/p.c"
    "$cc" -fsanitize=fuzzer,address,undefined "$probe/p.c" -o "$probe/p" >/dev/null 2>&1
    local rc=$?
    rm -rf "$probe"
    return $rc
}
if ! can_fuzz; then
    APT=(env DEBIAN_FRONTEND=noninteractive apt-get)
    [ "$(id -u)" -eq 0 ] || APT=(sudo "${APT[@]}")
    "${APT[@]}" update -q
    "${APT[@]}" install -y -q --no-install-recommends clang libc6-dev
    if ! can_fuzz; then
        cc=$(find_clang) || { echo "fuzz_smoke.sh: no clang after installing it" >&2; exit 2; }
        v=$("$cc" --version | grep -o 'version [0-9]*' | grep -o '[0-9]*$' | head -n 1)
        for pkg in "libclang-rt-$v-dev" libclang-rt-dev; do
            if apt-cache show "$pkg" >/dev/null 2>&1; then
                "${APT[@]}" install -y -q --no-install-recommends "$pkg"
                break
            fi
        done
    fi
    can_fuzz || { echo "fuzz_smoke.sh: clang cannot link libFuzzer + ASan programs" >&2; exit 2; }
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
