#!/usr/bin/env bash
# Run the test suite against a build of ipcq made with AddressSanitizer and
# UndefinedBehaviorSanitizer (IPCQ_SANITIZE=1, see setup.py).
#
# The build happens in a scratch copy of the source tree, so the in-place
# build that everyone else's test runs import stays as it is.  Arguments go
# to pytest, e.g. `tests/native/run_sanitized.sh -x tests/test_threads.py`.
#
# CPython itself is not instrumented, so the ASan runtime must be the first
# library loaded (LD_PRELOAD).  PYTHONMALLOC=malloc sends every Python
# allocation through malloc(), where ASan sees it, instead of pymalloc's
# arenas.  Leak detection is off: CPython does not free everything at exit,
# and valgrind (tests/native/run_valgrind.sh) checks leaks instead.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
# The interpreter itself, not a wrapper script (pyenv shims are scripts).
python=$("${PYTHON:-python3}" -c 'import sys; print(sys.executable)')
cc=${CC:-gcc}

libasan=$("$cc" -print-file-name=libasan.so)
if [ ! -e "$libasan" ]; then
    echo "run_sanitized.sh: no libasan.so for $cc (install its ASan runtime)" >&2
    exit 2
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/ipcq-sanitized.XXXXXX")
trap 'rm -rf "$work"' EXIT

# Sources only: no build products, caches or VCS data.
tar -C "$root" -cf - \
    --exclude=./.git --exclude=./.tox --exclude=./build --exclude=./dist \
    --exclude='*.so' --exclude='ipcq/_*.c' --exclude=__pycache__ \
    --exclude=.hypothesis --exclude=.pytest_cache --exclude=./docs/_build \
    . | tar -C "$work" -xf -

cd "$work"
IPCQ_SANITIZE=1 "$python" setup.py -q build_ext --inplace >build.log 2>&1 || {
    cat build.log >&2
    exit 2
}
for runtime in libasan libubsan; do
    if ! ldd ipcq/_posix*.so | grep -q "$runtime"; then
        echo "run_sanitized.sh: the extension does not use $runtime" >&2
        exit 2
    fi
done

export LD_PRELOAD="$libasan${LD_PRELOAD:+:$LD_PRELOAD}"
# Reports go to files (log_path), shown at the end: pytest captures a
# test's stderr, and a report written there dies with an aborted process.
# A decoder fed a hostile length (pickle's BINBYTES) may ask for gigabytes:
# let such a malloc() fail as it would without ASan, as a MemoryError.
export ASAN_OPTIONS="log_path=$work/sanitizer:detect_leaks=0:abort_on_error=1:allocator_may_return_null=1:max_allocation_size_mb=2048:strict_string_checks=1:check_initialization_order=1:detect_stack_use_after_return=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="log_path=$work/sanitizer:print_stacktrace=1:halt_on_error=1:abort_on_error=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
export PYTHONMALLOC=malloc

"$python" -c 'import ipcq._posix, ipcq._sysv, ipcq._common' || {
    echo "run_sanitized.sh: the sanitized build does not import" >&2
    exit 2
}
# pytest's faulthandler_timeout starts a watchdog thread for every test.
# A test that forks while that thread is being set up can leave the child
# blocked for ever on a lock of ASan's allocator (gcc 12's runtime does not
# reset it in the child), so the sanitized run goes without it; every test
# that waits has a bound of its own.
status=0
"$python" -m pytest -p no:cacheprovider -o faulthandler_timeout=0 "$@" \
    || status=$?

# Warnings (a refused giant malloc(), for one) are shown; errors fail.
reports=("$work"/sanitizer.*)
if [ -e "${reports[0]}" ]; then
    echo "run_sanitized.sh: sanitizer output:" >&2
    cat "${reports[@]}" >&2
    if grep -qE "ERROR: (Address|Leak|Undefined)Sanitizer|runtime error:" \
        "${reports[@]}"; then
        echo "run_sanitized.sh: the sanitizers found errors" >&2
        [ "$status" -ne 0 ] || status=1
    fi
fi
exit "$status"
