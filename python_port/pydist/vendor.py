"""Put the port program's Python dependencies into a release, so that the
machine it runs on needs only ``python3``.

The ``pydist`` package itself travels in the ``py_dist`` application's
``priv/python``; its dependencies (pyzmq, PyNaCl and what they need,
erlang-py, click) are copied here into ``priv/python_deps`` beside it,
which py_dist puts on the port program's ``PYTHONPATH`` too.

What is copied is what the interpreter running this module has installed,
files as they are: no network, no build, and the compiled parts (pyzmq's
libzmq, PyNaCl's libsodium, cffi) are those of this platform and this
Python's minor version.  Run it with the Python the nodes will use, or one
of the same version on the same OS and architecture.

Standard library only, and nothing of ``pydist``: it runs from a release's
own copy as a script (``python3 REL/lib/py_dist-*/priv/python/pydist/vendor.py
REL``) or a module (``python3 -m pydist.vendor REL``), so the build machine
needs the dependencies installed, not ``pydist``.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
from importlib import metadata
from pathlib import Path

# The port program's dependencies, as in pyproject.toml (a test checks that
# the two lists are the same).
REQUIREMENTS = (
    "pyzmq>=25,<28",
    "click>=8.1,<9",
    "erlang-py>=2.0.7,<3",
    "pynacl>=1.6,<2",
)

# Written into the target: what was copied, and the proof that a directory
# is ours to replace on the next run.
MARKER = "PYDIST_VENDOR"

_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
_BOUND = re.compile(r"^\s*(>=|<=|==|!=|<|>)\s*([0-9][0-9.]*)")


class VendorError(Exception):
    pass


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def release_target(release: Path) -> Path:
    """``priv/python_deps`` of the py_dist application inside a built
    release (rebar3's or mix's ``lib/py_dist-VSN``)."""
    apps = sorted(release.glob("lib/py_dist-*"))
    if len(apps) != 1:
        raise VendorError(f"{release} is no release with one py_dist application "
                          f"(found {[a.name for a in apps]} under lib/)")
    return apps[0] / "priv" / "python_deps"


def version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text.split("+")[0])[:4])


def satisfies(version: str, bounds: str) -> bool:
    """Whether ``version`` is within bounds such as ``>=2.0.7,<3`` (release
    numbers only: enough for the bounds this package states)."""
    have = version_tuple(version)
    for bound in filter(None, (b.strip() for b in bounds.split(","))):
        match = _BOUND.match(bound)
        if match is None:
            raise VendorError(f"cannot read the bound {bound!r}")
        op, want_text = match.groups()
        want = version_tuple(want_text)
        width = max(len(have), len(want))
        a = have + (0,) * (width - len(have))
        b = want + (0,) * (width - len(want))
        ok = {">=": a >= b, "<=": a <= b, "==": a == b, "!=": a != b,
              "<": a < b, ">": a > b}[op]
        if not ok:
            return False
    return True


def closure(requirements: tuple[str, ...] = REQUIREMENTS) -> list[metadata.Distribution]:
    """The installed distributions of the requirements and of everything
    they require.  A requirement of a dependency that is not installed was
    left out by its environment marker (pyzmq's cffi on PyPy) or is an
    extra: not needed here either.  One that is installed is taken even if
    its marker would exclude it, which costs only space."""
    found: dict[str, metadata.Distribution] = {}
    for requirement in requirements:
        name = _required_name(requirement)
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            raise VendorError(f"{name} is not installed for {sys.executable} "
                              f"(pip install \"{requirement}\")") from None
        bounds = requirement[len(name):]
        if not satisfies(dist.version, bounds):
            raise VendorError(f"{name} {dist.version} is installed; py_dist needs {requirement}")
        _add(dist, found)
    return list(found.values())


def _required_name(requirement: str) -> str:
    match = _NAME.match(requirement)
    if match is None:
        raise VendorError(f"cannot read the requirement {requirement!r}")
    return match.group(1)


def _add(dist: metadata.Distribution, found: dict[str, metadata.Distribution]) -> None:
    key = canonical(dist.metadata["Name"])
    if key in found:
        return
    found[key] = dist
    for requirement in dist.requires or []:
        _, _, marker = requirement.partition(";")
        if "extra" in marker:
            continue
        try:
            _add(metadata.distribution(_required_name(requirement)), found)
        except metadata.PackageNotFoundError:
            continue


def vendor(target: Path) -> list[str]:
    """Copy the dependencies into ``target`` (replacing what an earlier run
    put there); returns ``name==version`` of each distribution copied."""
    dists = closure()
    if target.exists():
        if any(target.iterdir()) and not (target / MARKER).exists():
            raise VendorError(f"{target} exists and was not made by pydist.vendor: "
                              "not replacing it")
        shutil.rmtree(target)
    target.mkdir(parents=True)
    copied = []
    for dist in dists:
        files = dist.files
        if files is None:
            raise VendorError(f"{dist.metadata['Name']} lists no files (installed without "
                              "a RECORD, e.g. by the OS): install it with pip")
        for file in files:
            parts = Path(str(file)).parts
            # scripts land outside site-packages (../../bin); bytecode is
            # written again where the release runs
            if ".." in parts or "__pycache__" in parts:
                continue
            source = Path(str(file.locate()))
            if not source.is_file():
                continue
            dest = target.joinpath(*parts)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest)
        copied.append(f"{dist.metadata['Name']}=={dist.version}")
    (target / MARKER).write_text(
        f"# copied by pydist.vendor from {sys.executable} "
        f"(Python {sys.version_info.major}.{sys.version_info.minor})\n"
        + "".join(f"{line}\n" for line in copied))
    return copied


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pydist.vendor",
        description="Copy py_dist's Python dependencies, as installed for this Python, "
                    "into a release (its lib/py_dist-VSN/priv/python_deps).")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("release", type=Path, nargs="?", help="a built release's directory")
    where.add_argument("--into", type=Path,
                       help="copy into this directory instead (then put it on PYTHONPATH)")
    args = parser.parse_args(argv)
    try:
        target = args.into if args.into is not None else release_target(args.release)
        copied = vendor(target)
    except VendorError as e:
        print(f"pydist.vendor: {e}", file=sys.stderr)
        return 1
    print(f"pydist.vendor: {', '.join(copied)} -> {target}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
