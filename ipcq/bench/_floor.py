"""Build floor.c, the C program every figure is compared with, and
binding.c, the least a Python binding can do."""

import importlib.machinery
import importlib.util
import json
import os
import shlex
import shutil
import subprocess
import sysconfig

from ipcq.bench._harness import BenchError

SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "floor.c")


def _compiler():
    command = shlex.split(os.environ.get("CC") or "cc")
    if not command or shutil.which(command[0]) is None:
        name = command[0] if command else "(empty CC)"
        raise BenchError(
            f"no C compiler to build the C floor: '{name}' was not found; "
            "install one (Debian: apt-get install gcc) or set CC"
        )
    return command


def compiler_version():
    """The first line of ``cc --version``, or None."""
    try:
        proc = subprocess.run(
            _compiler() + ["--version"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (BenchError, OSError, subprocess.SubprocessError):
        return None
    lines = proc.stdout.splitlines()
    return lines[0].strip() if lines else None


def _compile(arguments, what):
    """Run the C compiler with *arguments*; BenchError naming *what* if it
    cannot run or fails, with the first error it printed."""
    command = _compiler() + arguments
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.SubprocessError) as exc:
        raise BenchError(f"cannot run the C compiler: {exc}") from None
    if proc.returncode != 0:
        errors = (
            [line for line in proc.stderr.splitlines() if "error" in line]
            or proc.stderr.splitlines()
            or ["(no message)"]
        )
        raise BenchError(
            f"{what} did not compile ({shlex.join(command)}): {errors[0].strip()}"
        )


class Floor:
    """floor.c compiled with ``cc -O2`` into the run's temporary directory.

    The compiler is ``$CC`` if set, else ``cc``.
    """

    def __init__(self, registry):
        if not os.path.exists(SOURCE):
            raise BenchError(f"the C floor source is missing: {SOURCE}")
        self.path = registry.path("floor")
        _compile(["-O2", "-o", self.path, SOURCE, "-lrt"], "the C floor")

    def run(self, *args, timeout=120):
        """Run ``floor ARGS...`` and return the JSON object it prints."""
        argv = [self.path] + [str(a) for a in args]
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise BenchError(
                f"the C floor ({args[0]} {args[1]}) did not finish within "
                f"{timeout:.0f} s"
            ) from None
        if proc.returncode != 0:
            message = proc.stderr.strip().splitlines() or [
                f"exit status {proc.returncode}"
            ]
            raise BenchError(f"the C floor failed: {message[-1]}")
        return json.loads(proc.stdout)


BINDING_SOURCE = os.path.join(os.path.dirname(SOURCE), "binding.c")


def build_binding(registry):
    """Compile binding.c into the run's temporary directory and import it.

    Returns the module; raises BenchError with a one-line reason when it
    cannot be built here (no compiler, no Python headers).
    """
    include = sysconfig.get_paths()["include"]
    if not os.path.exists(os.path.join(include, "Python.h")):
        raise BenchError(
            f"no Python headers in {include} (Debian: apt-get install python3-dev)"
        )
    path = registry.path("binding") + sysconfig.get_config_var("EXT_SUFFIX")
    _compile(
        ["-O2", "-shared", "-fPIC", f"-I{include}", "-o", path, BINDING_SOURCE],
        "binding.c",
    )
    loader = importlib.machinery.ExtensionFileLoader("_binding", path)
    spec = importlib.util.spec_from_file_location("_binding", path, loader=loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module
