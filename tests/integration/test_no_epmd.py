"""No epmd daemon anywhere: nodes find each other through the overlay."""

from __future__ import annotations

import socket
from pathlib import Path

from pydist.cluster import HOST, Cluster, free_port, wait_routes


def test_a_cluster_from_one_seed_with_no_epmd(tmp_path: Path) -> None:
    epmd_port = free_port()  # where an epmd would be: nothing may listen there
    with Cluster(tmp_path / "cluster", private_epmd=False) as cluster:
        env = {"ERL_EPMD_PORT": str(epmd_port)}
        ports = {name: free_port() for name in ("a", "b", "c")}

        def start(name: str, *args: str):  # type: ignore[no-untyped-def]
            return cluster.start(name, "-start_epmd", "false", "-epmd_module", "py_dist_epmd",
                                 "-py_dist", "listen_port", str(ports[name]), *args, env=env)

        seed = f"[{{'a@{HOST}', #{{endpoint => {{\"{HOST}\", {ports['a']}}}}}}}]"
        a = start("a")
        b = start("b", "-py_dist", "neighbours", seed)
        c = start("c", "-py_dist", "neighbours", seed)
        with socket.socket() as s:
            assert s.connect_ex((HOST, epmd_port)) != 0  # no epmd
        for node in (a, b, c):
            wait_routes(node, 2)
        # b and c share no link: found through the link state, not an epmd
        assert b.eval(f"net_adm:ping('{c.node}').") == "pong"
        assert b.eval(f"rpc:call('{c.node}', erlang, node, []).") == c.node
        assert c.eval("yes = global:register_name(pd_seeded, self()), ok.") == "ok"
        assert b.eval("global:sync(), node(global:whereis_name(pd_seeded)).") == c.node
        # names as epmd would list them (strings come back as bytes)
        assert sorted(b.eval(f"element(2, py_dist_epmd:names(\"{HOST}\")).")) == [
            (b"a", ports["a"]), (b"b", ports["b"]), (b"c", ports["c"])]
        assert b.eval("net_adm:ping('nobody@127.0.0.1').") == "pang"


def test_a_node_restarted_under_its_name_rejoins(tmp_path: Path) -> None:
    """c dies (kill -9) and comes back with the same name and port: the
    others see nodedown, then reach it again through the seed."""
    epmd_port = free_port()
    with Cluster(tmp_path / "cluster", private_epmd=False) as cluster:
        env = {"ERL_EPMD_PORT": str(epmd_port)}
        ports = {name: free_port() for name in ("a", "b", "c")}
        seed = f"[{{'a@{HOST}', #{{endpoint => {{\"{HOST}\", {ports['a']}}}}}}}]"

        def start(name: str, *args: str):  # type: ignore[no-untyped-def]
            return cluster.start(name, "-start_epmd", "false", "-epmd_module", "py_dist_epmd",
                                 "-py_dist", "listen_port", str(ports[name]), *args, env=env)

        start("a")
        b = start("b", "-py_dist", "neighbours", seed)
        c = start("c", "-py_dist", "neighbours", seed)
        wait_routes(b, 2)
        assert b.eval(f"net_adm:ping('{c.node}').") == "pong"
        old = b.eval(f"rpc:call('{c.node}', os, getpid, []).")
        c.kill9()
        c.stop()  # and its port program, by pid, should it outlive the BEAM
        cluster.nodes.remove(c)
        assert b.eval(f"""
            W = fun L(0) -> still_up;
                    L(K) -> case lists:member('{c.node}', nodes()) of
                                true -> timer:sleep(50), L(K - 1);
                                false -> gone
                            end end,
            W(100).""") == "gone"
        c = start("c", "-py_dist", "neighbours", seed)
        wait_routes(c, 2)
        assert b.eval(f"""
            P = fun L(0) -> pang;
                    L(K) -> case net_adm:ping('{c.node}') of
                                pong -> pong;
                                pang -> timer:sleep(100), L(K - 1)
                            end end,
            P(50).""") == "pong"
        assert b.eval(f"rpc:call('{c.node}', os, getpid, []).") != old
