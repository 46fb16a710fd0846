"""No epmd daemon anywhere: nodes find each other through the overlay."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pydist_tools.cluster import HOST, Cluster, ErlNode, free_port, wait_routes

from .helpers import ping_until_pong


class Seeded:
    """Nodes on ``py_dist_epmd``, nothing on the epmd port they are told
    of, each on a port of its own; node ``a`` is the seed of the others."""

    def __init__(self, cluster: Cluster, epmd_port: int,
                 flags: tuple[str, ...] = ("-start_epmd", "false",
                                           "-epmd_module", "py_dist_epmd")) -> None:
        self.cluster = cluster
        self.flags = flags
        self.env = {"ERL_EPMD_PORT": str(epmd_port)}
        self.seed_port = free_port()

    def start(self, name: str, port: int | None = None, *extra: str) -> ErlNode:
        seed = f"[{{'a@{HOST}', #{{endpoint => {{\"{HOST}\", {self.seed_port}}}}}}}]"
        if name == "a":
            args = ["-py_dist", "listen_port", str(self.seed_port)]
        else:
            args = ["-py_dist", "listen_port", str(port or free_port()),
                    "-py_dist", "neighbours", seed]
        return self.cluster.start(name, *self.flags, *args, *extra, env=self.env)


@contextmanager
def seeded(tmp_path: Path) -> Iterator[tuple[Seeded, int]]:
    epmd_port = free_port()  # where an epmd would be: nothing may listen there
    with Cluster(tmp_path / "cluster", private_epmd=False) as cluster:
        yield Seeded(cluster, epmd_port), epmd_port


def test_a_cluster_from_one_seed_with_no_epmd(tmp_path: Path) -> None:
    with seeded(tmp_path) as (nodes, epmd_port):
        ports = {"b": free_port(), "c": free_port()}
        a, b, c = nodes.start("a"), nodes.start("b", ports["b"]), nodes.start("c", ports["c"])
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
            (b"a", nodes.seed_port), (b"b", ports["b"]), (b"c", ports["c"])]
        assert b.eval("net_adm:ping('nobody@127.0.0.1').") == "pang"


def test_no_epmd_means_the_overlay_answers(tmp_path: Path) -> None:
    """``-no_epmd`` (no epmd at all, erl_epmd not even started) works as
    the epmd module does: stock needs a -proto_dist that can do without
    epmd for this flag, and py_dist is one."""
    with Cluster(tmp_path / "cluster", private_epmd=False) as cluster:
        nodes = Seeded(cluster, free_port(), flags=("-no_epmd",))
        a, b, c = nodes.start("a"), nodes.start("b"), nodes.start("c")
        for node in (a, b, c):
            wait_routes(node, 2)
        assert b.eval("whereis(erl_epmd).") == "undefined"
        assert b.eval(f"net_adm:ping('{c.node}').") == "pong"
        assert c.eval(f"rpc:call('{a.node}', erlang, node, []).") == a.node


def test_a_node_restarted_under_its_name_rejoins(tmp_path: Path) -> None:
    """c dies (kill -9) and comes back with the same name and port: the
    others see nodedown, then reach it again through the seed."""
    with seeded(tmp_path) as (nodes, _):
        c_port = free_port()
        nodes.start("a")
        b, c = nodes.start("b"), nodes.start("c", c_port)
        wait_routes(b, 2)
        assert b.eval(f"net_adm:ping('{c.node}').") == "pong"
        old = b.eval(f"rpc:call('{c.node}', os, getpid, []).")
        c.kill9()
        c.stop()  # and its port program, by pid, should it outlive the BEAM
        nodes.cluster.nodes.remove(c)
        assert b.eval(f"""
            W = fun L(0) -> still_up;
                    L(K) -> case lists:member('{c.node}', nodes()) of
                                true -> timer:sleep(50), L(K - 1);
                                false -> gone
                            end end,
            W(100).""") == "gone"
        c = nodes.start("c", c_port)
        wait_routes(c, 2)
        assert ping_until_pong(b, c.node, tries=50, every_ms=100) == "pong"
        assert b.eval(f"rpc:call('{c.node}', os, getpid, []).") != old


def test_a_name_already_taken_is_refused(tmp_path: Path) -> None:
    """A second node named like a live one joins through a seed that knows
    the first elsewhere: the seed refuses the link, the newcomer logs why
    and stops trying; the first is untouched."""
    with seeded(tmp_path) as (nodes, _):
        a, b = nodes.start("a"), nodes.start("b")
        wait_routes(a, 1)
        assert a.eval(f"net_adm:ping('{b.node}').") == "pong"
        pid = a.eval(f"rpc:call('{b.node}', os, getpid, []).")
        impostor = nodes.start("b")  # same name, another port
        assert impostor.eval("""
            W = fun L(0) -> still_trying;
                    L(K) -> case py_dist:neighbours() of
                                [] -> gave_up;
                                _ -> timer:sleep(100), L(K - 1)
                            end end,
            W(100).""") == "gave_up"
        assert impostor.logged("is taken by another live node")
        assert impostor.eval("nodes().") == []
        assert impostor.eval(f"net_adm:ping('{a.node}').") == "pang"
        assert a.eval(f"rpc:call('{b.node}', os, getpid, []).") == pid
        stats = a.eval("maps:get(stats, maps:get(port, py_dist:info())).")
        assert stats.get(b"names_taken", 0) >= 1, stats


def test_the_endpoint_a_node_advertises_is_its_own_choice(tmp_path: Path) -> None:
    """b (behind NAT, say) advertises no endpoint and c a name of its own
    choosing: the others' link state says so, py_dist_epmd lists only c,
    at that address; b is still reached through the overlay."""
    with seeded(tmp_path) as (nodes, _):
        c_port = free_port()
        a = nodes.start("a")
        b = nodes.start("b", None, "-py_dist", "advertise_endpoint", "none")
        c = nodes.start("c", c_port, "-py_dist", "advertise_endpoint", f"localhost:{c_port}")
        for node in (a, b, c):
            wait_routes(node, 2)
        lsps = a.eval("maps:get(lsdb, py_dist:topology()).")
        lsdb = {lsp["origin"]: lsp["endpoint"] for lsp in lsps}
        assert lsdb[b.node.encode()] == b""
        assert lsdb[c.node.encode()] == f"localhost:{c_port}".encode()
        assert lsdb[a.node.encode()] == f"{HOST}:{nodes.seed_port}".encode()
        assert sorted(a.eval(f"element(2, py_dist_epmd:names(\"{HOST}\")).")) == [
            (b"a", nodes.seed_port), (b"c", c_port)]
        assert a.eval(f"py_dist_epmd:address_please(\"c\", \"{HOST}\", inet).") == (
            "ok", (127, 0, 0, 1), c_port, 6)
        assert c.eval(f"net_adm:ping('{b.node}').") == "pong"
