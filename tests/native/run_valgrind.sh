#!/usr/bin/env bash
# Run tests/native/valgrind_smoke.py under valgrind's memcheck and fail if
# memcheck reports an invalid access, a use of uninitialised memory or a
# leak whose stack passes through ipcq's extension modules.
#
# The extension is built in a scratch copy of the tree with the normal
# flags (what users get), plus -g for readable stacks.  PYTHONMALLOC=malloc
# makes CPython allocate through malloc(), so memcheck sees every block.
# Errors inside CPython itself are listed but do not fail the run.
# Set IPCQ_SMOKE_ROUNDS to make the workload longer (default 60).
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
# The interpreter itself, not a wrapper script (pyenv shims are scripts,
# and valgrind does not follow exec by default).
python=$("${PYTHON:-python3}" -c 'import sys; print(sys.executable)')

command -v valgrind >/dev/null || {
    echo "run_valgrind.sh: valgrind is not installed" >&2
    exit 2
}

work=$(mktemp -d "${TMPDIR:-/tmp}/ipcq-memcheck.XXXXXX")
trap 'rm -rf "$work"' EXIT

tar -C "$root" -cf - \
    --exclude=./.git --exclude=./.tox --exclude=./build --exclude=./dist \
    --exclude='*.so' --exclude='ipcq/_*.c' --exclude=__pycache__ \
    --exclude=.hypothesis --exclude=.pytest_cache --exclude=./docs/_build \
    . | tar -C "$work" -xf -

cd "$work"
CFLAGS="${CFLAGS:-} -g" "$python" setup.py -q build_ext --inplace \
    >build.log 2>&1 || {
    cat build.log >&2
    exit 2
}

status=0
PYTHONMALLOC=malloc PYTHONPATH="$work" valgrind \
    --tool=memcheck \
    --leak-check=full \
    --show-leak-kinds=definite,indirect,possible \
    --errors-for-leak-kinds=definite,indirect \
    --num-callers=40 \
    --child-silent-after-fork=yes \
    --fair-sched=yes \
    --xml=yes --xml-file="$work/memcheck.xml" \
    "$python" tests/native/valgrind_smoke.py || status=$?

"$python" - "$work/memcheck.xml" "$status" "$(readlink -f "$python")" \
    "$work/ipcq/" <<'PY'
"""Sort memcheck's findings into ipcq's and everyone else's.

A finding belongs to the first frame of its stack that is neither
valgrind's allocator, the C library nor CPython itself: a block that
ipcq obtains through PyBytes_FromStringAndSize() is ipcq's, one that
orjson allocates while ipcq imports it is orjson's, and a memcpy() that
ipcq calls is ipcq's.
"""
import collections
import sys
import xml.etree.ElementTree as ET

path, status, interpreter, ours_dir = sys.argv[1:5]
status = int(status)


def owner(frames):
    for frame in frames:
        obj = frame.findtext("obj") or ""
        name = obj.rsplit("/", 1)[-1]
        if obj == interpreter or name.startswith(
            ("vgpreload_", "memcheck-", "libpython", "libc.so", "ld-linux")
        ):
            continue
        return "ipcq" if obj.startswith(ours_dir) else name or "?"
    return "CPython"


root = ET.parse(path).getroot()
ours, theirs = [], collections.Counter()
leaked = collections.Counter()

for error in root.iter("error"):
    kind = error.findtext("kind")
    frames = error.find("stack").findall("frame")
    who = owner(frames)
    if kind.startswith("Leak_"):
        leaked[(kind, who == "ipcq")] += int(error.findtext("xwhat/leakedbytes") or 0)
    if who == "ipcq" and kind != "Leak_PossiblyLost":
        where = [
            f"{f.findtext('fn') or '?'} ({f.findtext('file') or f.findtext('obj')}"
            f":{f.findtext('line') or ''})"
            for f in frames[:12]
        ]
        text = error.findtext("what") or error.findtext("xwhat/text")
        ours.append(f"{kind}: {text}\n    " + "\n    ".join(where))
    elif who != "ipcq":
        theirs[(kind, who)] += 1

print(f"workload exit status: {status}")
for (kind, is_ours), size in sorted(leaked.items()):
    print(f"{kind}: {size} bytes {'from ipcq' if is_ours else 'from others'}")
print("findings outside ipcq (not counted):")
for (kind, who), n in sorted(theirs.items()):
    print(f"    {kind} in {who}: {n}")
print(f"findings in ipcq: {len(ours)}")
for entry in ours:
    print(entry)
sys.exit(1 if ours or status else 0)
PY
