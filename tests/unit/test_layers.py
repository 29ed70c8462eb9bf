"""The package's layers, enforced on its import graph.

The graph is built with `ast` from every `import` / `from ... import` statement anywhere in a
module (inside functions and `if TYPE_CHECKING:` blocks too, since a lazy import only hides a
cycle), resolved to modules of `monitor`. It must have no cycle, between modules or between the
layers (the top-level folders), each layer imports only the layers below it, and `monitor/core/`
must stay pure: it imports only core modules
and no library that does IO, and calls no `open()` or path read/write method.
"""

from __future__ import annotations

import ast
import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "monitor"

#: The layers, top down: each imports only layers below it (README.md's Layout lists them so).
LAYERS = (
    "monitor.cli",
    "monitor.sandbox",
    "monitor.service",
    "monitor.config",
    "monitor.notify",
    "monitor.store",
    "monitor.logs",
    "monitor.core",
)

#: Modules (and their submodules) that do IO or run things: the core may import none of them.
IO_MODULES = (
    "aiohttp",
    "apprise",
    "apscheduler",
    "asyncio",
    "concurrent",
    "ftplib",
    "http",
    "importlib",  # importlib.resources reads files; import_module loads code by name
    "logging",  # a decision is returned to the caller, which logs it
    "mmap",
    "multiprocessing",
    "os",
    "pathlib",
    "requests",
    "select",
    "selectors",
    "shutil",
    "signal",
    "sigstore",  # its trust-root loaders read files and go to the network
    "smtplib",
    "socket",
    "socketserver",
    "sqlite3",
    "sqlite_utils",
    "ssl",
    "subprocess",
    "sys",
    "tempfile",
    "urllib.request",
)
#: Calls the core may not make: builtins that read or write, and `Path`'s file methods.
IO_CALLS = frozenset({"open", "input", "print", "__import__", "exec", "eval"})
IO_METHODS = frozenset({"read_text", "read_bytes", "write_text", "write_bytes", "open", "unlink"})


@dataclass
class Module:
    """One module of the package: what it imports and what IO it names."""

    name: str
    path: Path
    imports: dict[str, int] = field(default_factory=dict)
    """Modules of the package it imports -> line of the first such import."""
    external: dict[str, int] = field(default_factory=dict)
    """Other modules it imports (dotted, as written) -> line."""
    io_calls: list[tuple[str, int]] = field(default_factory=list)


