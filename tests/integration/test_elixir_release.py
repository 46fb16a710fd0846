"""py_dist in an Elixir release: examples/elixir (a mix project depending on
py_dist by path) builds with ``mix release``, carrying the port program and
its Python dependencies; two of its nodes, started by the release's own
script on a Python that has nothing installed, talk over py_dist, and the
script's ``rpc`` and ``remote`` attach to them; with epmd, and without an
epmd daemon (vm.args as the README and rel/vm.args.eex describe)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pydist import launch
from pydist_tools.cluster import HOST, Cluster, free_port

from .releases import Releases, bare_python, release_env, terminal

EXAMPLE = launch.repo_root() / "examples" / "elixir"
NODES = (f"ex1@{HOST}", f"ex2@{HOST}")

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


def check_pair(cluster: Cluster, tmp_path: Path, vm_args: dict[str, dict[str, str]],
               epmd_port: str | None = None, observer_args: tuple[str, ...] = ()) -> None:
    """Start ex1 and ex2 by the release's script (``vm_args``: extra
    environment per node), check them from an observer, then attach to ex1
    with the script's own ``rpc`` and ``remote``."""
    script = build(tmp_path)
    assert cluster.cookie is not None
    epmd = {"ERL_EPMD_PORT": epmd_port} if epmd_port is not None else {}
    env = {**release_env(cluster.env), **epmd, "RELEASE_COOKIE": cluster.cookie,
           "RELEASE_DISTRIBUTION": "name", "PYDIST_PYTHON": str(bare_python(tmp_path))}
    releases = Releases(tmp_path)
    try:
        for node in NODES:
            short = node.split("@")[0]
            releases.start(short, [str(script), "start"],
                           {**env, **vm_args.get(node, {}), "RELEASE_NODE": node,
                            "RELEASE_TMP": str(tmp_path / short)})
        observer = cluster.start("observer", *observer_args, env=epmd)
        releases.talk(observer, NODES, "'Elixir.HelloEx'")

        tool_env = {**env, **vm_args.get(NODES[0], {}), "RELEASE_NODE": NODES[0]}
        rpc = subprocess.run(
            [str(script), "rpc", "IO.inspect(HelloEx.greet(:rpc))"],
            env=tool_env, capture_output=True, text=True, timeout=120)
        assert rpc.returncode == 0, rpc.stderr
        assert f'{{:hello, :"{NODES[0]}", :rpc}}' in rpc.stdout
        with terminal([str(script), "remote"], tool_env) as shell:
            assert shell.expect(b"iex("), shell.seen
            shell.send('IO.puts("answer #{inspect({node(), 6 * 7})}")')
            assert shell.expect(f'answer {{:"{NODES[0]}", 42}}'.encode()), shell.seen
    finally:
        releases.stop()


def test_elixir_release_nodes_talk_over_py_dist(cluster: Cluster, tmp_path: Path) -> None:
    check_pair(cluster, tmp_path, {})


def test_elixir_release_without_epmd(tmp_path: Path) -> None:
    """The epmd-less variant: ex1 is the seed on a known port, ex2 and the
    remote shells (remote.vm.args) name it as their one neighbour; nothing
    listens on the epmd port."""
    seed_port = free_port()
    common = "-proto_dist py\n-start_epmd false\n-epmd_module py_dist_epmd\n"
    # in a vm.args file '#' outside double quotes starts a comment, and '\'
    # is no escape inside them: the seed's address is an IP tuple
    seed = f"[{{'{NODES[0]}', #{{endpoint => {{{{127,0,0,1}}, {seed_port}}}}}}}]"
    files = {"seed": common + f"-py_dist listen_port {seed_port}\n",
             "seeded": common + f'-py_dist neighbours "{seed}"\n'}
    paths = {}
    for kind, text in files.items():
        paths[kind] = tmp_path / f"{kind}.vm.args"
        paths[kind].write_text(text)
    seeded = {"RELEASE_VM_ARGS": str(paths["seeded"]),
              "RELEASE_REMOTE_VM_ARGS": str(paths["seeded"])}
    vm_args = {NODES[0]: {"RELEASE_VM_ARGS": str(paths["seed"]),
                          "RELEASE_REMOTE_VM_ARGS": str(paths["seeded"])},
               NODES[1]: seeded}
    with Cluster(tmp_path / "cluster", private_epmd=False) as cluster:
        seed_flag = f"[{{'{NODES[0]}', #{{endpoint => {{\"{HOST}\", {seed_port}}}}}}}]"
        check_pair(cluster, tmp_path, vm_args, str(free_port()),  # where no epmd is
                   ("-start_epmd", "false", "-epmd_module", "py_dist_epmd",
                    "-py_dist", "neighbours", seed_flag))
