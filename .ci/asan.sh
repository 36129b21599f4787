#!/usr/bin/env bash
# Builds synthdof with AddressSanitizer + UndefinedBehaviorSanitizer (gcc) into its own virtual
# environment and runs the Python test suite against it.
#
#   .ci/asan.sh [pytest args...]      (default: -q tests, without the ground-truth renders)
#
# The normal installation is left alone: everything goes to $SD_ASAN_DIR (default
# ${TMPDIR:-/tmp}/synthdof-asan), which is reused between runs (the meson build directory there
# makes a rebuild incremental). Needs only python3 (with venv and pip) and gcc.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=${SD_ASAN_DIR:-${TMPDIR:-/tmp}/synthdof-asan}
VENV=$WORK/venv
PY=${PYTHON:-python3}
CC=${CC:-gcc}
export CC

t0=$(date +%s)
mkdir -p "$WORK"

if [ ! -x "$VENV/bin/python" ]; then
    "$PY" -m venv "$VENV"
fi
VPY=$VENV/bin/python
# Build and test prerequisites (no build isolation: the build must see these exact tools).
"$VPY" -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null
"$VPY" -m pip install -q --disable-pip-version-check \
    "meson-python>=0.15" "meson>=1.1" ninja "numpy>=2.0" "pytest>=7" scipy scikit-image

LIBASAN=$("$CC" -print-file-name=libasan.so)
if [ ! -e "$LIBASAN" ]; then
    echo "asan.sh: $CC has no libasan.so ($LIBASAN)" >&2
    exit 2
fi

# float-cast-overflow is not part of gcc's -fsanitize=undefined; it catches float -> int
# conversions of out-of-range values (huge CoC, huge coordinates).
SAN_FLAGS="-fsanitize=address,undefined,float-cast-overflow -fno-sanitize-recover=all -fno-omit-frame-pointer"
echo "== building the sanitized extension in $WORK/build"
"$VPY" -m pip install -q --disable-pip-version-check --no-build-isolation --no-deps --force-reinstall \
    -Cbuild-dir="$WORK/build" \
    -Csetup-args=-Dbuildtype=debugoptimized \
    -Csetup-args=-Db_ndebug=false \
    -Csetup-args=-Db_lundef=false \
    "-Csetup-args=-Dc_args=$SAN_FLAGS" \
    "-Csetup-args=-Dc_link_args=$SAN_FLAGS" \
    "$ROOT"
t1=$(date +%s)
echo "== build took $((t1 - t0)) s"

# The extension must really be the sanitized one.
SO=$(find "$VENV" -path '*/synthdof/_core*.so' | head -n 1)
if [ -z "$SO" ] || [[ "$(ldd "$SO")" != *libasan* ]]; then
    echo "asan.sh: the installed synthdof._core ($SO) is not linked against libasan" >&2
    exit 2
fi

# CPython leaks by design at exit: no leak checking. Everything else stops at the first report.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
export PYTHONFAULTHANDLER=1
# Two threads even on one core, so the OpenMP paths run too.
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}

cd "$ROOT"
if [ $# -eq 0 ]; then
    # The full-resolution ground-truth renders run the same code paths as the small tests at
    # 40x the cost under the sanitizers (about two minutes); SD_ASAN_FULL=1 includes them.
    # The generator's re-render runs Blender, a program of its own, not synthdof's C core.
    if [ "${SD_ASAN_FULL:-0}" = 1 ]; then
        set -- -q tests -k "not test_rerender_matches"
    else
        set -- -q tests -k "not test_ground_truth_bar and not test_rerender_matches"
    fi
fi
echo "== pytest $* (sanitized)"
status=0
# --capture=sys: pytest would otherwise capture file descriptor 2 during each test, and a
# process that a sanitizer stops takes that captured report with it.
LD_PRELOAD="$LIBASAN" "$VPY" -m pytest -p no:cacheprovider --capture=sys "$@" || status=$?
t2=$(date +%s)
echo "== tests took $((t2 - t1)) s, total $((t2 - t0)) s"
exit $status
