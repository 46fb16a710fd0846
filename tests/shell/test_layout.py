"""The layout of ``python_port/``: the port program apart from the tools.

``pydist`` is the port program and its CLI, what a release ships
(``erlang/priv/python/pydist``); ``pydist_tools`` (the cluster harness, the
demo, the benchmarks) is not shipped, so nothing the BEAM starts may import
it: the CLI imports it inside the commands that need it. And no module
imports, at any depth, one that imports it back: an AST walk over every
import (function-level ones too), not a grep.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ROOT / "python_port"
PACKAGES = ("pydist", "pydist_tools")


def modules(packages: Iterable[Path]) -> dict[str, Path]:
    """Every module of ``packages`` by dotted name (a package by its own)."""
    found = {}
    for package in packages:
        for path in package.rglob("*.py"):
            parts = list(path.relative_to(package.parent).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def imports(name: str, source: str, is_package: bool, known: Iterable[str]) -> set[str]:
    """The modules among ``known`` that module ``name`` imports, wherever
    the import statement is (top level, function, ``try``)."""
    known = set(known)

    def nearest(dotted: str) -> str | None:
        while dotted and dotted not in known:
            dotted = dotted.rpartition(".")[0]
        return dotted or None

    package = name if is_package else name.rpartition(".")[0]
    found: set[str | None] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {nearest(alias.name) for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # ``from pkg import sub`` imports the submodule; ``from mod import name`` the module
            found |= {f"{base}.{a.name}" if f"{base}.{a.name}" in known else nearest(base)
                      for a in node.names}
    return {m for m in found if m is not None and m != name}


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """A circle of imports in ``graph`` (first module repeated at the end),
    or ``[]`` when there is none."""
    state: dict[str, str] = {}  # "open" while on the current path, then "done"
    path: list[str] = []

    def visit(module: str) -> list[str]:
        state[module] = "open"
        path.append(module)
        for dep in sorted(graph.get(module, ())):
            if state.get(dep) == "open":
                return [*path[path.index(dep):], dep]
            if dep not in state and (cycle := visit(dep)):
                return cycle
        path.pop()
        state[module] = "done"
        return []

    for module in sorted(graph):
        if module not in state and (cycle := visit(module)):
            return cycle
    return []


def import_graph() -> dict[str, set[str]]:
    found = modules(SOURCES / p for p in PACKAGES)
    return {name: imports(name, path.read_text(), path.name == "__init__.py", found)
            for name, path in found.items()}


@pytest.mark.parametrize(("name", "is_package", "source", "expected"), [
    ("p.a", False, "import p.b\nimport os", {"p.b"}),
    ("p.a", False, "from p.b import thing", {"p.b"}),
    ("p.a", False, "from p import b", {"p.b"}),
    ("p.a", False, "from p import thing", {"p"}),
    ("p.a", False, "from . import b\nfrom .q import c", {"p.b", "p.q"}),
    ("p.q", True, "from . import x\nfrom .. import b", {"p.b"}),
    ("p.a", False, "def f():\n    from p.b import thing\n", {"p.b"}),
    ("p.a", False, "'import p.b'\n# import p.q\n", set()),
])
def test_imports_checker(name: str, is_package: bool, source: str, expected: set[str]) -> None:
    assert imports(name, source, is_package, {"p", "p.a", "p.b", "p.q"}) == expected


@pytest.mark.parametrize(("graph", "expected"), [
    ({"a": {"b"}, "b": {"c"}, "c": set()}, []),
    ({"a": {"b", "c"}, "b": {"c"}, "c": set()}, []),
    ({"a": {"b"}, "b": {"c"}, "c": {"a"}}, ["a", "b", "c", "a"]),
    ({"a": {"b"}, "b": {"c"}, "c": {"b"}}, ["b", "c", "b"]),
])
def test_cycle_finder(graph: dict[str, set[str]], expected: list[str]) -> None:
    assert find_cycle(graph) == expected


def test_the_graph_covers_both_packages() -> None:
    graph = import_graph()
    assert {"pydist.cli", "pydist.launch", "pydist.shell.runtime", "pydist.core.node",
            "pydist_tools.cluster", "pydist_tools.cluster.netns", "pydist_tools.measure",
            "pydist_tools.bench_sequencing", "pydist_tools.demo"} <= set(graph)
    # the CLI's lazy imports count: they are what made the old circles
    assert "pydist_tools.demo" in graph["pydist.cli"]
    assert "pydist.launch" in graph["pydist_tools.cluster"]


def test_no_circle_of_imports() -> None:
    cycle = find_cycle(import_graph())
    assert cycle == [], "modules import each other in a circle: " + " -> ".join(cycle)


def test_pydist_imports_the_tools_only_inside_functions() -> None:
    for name, path in modules([SOURCES / "pydist"]).items():
        tree = ast.parse(path.read_text())
        top = [n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]
        at_top = imports(name, ast.unparse(ast.Module(body=top, type_ignores=[])),
                         path.name == "__init__.py", modules([SOURCES / "pydist_tools"]))
        assert at_top == set(), f"{name} imports {at_top} at import time"


_PROBE = """
import importlib, json, pkgutil, sys
import pydist
for info in pkgutil.walk_packages(pydist.__path__, "pydist."):
    if info.name != "pydist.__main__":  # it runs the CLI: below
        importlib.import_module(info.name)
sys.argv = ["pydist", "port", "--help"]  # the BEAM's way in, up to the point it runs
try:
    import pydist.__main__
except SystemExit:
    pass
print(json.dumps(sorted(m for m in sys.modules if m.partition(".")[0] == "pydist_tools")))
"""


def test_the_port_program_never_imports_the_tools() -> None:
    probe = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True,
                           timeout=60, check=True)
    assert json.loads(probe.stdout.splitlines()[-1]) == []


def test_a_release_ships_the_port_program_only() -> None:
    shipped = ROOT / "erlang" / "priv" / "python"
    assert sorted(p.name for p in shipped.iterdir()) == ["pydist"]
    assert (shipped / "pydist").resolve() == (SOURCES / "pydist").resolve()
    assert {p.name for p in (SOURCES / "pydist").iterdir()} & {
        "cluster", "demo.py", "bench.py", "pydist_tools"} == set()
