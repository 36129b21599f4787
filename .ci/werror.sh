#!/usr/bin/env bash
# Compiles every C file of the core (csrc/*.c, the binding _core.c with the Python and NumPy
# headers) with -Wall -Wextra -Werror, once with OpenMP and once without: both builds must be
# free of warnings. Needs gcc (or CC) and python3 with NumPy. OpenMP is optional, as in the build
# (meson.build): a compiler that cannot build an OpenMP program (clang without libomp's omp.h)
# compiles without it only, and says so.
#
#   .ci/werror.sh            (CC overrides the compiler; default gcc)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CC=${CC:-gcc}
PY=${PYTHON:-python3}
PYINC=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
NPINC=$("$PY" -c 'import numpy; print(numpy.get_include())')
FLAGS=(-std=c11 -O2 -Wall -Wextra -Werror -I"$ROOT/csrc")
status=0
variants=("")
probe=$(mktemp -d)
trap 'rm -rf "$probe"' EXIT
printf '#include <omp.h>\nint main(void) { return omp_get_max_threads() > 0 ? 0 : 1; }\n' > "$probe/omp.c"
if "$CC" -fopenmp "$probe/omp.c" -o "$probe/omp" 2> "$probe/log"; then
    variants+=(-fopenmp)
else
    echo "== -fopenmp: skipped, $CC cannot build an OpenMP program: $(head -n 1 "$probe/log")" >&2
fi
for omp in "${variants[@]}"; do
    for f in "$ROOT"/csrc/*.c; do
        extra=()
        # the binding's PyModuleDef leaves its trailing fields to their zero defaults, as
        # CPython's own modules do
        [ "$(basename "$f")" = _core.c ] && extra=(-I"$PYINC" -I"$NPINC" -Wno-missing-field-initializers)
        if ! "$CC" "${FLAGS[@]}" $omp "${extra[@]}" -c "$f" -o /dev/null; then
            echo "werror.sh: $(basename "$f") ${omp:-(no OpenMP)} has warnings" >&2
            status=1
        fi
    done
    echo "== ${omp:-no OpenMP}: $(ls "$ROOT"/csrc/*.c | wc -l) files compiled with -Wall -Wextra -Werror"
done
exit $status
