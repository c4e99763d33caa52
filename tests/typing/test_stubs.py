"""The hand-written stubs say what the compiled modules really have.

Each ``.pyi`` is read with :mod:`ast` and compared with the imported
module: the same public names, the same members on each class, and, for
every function whose signature Python can see, the same parameters with
the same defaults.  The stubs must also ship inside the package, beside
``py.typed``.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import os
import types
from typing import Any

import pytest

import ipcq

PACKAGE = os.path.dirname(os.path.abspath(ipcq.__file__))
STUBS = ["_common", "_posix", "_sysv", "serializers"]


def stub_of(module: str) -> ast.Module:
    with open(os.path.join(PACKAGE, module + ".pyi"), encoding="utf-8") as f:
        return ast.parse(f.read())


def public(name: str) -> bool:
    return not name.startswith("_")


def top_level_names(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef)):
            names.add(node.name)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.ImportFrom):
            # Only "import X as X" re-exports a name from a stub.
            names.update(a.asname for a in node.names if a.asname == a.name)
    return {name for name in names if public(name)}


def runtime_names(module: types.ModuleType) -> set[str]:
    """The module's API: __all__, or what it defines itself."""
    declared = getattr(module, "__all__", None)
    if declared is not None:
        return set(declared)
    names = set()
    for name, value in vars(module).items():
        if not public(name) or isinstance(value, types.ModuleType):
            continue
        if getattr(value, "__module__", module.__name__) == module.__name__:
            names.add(name)
    return names


def classes(tree: ast.Module) -> list[ast.ClassDef]:
    return [node for node in tree.body if isinstance(node, ast.ClassDef)]


class Members:
    """What a stub class lists: functions, class constants, attributes."""

    def __init__(self, node: ast.ClassDef) -> None:
        self.functions: dict[str, ast.FunctionDef] = {}
        self.constants: set[str] = set()
        self.attributes: set[str] = set()  # per instance, set in __init__
        for item in node.body:
            if isinstance(item, ast.FunctionDef):
                # A property's setter repeats its name: keep the getter.
                self.functions.setdefault(item.name, item)
            elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                if ast.unparse(item.annotation).startswith("ClassVar"):
                    self.constants.add(item.target.id)
                else:
                    self.attributes.add(item.target.id)

    def on_the_class(self) -> set[str]:
        return set(self.functions) | self.constants


def is_property(func: ast.FunctionDef) -> bool:
    return any(
        isinstance(d, ast.Name) and d.id == "property" for d in func.decorator_list
    )


def own_members(cls: type) -> set[str]:
    """Public methods, properties and constants the class itself defines."""
    return {
        name
        for name in vars(cls)
        if public(name) or name in ("__init__", "__new__", "__enter__", "__exit__")
    }


def stub_parameters(func: ast.FunctionDef) -> list[tuple[str, str, Any]]:
    args = func.args
    result: list[tuple[str, str, Any]] = []
    positional = args.posonlyargs + args.args
    defaults: list[Any] = [inspect.Parameter.empty] * (
        len(positional) - len(args.defaults)
    ) + [ast.literal_eval(d) for d in args.defaults]
    for arg, default in zip(positional, defaults):
        kind = "POSITIONAL_ONLY" if arg in args.posonlyargs else "POSITIONAL_OR_KEYWORD"
        result.append((arg.arg, kind, default))
    if args.vararg is not None:
        result.append((args.vararg.arg, "VAR_POSITIONAL", inspect.Parameter.empty))
    for arg, kw_default in zip(args.kwonlyargs, args.kw_defaults):
        value = (
            inspect.Parameter.empty
            if kw_default is None
            else ast.literal_eval(kw_default)
        )
        result.append((arg.arg, "KEYWORD_ONLY", value))
    if args.kwarg is not None:
        result.append((args.kwarg.arg, "VAR_KEYWORD", inspect.Parameter.empty))
    return result


def runtime_parameters(func: Any) -> list[tuple[str, str, Any]] | None:
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):
        return None
    params = list(signature.parameters.values())
    kinds = [p.kind for p in params]
    if (
        inspect.Parameter.VAR_POSITIONAL in kinds
        and inspect.Parameter.VAR_KEYWORD in kinds
    ):
        # (*args, **kwargs): Cython does not expose this signature.
        return None
    result = [(p.name, p.kind.name, p.default) for p in params]
    if result and result[0][:2] == ("self", "POSITIONAL_ONLY"):
        # A method of a compiled class takes self positionally only, as
        # every builtin method does; stubs spell self the ordinary way.
        result[0] = ("self", "POSITIONAL_OR_KEYWORD", result[0][2])
    return result


@pytest.mark.parametrize("name", STUBS)
def test_stub_ships_with_the_package(name: str) -> None:
    assert os.path.isfile(os.path.join(PACKAGE, name + ".pyi"))
    assert os.path.isfile(os.path.join(PACKAGE, "py.typed"))


@pytest.mark.parametrize("name", STUBS)
def test_stub_has_the_public_names_of_the_module(name: str) -> None:
    module = importlib.import_module(f"ipcq.{name}")
    stub = top_level_names(stub_of(name))
    missing_at_runtime = {n for n in stub if not hasattr(module, n)}
    assert not missing_at_runtime, "in the stub only"
    assert runtime_names(module) - stub == set(), "missing from the stub"


@pytest.mark.parametrize("name", STUBS)
def test_stub_classes_have_the_members_of_the_classes(name: str) -> None:
    module = importlib.import_module(f"ipcq.{name}")
    for node in classes(stub_of(name)):
        if not public(node.name):
            continue
        cls = getattr(module, node.name)
        listed = Members(node).on_the_class()
        for member in listed:
            assert hasattr(cls, member), f"{node.name}.{member} is in the stub only"
        missing = own_members(cls) - listed - {"__new__"}
        assert not missing, f"{node.name} lacks {sorted(missing)} in the stub"


@pytest.mark.parametrize("name", STUBS)
def test_stub_signatures_match(name: str) -> None:
    module = importlib.import_module(f"ipcq.{name}")
    tree = stub_of(name)
    checked = 0
    pairs: list[tuple[str, ast.FunctionDef, Any]] = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and public(node.name):
            pairs.append((node.name, node, getattr(module, node.name)))
        elif isinstance(node, ast.ClassDef) and public(node.name):
            cls = getattr(module, node.name)
            for member, func in Members(node).functions.items():
                if not is_property(func):
                    runtime = inspect.getattr_static(cls, member)
                    pairs.append((f"{node.name}.{member}", func, runtime))
    for label, func, runtime in pairs:
        if isinstance(runtime, (staticmethod, classmethod)):
            runtime = runtime.__func__
        expected = runtime_parameters(runtime)
        if expected is None:
            continue
        assert stub_parameters(func) == expected, label
        checked += 1
    # The compiled functions expose their signatures: most were compared.
    assert checked >= len(pairs) // 2 > 0 or not pairs
