"""``pydist.vendor``: the dependencies it copies into a release are the
package's (pyproject.toml, the README's install line), and what it copies
is enough for a Python with nothing installed to run the port program."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from pydist import vendor

ROOT = Path(__file__).resolve().parents[2]


def test_requirements_are_the_packages() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert sorted(vendor.REQUIREMENTS) == sorted(project["dependencies"])


def test_readme_install_line_lists_every_requirement() -> None:
    readme = (ROOT / "README.md").read_text()
    line = re.search(r"pip install ((?:\"[^\"]+\"\s*)+)", readme)
    assert line is not None
    listed = re.findall(r"\"([^\"]+)\"", line.group(1))
    assert sorted(listed) == sorted(vendor.REQUIREMENTS)


@pytest.mark.parametrize(("version", "bounds", "ok"), [
    ("27.3.0", ">=25,<28", True), ("28.0", ">=25,<28", False), ("24.9.9", ">=25,<28", False),
    ("2.0.7", ">=2.0.7,<3", True), ("2.0.6", ">=2.0.7,<3", False), ("1.6.2", ">=1.6,<2", True),
    ("8.1.0rc1", ">=8.1,<9", True),
])
def test_bounds(version: str, bounds: str, ok: bool) -> None:
    assert vendor.satisfies(version, bounds) is ok


def test_vendored_dependencies_run_the_port_program_on_a_bare_python(tmp_path: Path) -> None:
    release = tmp_path / "rel"
    priv = release / "lib" / "py_dist-0.1.0" / "priv"
    priv.mkdir(parents=True)
    (priv / "python").symlink_to(ROOT / "python_port")  # the pydist package, as a release has it
    assert vendor.main([str(release)]) == 0
    deps = priv / "python_deps"
    assert (deps / vendor.MARKER).exists()
    assert vendor.main([str(release)]) == 0  # again: replaces its own copy
    # Python without site-packages, from a directory without an erlang/ of its own
    probe = subprocess.run(
        [sys.executable, "-S", "-c",
         "import zmq, nacl.public, erlang, click, pydist.cli; print(erlang.__file__)"],
        env={"PYTHONPATH": f"{priv / 'python'}:{deps}"}, cwd=tmp_path,
        capture_output=True, text=True)
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.startswith(str(deps))


def test_refuses_to_replace_a_directory_it_did_not_make(tmp_path: Path) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "keep").write_text("x")
    assert vendor.main(["--into", str(tmp_path / "mine")]) == 1
    assert (tmp_path / "mine" / "keep").exists()
