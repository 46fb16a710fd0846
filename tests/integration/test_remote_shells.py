"""``erl -remsh`` with py_dist's flags attaches to a node of a cluster that
has no epmd daemon, naming the node as its one neighbour (the README's
"Remote shells and tools")."""

from __future__ import annotations

from pathlib import Path

from pydist.launch import erl_flags
from pydist_tools.cluster import HOST, Cluster, free_port

from .releases import terminal

NO_EPMD = ("-start_epmd", "false", "-epmd_module", "py_dist_epmd")


def test_erl_remsh_attaches_without_epmd(tmp_path: Path) -> None:
    port = free_port()
    with Cluster(tmp_path / "cluster", private_epmd=False) as cluster:
        env = {**cluster.env, "ERL_EPMD_PORT": str(free_port())}  # where no epmd is
        target = cluster.start("remsh_target", *NO_EPMD, "-py_dist", "listen_port", str(port),
                               env=env)
        assert target.eval("node().") == target.node
        seed = f"[{{'{target.node}', #{{endpoint => {{\"{HOST}\", {port}}}}}}}]"
        argv = ["erl", *erl_flags(), *NO_EPMD, "-py_dist", "neighbours", seed,
                "-name", f"shell@{HOST}", "-setcookie", cluster.cookie or "",
                "-hidden", "-remsh", target.node]
        with terminal(argv, env) as shell:
            assert shell.expect(f"({target.node})1>".encode()), shell.seen
            shell.send("{answer, node(), 6 * 7}.")
            assert shell.expect(f"{{answer,'{target.node}',42}}".encode()), shell.seen