def _module_name(path: Path, root: Path) -> str:
    parts = [root.name, *path.relative_to(root).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def build_graph(root: Path) -> dict[str, Module]:
    """Every module under the package directory `root`, with its imports resolved."""
    paths = {_module_name(p, root): p for p in sorted(root.rglob("*.py"))}
    graph: dict[str, Module] = {}
    for name, path in paths.items():
        module = Module(name, path)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    _add(module, paths, alias.name, node.lineno)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    target = ".".join([*base, node.module] if node.module else base)
                else:
                    target = node.module or ""
                for alias in node.names:
                    # `from pkg import mod` imports the submodule, `from mod import x` the module.
                    sub = f"{target}.{alias.name}"
                    _add(module, paths, sub if sub in paths else target, node.lineno)
            elif isinstance(node, ast.Call):
                func = node.func
                if isinstance(func, ast.Name) and func.id in IO_CALLS:
                    module.io_calls.append((f"{func.id}()", node.lineno))
                elif isinstance(func, ast.Attribute) and func.attr in IO_METHODS:
                    module.io_calls.append((f".{func.attr}()", node.lineno))
        graph[name] = module
    return graph


def _add(module: Module, paths: Mapping[str, Path], target: str, line: int) -> None:
    package = next(iter(paths)).split(".")[0]
    if target == package or target.startswith(package + "."):
        # A name from a module that does not exist (a typo) still points at its package.
        while target not in paths and "." in target:
            target = target.rpartition(".")[0]
        if target != module.name:
            module.imports.setdefault(target, line)
    else:
        module.external.setdefault(target, line)


def find_cycle(edges: Mapping[str, Iterable[str]]) -> list[str] | None:
    """One cycle of the directed graph `edges` as [a, b, ..., a], or None if it has none."""
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (found := visit(node)):
            return found
    return None


def layer_of(module: str) -> str:
    """The layer of a module: its top-level folder under `monitor/` (the package root itself,
    `monitor/__init__.py`, is its own)."""
    parts = module.split(".")
    return ".".join(parts[:2])


def _describe(graph: Mapping[str, Module], cycle: list[str]) -> str:
    steps = []
    for a, b in itertools.pairwise(cycle):
        line = graph[a].imports.get(b) if a in graph else None
        steps.append(f"{a} -> {b}" + (f" ({graph[a].path.name}:{line})" if line else ""))
    return "; ".join(steps)


@pytest.fixture(scope="module")
def graph() -> dict[str, Module]:
    return build_graph(ROOT)


def test_the_graph_is_the_packages(graph: dict[str, Module]) -> None:
    # Guards the checks below against a resolver that silently finds nothing.
    assert "monitor.core.merkle" in graph["monitor.core.entry_proof"].imports
    # `from pkg import mod`:
    assert "monitor.core.fields" in graph["monitor.core.watch.rules"].imports
    assert "monitor.config.settings" in graph["monitor.service.daemon"].imports
    assert "aiohttp" in graph["monitor.service.daemon"].external
    # Every module is in a layer (the root holds only __version__).
    assert {layer_of(m) for m in graph} == {*LAYERS, "monitor"}


def test_no_module_imports_itself_back(graph: dict[str, Module]) -> None:
    cycle = find_cycle({name: m.imports for name, m in graph.items()})
    assert cycle is None, f"import cycle: {_describe(graph, cycle)}"


def test_no_layer_imports_itself_back(graph: dict[str, Module]) -> None:
    edges: dict[str, set[str]] = {}
    why: dict[tuple[str, str], str] = {}
    for name, module in graph.items():
        for target in module.imports:
            a, b = layer_of(name), layer_of(target)
            if b not in (a, "monitor"):  # everyone may read the root's __version__
                edges.setdefault(a, set()).add(b)
                why.setdefault((a, b), f"{name} imports {target}")
    cycle = find_cycle(edges)
    assert cycle is None, "layer cycle: " + "; ".join(
        why[(a, b)] for a, b in itertools.pairwise(cycle)
    )


def test_layers_import_only_layers_below(graph: dict[str, Module]) -> None:
    bad = [
        f"{name} imports {target} ({module.path.name}:{line})"
        for name, module in graph.items()
        for target, line in module.imports.items()
        if layer_of(target) != "monitor"
        and LAYERS.index(layer_of(target)) < LAYERS.index(layer_of(name))
    ]
    assert not bad, f"an import goes up the layers {LAYERS}: " + "; ".join(bad)


def test_core_imports_only_core(graph: dict[str, Module]) -> None:
    bad = [
        f"{name} imports {target} ({module.path.name}:{line})"
        for name, module in graph.items()
        if layer_of(name) == "monitor.core"
        for target, line in module.imports.items()
        if layer_of(target) != "monitor.core"
    ]
    assert not bad, "the pure core imports another layer: " + "; ".join(bad)


def test_core_does_no_io(graph: dict[str, Module]) -> None:
    bad = [
        f"{name} imports {target} ({module.path.name}:{line})"
        for name, module in graph.items()
        if layer_of(name) == "monitor.core"
        for target, line in module.external.items()
        if any(target == io or target.startswith(io + ".") for io in IO_MODULES)
    ]
    bad += [
        f"{name} calls {call} ({module.path.name}:{line})"
        for name, module in graph.items()
        if layer_of(name) == "monitor.core"
        for call, line in module.io_calls
    ]
    assert not bad, "the pure core does IO; move that code out of monitor/core: " + "; ".join(bad)


# --- the checker itself, on small packages of its own --------------------------------------


def _package(tmp_path: Path, files: Mapping[str, str]) -> Path:
    root = tmp_path / "pkg"
    for rel, text in {"__init__.py": "", **files}.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


@pytest.mark.parametrize(
    ("files", "cycle"),
    [
        # Hidden in a function, as the lazy imports that hid config -> chain -> config were.
        (
            {"a.py": "from pkg.b import x\n", "b.py": "def f():\n    from pkg import a\n"},
            ["pkg.a", "pkg.b", "pkg.a"],
        ),
        # Hidden behind TYPE_CHECKING.
        (
            {
                "a.py": "import pkg.b\n",
                "b.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                "    from pkg.a import A\n",
            },
            ["pkg.a", "pkg.b", "pkg.a"],
        ),
        # Relative imports, through a subpackage.
        (
            {
                "sub/__init__.py": "",
                "sub/c.py": "from ..a import x\n",
                "a.py": "from .sub import c\n",
            },
            ["pkg.a", "pkg.sub.c", "pkg.a"],
        ),
        ({"a.py": "import pkg.b\n", "b.py": "import os\n"}, None),
    ],
)
def test_find_cycle_sees_every_kind_of_import(
    tmp_path: Path, files: dict[str, str], cycle: list[str] | None
) -> None:
    g = build_graph(_package(tmp_path, files))
    assert find_cycle({n: m.imports for n, m in g.items()}) == cycle


def test_io_in_a_module_is_seen(tmp_path: Path) -> None:
    g = build_graph(
        _package(
            tmp_path,
            {
                "m.py": "import os.path\n"
                "def f(p):\n"
                "    import sqlite3\n"
                "    return open(p).read() + p.read_text()\n"
            },
        )
    )
    assert set(g["pkg.m"].external) == {"os.path", "sqlite3"}
    assert {c for c, _ in g["pkg.m"].io_calls} == {"open()", ".read_text()"}
