"""py_dist inside a rebar3 release: examples/release builds (carrying the
port program and its Python dependencies), two releases started by their
own start script on a Python that has nothing installed talk over py_dist,
and the start script's own tools (rpc, remote_console) reach them; with
epmd, and without an epmd daemon."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from pydist import launch
from pydist_tools.cluster import HOST, Cluster, free_port

from .releases import Releases, bare_python, release_env, terminal

EXAMPLE = launch.repo_root() / "examples" / "release"
NODES = (f"rel1@{HOST}", f"rel2@{HOST}")
NO_EPMD = ("-start_epmd", "false", "-epmd_module", "py_dist_epmd")


def build() -> Path:
    """``rebar3 release``; its hook and overlay copy the Python
    dependencies of this interpreter into the release."""
    env = {**os.environ, "HOME": os.environ.get("HOME") or str(EXAMPLE),
           "PYDIST_PYTHON": sys.executable}
    subprocess.run(["rebar3", "release"], cwd=EXAMPLE, env=env, check=True,
                   capture_output=True, timeout=300)
    release = EXAMPLE / "_build" / "default" / "rel" / "hello"
    assert list(release.glob("lib/py_dist-*/priv/python_deps/zmq"))
    return release / "bin" / "hello"


def check_releases(cluster: Cluster, tmp_path: Path, per_node: dict[str, dict[str, str]],
                   tools: dict[str, str], epmd_port: str | None = None,
                   observer_args: tuple[str, ...] = ()) -> None:
    """Start rel1 and rel2 by the release's script (``per_node``: extra
    environment of each), check them from an observer, then attach to rel1
    with the script's ``rpc`` and ``remote_console`` (``tools``: their extra
    environment)."""
    script = build()
    assert cluster.cookie is not None
    epmd = {"ERL_EPMD_PORT": epmd_port} if epmd_port is not None else {}
    env = {**release_env(cluster.env), **epmd, "COOKIE": cluster.cookie,
           "PYDIST_PYTHON": str(bare_python(tmp_path)),
           # relx's rpc, ping and remote_console ask the node with erl_call,
           # which speaks TCP distribution only; its nodetool escript takes
           # the release's -proto_dist
           "USE_NODETOOL": "1"}
    releases = Releases(tmp_path)
    try:
        for node in NODES:
            short = node.split("@")[0]
            out = tmp_path / short  # where the start script writes vm.args, per instance
            out.mkdir()
            releases.start(short, [str(script), "foreground"],
                           {**env, "NODE_NAME": node, "RELX_OUT_FILE_PATH": str(out),
                            **per_node.get(node, {})})
        observer = cluster.start("observer", *observer_args, env=epmd)
        releases.talk(observer, NODES, "hello_app")

        out = tmp_path / "tools"
        out.mkdir()
        tool_env = {**env, "NODE_NAME": NODES[0], "RELX_OUT_FILE_PATH": str(out),
                    **per_node.get(NODES[0], {}), **tools}
        rpc = subprocess.run([str(script), "rpc", "hello_app", "greet", "[rpc]."],
                             env=tool_env, capture_output=True, text=True, timeout=120)
        assert rpc.returncode == 0, rpc.stdout + rpc.stderr
        assert f"{{hello,'{NODES[0]}',rpc}}" in rpc.stdout
        with terminal([str(script), "remote_console"], tool_env) as shell:
            assert shell.expect(f"({NODES[0]})1>".encode()), shell.seen
            shell.send("{answer, node(), 6 * 7}.")
            assert shell.expect(f"{{answer,'{NODES[0]}',42}}".encode()), shell.seen
    finally:
        releases.stop()


def test_two_releases_talk_over_py_dist(cluster: Cluster, tmp_path: Path) -> None:
    check_releases(cluster, tmp_path, {}, {})


def test_releases_without_epmd(tmp_path: Path) -> None:
    """rel1 is the seed on a known port, rel2 names it (their vm.args
    replaced through VMARGS_PATH); relx hands its tools -proto_dist,
    -start_epmd and -epmd_module from vm.args but not -py_dist, so their
    seed comes through ERL_FLAGS (double quotes keep the atom's quotes)."""
    seed_port = free_port()
    with Cluster(tmp_path / "cluster", private_epmd=False) as cluster:
        assert cluster.cookie is not None
        common = (f"-setcookie {cluster.cookie}\n-proto_dist py\n"
                  "-start_epmd false\n-epmd_module py_dist_epmd\n")
        # in a vm.args file '#' outside double quotes starts a comment, and
        # '\' is no escape inside them: the seed's address is an IP tuple
        seed = f"[{{'{NODES[0]}', #{{endpoint => {{{{127,0,0,1}}, {seed_port}}}}}}}]"
        texts = {NODES[0]: f"-py_dist listen_port {seed_port}\n",
                 NODES[1]: f'-py_dist neighbours "{seed}"\n'}
        per_node = {}
        for node, text in texts.items():
            path = tmp_path / f"{node.split('@')[0]}.vm.args"
            path.write_text(f"-name {node}\n{common}{text}")
            per_node[node] = {"VMARGS_PATH": str(path)}
        tools = {"ERL_FLAGS": f'-py_dist neighbours "{seed}"'}
        seed_flag = f"[{{'{NODES[0]}', #{{endpoint => {{\"{HOST}\", {seed_port}}}}}}}]"
        check_releases(cluster, tmp_path, per_node, tools, str(free_port()),  # no epmd there
                       (*NO_EPMD, "-py_dist", "neighbours", seed_flag))
