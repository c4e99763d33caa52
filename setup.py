"""Build the Cython extensions; the metadata lives in pyproject.toml.

IPCQ_DEBUG=1 builds with line tracing, assertions and no optimisation;
IPCQ_SANITIZE=1 adds AddressSanitizer and UndefinedBehaviorSanitizer.
"""

import os

from Cython.Build import cythonize
from setuptools import Extension, setup

DEBUG = os.environ.get("IPCQ_DEBUG") == "1"
SANITIZE = os.environ.get("IPCQ_SANITIZE") == "1"

compile_args = ["-Wall", "-Wno-unused-function"]
link_args = []
macros = [("_GNU_SOURCE", None)]
directives = {
    "language_level": 3,
    "embedsignature": True,
    # Text signatures that inspect.signature() reads from builtins.
    "embedsignature.format": "clinic",
}

if DEBUG:
    compile_args += ["-O0", "-g3"]
    macros.append(("CYTHON_TRACE_NOGIL", "1"))
    directives["linetrace"] = True
if SANITIZE:
    sanitizers = "-fsanitize=address,undefined"
    compile_args += [sanitizers, "-fno-omit-frame-pointer", "-g"]
    link_args += [sanitizers]


def extension(name):
    return Extension(
        f"ipcq.{name}",
        [f"ipcq/{name}.pyx"],
        define_macros=macros,
        extra_compile_args=compile_args,
        extra_link_args=link_args,
        # glibc before 2.34 keeps mq_* in librt; later ones keep a stub.
        libraries=["rt"],
    )


setup(
    ext_modules=cythonize(
        [
            extension("_pickle"),
            extension("_common"),
            extension("_posix"),
            extension("_sysv"),
        ],
        compiler_directives=directives,
    ),
)
