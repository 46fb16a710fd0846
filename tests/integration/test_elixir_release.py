"""py_dist in an Elixir release: examples/elixir (a mix project depending on
py_dist by path) builds with ``mix release``, carrying the port program and
its Python dependencies; two of its nodes, started by the release's own
script on a Python that has nothing installed, talk over py_dist, and the
script's ``rpc`` and ``remote`` attach to them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pydist import launch
from pydist_tools.cluster import HOST, Cluster

from .releases import Releases, bare_python, release_env, terminal

EXAMPLE = launch.repo_root() / "examples" / "elixir"

pytestmark = pytest.mark.skipif(shutil.which("mix") is None,
                                reason="mix is not installed: run scripts/setup")


def build(tmp_path: Path) -> Path:
    """``mix release`` (idempotent: --overwrite); Hex is never asked, and
    Mix's home is a fresh directory, so nothing of the user's is used."""
    home = tmp_path / "mix-home"
    home.mkdir()
    env = {**os.environ, "MIX_ENV": "prod", "HEX_OFFLINE": "1", "MIX_HOME": str(home),
           "HOME": os.environ.get("HOME") or str(home),
           # the release step copies this interpreter's Python dependencies
           "PYDIST_PYTHON": sys.executable}
    done = subprocess.run(["mix", "release", "--overwrite"], cwd=EXAMPLE, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    release = EXAMPLE / "_build" / "prod" / "rel" / "hello_ex"
    assert list(release.glob("lib/py_dist-*/priv/python_deps/zmq"))
    return release / "bin" / "hello_ex"


def test_elixir_release_nodes_talk_over_py_dist(cluster: Cluster, tmp_path: Path) -> None:
    script = build(tmp_path)
    assert cluster.cookie is not None
    python = bare_python(tmp_path)
    env = {**release_env(cluster.env), "RELEASE_COOKIE": cluster.cookie,
           "RELEASE_DISTRIBUTION": "name", "PYDIST_PYTHON": str(python)}
    nodes = [f"ex1@{HOST}", f"ex2@{HOST}"]
    releases = Releases(tmp_path)
    try:
        for node in nodes:
            releases.start(node.split("@")[0], [str(script), "start"],
                           {**env, "RELEASE_NODE": node,
                            "RELEASE_TMP": str(tmp_path / node.split("@")[0])})
        observer = cluster.start("observer")
        for node in nodes:
            releases.up(observer, node)
            assert observer.eval(f"rpc:call('{node}', init, get_argument, "
                                 f"[proto_dist]).") == ("ok", [[b"py"]])
        for here, there in (nodes, reversed(nodes)):
            greeting = observer.eval(
                f"rpc:call('{here}', rpc, call, ['{there}', 'Elixir.HelloEx', greet, [hi]]).")
            assert greeting == ("hello", there, "hi")
            assert there in observer.eval(f"rpc:call('{here}', erlang, nodes, []).")

        tool_env = {**env, "RELEASE_NODE": nodes[0]}
        rpc = subprocess.run(
            [str(script), "rpc", 'IO.inspect(HelloEx.greet(:rpc))'],
            env=tool_env, capture_output=True, text=True, timeout=120)
        assert rpc.returncode == 0, rpc.stderr
        assert f'{{:hello, :"{nodes[0]}", :rpc}}' in rpc.stdout
        with terminal([str(script), "remote"], tool_env) as shell:
            assert shell.expect(b"iex("), shell.seen
            shell.send('IO.puts("answer #{inspect({node(), 6 * 7})}")')
            assert shell.expect(f'answer {{:"{nodes[0]}", 42}}'.encode()), shell.seen
    finally:
        releases.stop()
