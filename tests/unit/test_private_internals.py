"""No reliance on private internals: the monitor uses libraries (and its own modules) only
through their public names, so an upgrade cannot silently change what it does.

A name is private when it starts with one underscore (dunders are protocol, not private). The
check reads the source of every module of `monitor/`:

* no import of a private module or of a private name (``from monitor.core.certs import _x``,
  ``import sigstore._internal``);
* no attribute access ``obj._name`` where the module does not define ``_name`` itself (its own
  classes' attributes on another instance are the module's business);
* no dotted module path with a private part in a string (``importlib`` by name).

The one exception, and why, is `ALLOWED`.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from monitor.config import trust_roots

MONITOR = Path(__file__).resolve().parents[2] / "monitor"
PRIVATE = re.compile(r"_[A-Za-z0-9]\w*")
MODULE_PATH = re.compile(r"[A-Za-z_]\w*(\.\w+)+")

ALLOWED = {
    # sigstore-python's embedded trusted roots: its public loaders go to the network or write a
    # cache directory; reading the package data needs neither (trust_roots' docstring).
    ("config/trust_roots.py", trust_roots.EMBEDDED_ROOTS_PACKAGE),
}


def _private(name: str) -> bool:
    return PRIVATE.fullmatch(name) is not None


def _defined_names(tree: ast.AST) -> set[str]:
    """Names the module itself defines: functions, classes, assigned names and attributes."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return names


def private_uses(source: str) -> list[tuple[int, str]]:
    """(line, what) for every use of another module's or a library's private name."""
    tree = ast.parse(source)
    defined = _defined_names(tree)
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if any(_private(part) for part in module.split(".")):
                found.append((node.lineno, module))
            found += [(node.lineno, f"{module}.{a.name}") for a in node.names if _private(a.name)]
        elif isinstance(node, ast.Import):
            found += [
                (node.lineno, a.name)
                for a in node.names
                if any(_private(part) for part in a.name.split("."))
            ]
        elif isinstance(node, ast.Attribute) and _private(node.attr):
            own = isinstance(node.value, ast.Name) and node.value.id in {"self", "cls"}
            if not own and node.attr not in defined:
                found.append((node.lineno, ast.unparse(node)))
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and MODULE_PATH.fullmatch(node.value)
            and any(_private(part) for part in node.value.split("."))
        ):
            found.append((node.lineno, node.value))
    return found


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from monitor.core.certs import _tbs_parts\n", ["monitor.core.certs._tbs_parts"]),
        ("import sigstore._internal.merkle\n", ["sigstore._internal.merkle"]),
        ("from sigstore._internal import merkle\n", ["sigstore._internal"]),
        ("x = scheduler._executors\n", ["scheduler._executors"]),
        ("p = re._parser.parse('a')\n", ["re._parser"]),
        ("f = files('sigstore._store')\n", ["sigstore._store"]),
        # Public names, dunders, and a module's own private attributes are fine.
        ("from monitor.core.certs import tbs_parts\n", []),
        ("x = obj.__class__\n", []),
        ("class A:\n    def f(self, o):\n        self._x = 1\n        return o._x\n", []),
        ("s = 'monitor.core.certs'\n", []),
    ],
)
def test_private_uses_table(source: str, expected: list[str]) -> None:
    assert [what for _, what in private_uses(source)] == expected


def test_monitor_uses_no_private_internals() -> None:
    found = []
    for path in sorted(MONITOR.rglob("*.py")):
        relative = path.relative_to(MONITOR).as_posix()
        for line, what in private_uses(path.read_text(encoding="utf-8")):
            if (relative, what) not in ALLOWED:
                found.append(f"monitor/{relative}:{line}: {what}")
    assert found == [], "private internals used:\n" + "\n".join(found)


def test_the_allowed_exception_is_still_needed() -> None:
    """An exception nobody uses any more is removed, not kept 'just in case'."""
    for relative, what in ALLOWED:
        uses = private_uses((MONITOR / relative).read_text(encoding="utf-8"))
        assert what in {w for _, w in uses}, f"{relative} no longer uses {what}"
