"""py_dist inside a rebar3 release: examples/release builds (carrying the
port program and its Python dependencies), two releases started by their
own start script on a Python that has nothing installed talk over py_dist,
and the start script's own tools (rpc, remote_console) reach them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from pydist import launch
from pydist_tools.cluster import HOST, Cluster

from .releases import Releases, bare_python, release_env, terminal

EXAMPLE = launch.repo_root() / "examples" / "release"


def build() -> Path:
    """``rebar3 release``; its post-release hook copies the Python
    dependencies of this interpreter into the release."""
    env = {**os.environ, "HOME": os.environ.get("HOME") or str(EXAMPLE),
           "PYDIST_PYTHON": sys.executable}
    subprocess.run(["rebar3", "release"], cwd=EXAMPLE, env=env, check=True,
                   capture_output=True, timeout=300)
    release = EXAMPLE / "_build" / "default" / "rel" / "hello"
    assert list(release.glob("lib/py_dist-*/priv/python_deps/zmq"))
    return release / "bin" / "hello"


def test_two_releases_talk_over_py_dist(cluster: Cluster, tmp_path: Path) -> None:
    script = build()
    assert cluster.cookie is not None
    python = bare_python(tmp_path)
    env = {**release_env(cluster.env), "COOKIE": cluster.cookie, "PYDIST_PYTHON": str(python),
           # relx's rpc, ping and remote_console ask the node with erl_call,
           # which speaks TCP distribution only; its nodetool escript takes
           # the release's -proto_dist
           "USE_NODETOOL": "1"}
    releases = Releases(tmp_path)
    try:
        for name in ("rel1", "rel2"):
            out = tmp_path / name  # where the start script writes vm.args, per instance
            out.mkdir()
            releases.start(name, [str(script), "foreground"],
                           {**env, "NODE_NAME": f"{name}@{HOST}",
                            "RELX_OUT_FILE_PATH": str(out)})
        observer = cluster.start("observer")
        for name in ("rel1", "rel2"):
            releases.up(observer, f"{name}@{HOST}")
            # the release's own distribution is py_dist's
            assert observer.eval(f"rpc:call('{name}@{HOST}', init, get_argument, "
                                 f"[proto_dist]).") == ("ok", [[b"py"]])
        greeting = observer.eval(
            f"rpc:call('rel1@{HOST}', rpc, call, ['rel2@{HOST}', hello_app, greet, [hi]]).")
        assert greeting == ("hello", f"rel2@{HOST}", "hi")

        tools = tmp_path / "tools"
        tools.mkdir()
        tool_env = {**env, "NODE_NAME": f"rel1@{HOST}", "RELX_OUT_FILE_PATH": str(tools)}
        rpc = subprocess.run([str(script), "rpc", "hello_app", "greet", "[rpc]."],
                             env=tool_env, capture_output=True, text=True, timeout=120)
        assert rpc.returncode == 0, rpc.stderr
        assert f"{{hello,'rel1@{HOST}',rpc}}" in rpc.stdout
        with terminal([str(script), "remote_console"], tool_env) as shell:
            assert shell.expect(f"(rel1@{HOST})1>".encode()), shell.seen
            shell.send("{answer, node(), 6 * 7}.")
            assert shell.expect(f"{{answer,'rel1@{HOST}',42}}".encode()), shell.seen
    finally:
        releases.stop()
