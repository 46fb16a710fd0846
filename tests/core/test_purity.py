"""The core stays sans-IO: no module under pydist/core imports I/O machinery.

An AST walk, not a grep: comments and docstrings that mention ``socket``
do not count, ``import os.path`` and ``from time import monotonic`` do.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[2] / "python_port" / "pydist" / "core"
FORBIDDEN = frozenset({
    "socket", "zmq", "os", "time", "threading", "asyncio", "select", "subprocess",
    "signal", "fcntl",
})
CORE_FILES = sorted(CORE.glob("*.py"))


def forbidden_imports(source: str) -> list[str]:
    """The forbidden top-level modules ``source`` imports, in order of appearance."""
    found = []
    for node in ast.walk(ast.parse(source)):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
              and node.func.id == "__import__" and node.args
              and isinstance(node.args[0], ast.Constant)):
            names = [str(node.args[0].value)]
        found += [n for n in names if n.split(".")[0] in FORBIDDEN]
    return found


@pytest.mark.parametrize(("source", "expected"), [
    ("import os", ["os"]),
    ("import os.path", ["os.path"]),
    ("import json, socket as s", ["socket"]),
    ("from time import monotonic", ["time"]),
    ("from zmq.asyncio import Context", ["zmq.asyncio"]),
    ("def f():\n    import select\n", ["select"]),
    ("try:\n    import fcntl\nexcept ImportError:\n    pass\n", ["fcntl"]),
    ("m = __import__('subprocess')", ["subprocess"]),
    ("import struct, hashlib\nfrom . import frame\n'import os'\n# import time\n", []),
    ("import timeit, osmosis, signals", []),
])
def test_checker(source: str, expected: list[str]) -> None:
    assert forbidden_imports(source) == expected


def test_core_files_are_found() -> None:
    names = {p.name for p in CORE_FILES}
    assert {"__init__.py", "wire.py", "etf.py", "port_codec.py", "frame.py",
            "liveness.py", "config.py", "node.py"} <= names


@pytest.mark.parametrize("path", CORE_FILES, ids=[p.name for p in CORE_FILES])
def test_core_module_does_no_io(path: Path) -> None:
    assert forbidden_imports(path.read_text()) == [], f"{path.name} imports I/O machinery"
