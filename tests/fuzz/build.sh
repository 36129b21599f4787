#!/usr/bin/env bash
# Builds the libFuzzer harnesses of the C core with AddressSanitizer and UBSan.
#
#   tests/fuzz/build.sh [outdir]      (default: tests/fuzz/build)
#
# Needs clang with libFuzzer and the sanitizer runtimes (Debian/Ubuntu: apt-get install clang; on
# Debian 12 and later also libclang-rt-dev, which clang only recommends). CC overrides the compiler.
# The core is built without OpenMP here (one thread, deterministic runs); the sanitized Python
# test run (.ci/asan.sh) covers the threaded paths.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
OUT=${1:-$HERE/build}
CC=${CC:-clang}
if ! command -v "$CC" >/dev/null; then
    for v in 19 18 17 16 15 14; do
        if command -v "clang-$v" >/dev/null; then CC=clang-$v; break; fi
    done
fi
command -v "$CC" >/dev/null || { echo "build.sh: clang not found (apt-get install clang)" >&2; exit 2; }
mkdir -p "$OUT"
FLAGS=(-g -O1 -std=c11 -D_DEFAULT_SOURCE -fno-omit-frame-pointer
       -fsanitize=fuzzer,address,undefined,float-cast-overflow -fno-sanitize-recover=all
       -Wall -Wextra -Wno-unknown-pragmas -Wno-unused-function -Wno-unused-variable -Wno-unused-parameter -I"$ROOT/csrc")
CORE=("$ROOT"/csrc/sd_*.c) # every core file; _core.c is the Python binding
for h in spread render pushpull coc edge maps alloc; do
    "$CC" "${FLAGS[@]}" "$HERE/fuzz_$h.c" "${CORE[@]}" -lm -o "$OUT/fuzz_$h" &
done
fail=0
for j in $(jobs -p); do wait "$j" || fail=1; done
[ $fail -eq 0 ] || { echo "build.sh: compilation failed" >&2; exit 1; }
echo "built: $(cd "$OUT" && ls fuzz_* | tr '\n' ' ')in $OUT ($("$CC" --version | head -n 1))"
