"""Sphinx configuration of the ipcq documentation.

``tox -e docs`` builds it with ``sphinx-build -W --keep-going -b html docs
docs/_build/html`` against the installed package: autodoc imports the
compiled modules.  For a local build, build the extension in place
(``python3 setup.py build_ext --inplace``); this file then finds the
package next to the ``docs`` folder.  Only extensions bundled with Sphinx
are used, and none of them needs the network.

``sphinx-build -b doctest docs docs/_build/doctest`` runs the examples
written as ``doctest`` blocks; they create and remove small queues.
"""

import os
import re
import sys

try:
    import ipcq
except ImportError:
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import ipcq

project = "ipcq"
author = "the ipcq authors"
copyright = "the ipcq authors, BSD 3-Clause"
release = ipcq.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.doctest",
]

exclude_patterns = ["_build"]
highlight_language = "python3"

# The compiled classes have no Python source to read an order from, so
# methods come first, then properties, each alphabetically.
autodoc_member_order = "groupwise"
autodoc_docstring_signature = True
autodoc_typehints = "none"

html_theme = "alabaster"
html_static_path = ["_static"]
html_title = f"ipcq {release}"
html_theme_options = {
    "description": "Linux kernel message queues for Python",
    "fixed_sidebar": True,
    "show_relbars": True,
    "page_width": "1060px",
    "sidebar_width": "220px",
}
html_sidebars = {
    "**": ["about.html", "navigation.html", "relations.html", "searchbox.html"],
}

doctest_global_setup = """
import os
import queue
import warnings
from ipcq import posixmq, sysvmq
"""


# Cython's embedded signatures (the first docstring line of each compiled
# function) carry C types ("bool create=True"), list "self", and, for a
# class, may put the "*" of keyword-only arguments after the wrong
# parameter.  The class docstrings repeat their exact Python signature as
# a literal paragraph, ``Queue(...)``: that one is used and dropped from
# the text.
_C_TYPE = re.compile(
    r"\b(?:bint|bool|int|long|double|float|object|str|bytes|list|dict)"
    r"\s+(?=[A-Za-z_]\w*\s*(?:=|,|\)))"
)
_SELF = re.compile(r"^\(self\s*(?:,\s*|(?=\)))")


def _literal_signature(obj):
    doc = getattr(obj, "__doc__", None) or ""
    name = getattr(obj, "__name__", "")
    match = re.search(r"``" + re.escape(name) + r"(\(.*?\))``", doc, re.S)
    return " ".join(match.group(1).split()) if match else None


def _clean_signature(app, what, name, obj, options, signature, annotation):
    if signature is None:
        return None
    if what == "class":
        signature = _literal_signature(obj) or signature
    signature = _C_TYPE.sub("", signature)
    signature = _SELF.sub("(", signature)
    return signature, annotation


def _drop_literal_signature(app, what, name, obj, options, lines):
    if what != "class" or _literal_signature(obj) is None:
        return
    start = next(
        (
            i
            for i, line in enumerate(lines)
            if line.startswith("``" + obj.__name__ + "(")
        ),
        None,
    )
    if start is None:
        return
    end = start
    while end < len(lines) and lines[end].strip():
        end += 1
    del lines[start : end + 1]


def setup(app):
    app.connect("autodoc-process-signature", _clean_signature)
    app.connect("autodoc-process-docstring", _drop_literal_signature)
