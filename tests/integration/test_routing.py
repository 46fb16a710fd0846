"""Routing with real nodes: a ring where each node links to two neighbours
only, static routes, a cut link, and a line in network namespaces where the
first node cannot reach the last one's address at all."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from pydist_tools.bench_scale import tcp_sockets
from pydist_tools.cluster import Cluster, ErlNode, netns, wait_routes

from .helpers import nodedown, port_stats, watch_nodedown

HOST = "127.0.0.1"


def ring(cluster: Cluster, size: int, *args: str) -> list[ErlNode]:
    """``size`` nodes, each dialling the next one round: two neighbours each."""
    nodes = [cluster.start(f"r{i}", "-py_dist", "neighbours", f"['r{(i + 1) % size}@{HOST}']",
                           *args) for i in range(size)]
    for node in nodes:  # until each knows the whole ring closed
        wait_routes(node, size - 1, degree=2)
    return nodes


def route(node: ErlNode, dest: ErlNode) -> dict[str, Any]:
    (found,) = [r for r in node.eval("py_dist:routes().") if r["dest"] == dest.node.encode()]
    return found


def wait_for_mesh(nodes: list[ErlNode]) -> None:
    for node in nodes[1:]:
        assert nodes[0].eval(f"net_adm:ping('{node.node}').") == "pong"
    for node in nodes:
        others = [n.node for n in nodes if n is not node]
        assert node.eval(f"pd_agent:wait_for_nodes({others!r}, 20000).".replace('"', "'")) == "ok"


def test_ring_of_ten(cluster: Cluster) -> None:
    nodes = ring(cluster, 10)
    wait_for_mesh(nodes)
    for node in nodes:
        assert len(node.eval("nodes().")) == 9
    # global names are visible everywhere
    nodes[5].eval("yes = global:register_name(pd_ring_name, spawn(fun() -> "
                  "receive stop -> ok end end)).")
    for node in nodes:
        assert node.eval("global:sync(), node(global:whereis_name(pd_ring_name)).") == nodes[5].node
    # each port program holds its two links and its listener, no more
    for node in nodes:
        assert node.port_pid is not None
        links = node.eval("maps:get(links, maps:get(port, py_dist:info())).")
        assert sorted(ln["peer"] for ln in links if ln["up"]) == sorted(
            n.node.encode() for n in nodes
            if abs(int(n.name[1:]) - int(node.name[1:])) in (1, 9))
        assert tcp_sockets(node.port_pid) <= 3
    assert sum(port_stats(n).get(b"forwarded", 0) for n in nodes) > 0


def test_static_route_overrides_the_computed_one(cluster: Cluster) -> None:
    r0, r1, _, r3, _, r5 = ring(cluster, 6)
    # r3 is opposite r0: both ways cost the same, the tie goes to r1
    assert route(r0, r3) == {"dest": r3.node.encode(), "via": r1.node.encode(),
                             "cost": 30, "static": False}
    r3.eval("register(pd_sink, pd_agent:sink()).")

    def forwarded_by_way_of(count: int) -> tuple[int, int]:
        before = (port_stats(r1).get(b"forwarded_bytes", 0),
                  port_stats(r5).get(b"forwarded_bytes", 0))
        sink = f"{{pd_sink, '{r3.node}'}}"
        r0.eval(f"[{sink} ! {{data, <<0:800>>}} || _ <- lists:seq(1, {count})], ok.")
        r0.eval(f"pd_agent:ask({sink}).")  # all arrived
        return (port_stats(r1).get(b"forwarded_bytes", 0) - before[0],
                port_stats(r5).get(b"forwarded_bytes", 0) - before[1])

    assert r0.eval(f"net_adm:ping('{r3.node}').") == "pong"
    via_r1, via_r5 = forwarded_by_way_of(2000)  # 100-byte messages: 200 kB
    assert via_r1 > 200_000 and via_r5 < 20_000, (via_r1, via_r5)

    assert r0.eval(f"py_dist:add_route('{r3.node}', '{r5.node}').") == "ok"
    assert route(r0, r3)["via"] == r5.node.encode() and route(r0, r3)["static"] is True
    via_r1, via_r5 = forwarded_by_way_of(2000)
    assert via_r5 > 200_000 and via_r1 < 20_000, (via_r1, via_r5)

    assert r0.eval(f"py_dist:del_route('{r3.node}').") == "ok"
    assert route(r0, r3)["via"] == r1.node.encode()
    assert r0.eval(f"py_dist:del_route('{r3.node}').") == ("error", "not_found")


def test_cutting_a_link_of_a_ring(cluster: Cluster) -> None:
    """Connections whose path crossed the cut link move round the other way:
    what was in flight is sent again, so Erlang sees nothing, not even
    global with its default prevent_overlapping_partitions."""
    nodes = ring(cluster, 6)
    r0, r1, _, r3, _, r5 = nodes
    wait_for_mesh(nodes)
    for node in nodes:
        node.eval("persistent_term:put(pd_watch, pd_agent:watch_nodes()).")
    r3.eval("register(pd_sink, pd_agent:sink()).")
    # a stream r0 -> r3 (via r1: the tie goes to the smaller name) across the cut
    r0.eval(f"""spawn(fun() -> [{{pd_sink, '{r3.node}'}} ! {{data, <<I:800>>}}
                                || I <- lists:seq(1, 100000)] end), ok.""")
    cut = time.monotonic()
    assert r0.eval(f"py_dist:unlink('{r1.node}').") == "ok"
    wait_routes(r0, 5)
    assert route(r0, r1)["via"] == r5.node.encode()
    assert r0.eval(f"net_adm:ping('{r1.node}').") == "pong"
    print(f"cut to a ping the other way round: {(time.monotonic() - cut) * 1000:.0f} ms")
    assert r3.eval("""
        W = fun L(0) -> timeout;
                L(K) -> pd_sink ! {count, self()},
                        receive {count, 100000, _} -> ok;
                                {count, _, _} -> timer:sleep(50), L(K - 1)
                        end
            end,
        W(400).""", timeout=60) == "ok"
    time.sleep(0.5)
    downs = {n.name: n.eval("pd_agent:nodedowns(persistent_term:get(pd_watch)).") for n in nodes}
    assert downs == {n.name: [] for n in nodes}
    assert port_stats(r0).get(b"channels_moved", 0) >= 2  # to r1 and r3 at least
    wait_for_mesh(nodes)


@pytest.mark.usefixtures("need_netns")
def test_line_in_namespaces(tmp_path: Path) -> None:
    """a - b - c, where a cannot reach c's address: a reaches c through b."""
    with netns.Line(["a", "b", "c"]) as line, Cluster(tmp_path / "cluster") as cl:
        a = cl.start("a", netns=line.ns("a"), host=line.address("a"))
        c = cl.start("c", netns=line.ns("c"), host=line.address("c"))
        b = cl.start("b", "-py_dist", "neighbours", f"['{a.node}', '{c.node}']",
                     netns=line.ns("b"), host=line.address("b"))
        assert not line.can_connect("a", line.address("c"), cl.epmd_port)
        wait_routes(a, 2)
        assert a.eval(f"net_adm:ping('{c.node}').") == "pong"
        assert a.eval(f"rpc:call('{c.node}', erlang, node, []).") == c.node
        # the connection is routed: a's only link is to b
        links = a.eval("maps:get(links, maps:get(port, py_dist:info())).")
        assert [ln["peer"] for ln in links] == [b.node.encode()]
        # links and monitors across the route
        assert a.eval(f"""
            Far = spawn('{c.node}', fun() -> receive die -> exit(died) end end),
            process_flag(trap_exit, true),
            link(Far),
            Ref = monitor(process, Far),
            Far ! die,
            R1 = receive {{'EXIT', Far, E}} -> E after 5000 -> no_exit end,
            R2 = receive {{'DOWN', Ref, process, Far, D}} -> D after 5000 -> no_down end,
            process_flag(trap_exit, false),
            {{R1, R2}}.""") == ("died", "died")
        # 64 MiB intact
        digest = a.eval(f"""
            Bin = crypto:strong_rand_bytes(64 * 1024 * 1024),
            Self = self(),
            Far = spawn('{c.node}', fun() -> receive {{bin, B}} ->
                                  Self ! {{md5, erlang:md5(B), byte_size(B)}} end end),
            Far ! {{bin, Bin}},
            receive {{md5, M, S}} -> {{M =:= erlang:md5(Bin), S}} after 60000 -> timeout end.""",
                        timeout=120)
        assert digest == (True, 64 * 1024 * 1024)
        assert port_stats(b).get(b"forwarded", 0) > 64  # the binary went through b


def test_liveness_across_a_route(cluster: Cluster) -> None:
    """A node two hops away that stops answering is found out end to end:
    a frozen port program through the link state (its neighbour's
    heartbeats), a frozen BEAM through the Erlang ticks, which travel the
    route. The node in the middle stays connected throughout. b-c is the
    only way to c, which by default gets heartbeat_timeout_max (3 s,
    longer than these ticks) before it is cut: here no more than
    heartbeat_timeout, so that the link state is the first to tell."""
    tick = ("-kernel", "net_ticktime", "2", "-py_dist", "heartbeat_timeout_max", "600")
    a = cluster.start("a", "-py_dist", "neighbours", f"['b@{HOST}']", *tick)
    b = cluster.start("b", "-py_dist", "neighbours", f"['c@{HOST}']", *tick)
    c = cluster.start("c", *tick)
    wait_routes(a, 2)
    for far in (b, c):
        assert a.eval(f"net_adm:ping('{far.node}').") == "pong"

    def freeze(pid: int) -> tuple[Any, float]:
        """Stop ``pid`` until a sees nodedown of c: the reason, and how soon."""
        watch_nodedown(a, c)
        frozen = time.time()
        os.kill(pid, signal.SIGSTOP)
        try:
            seen = nodedown(a)
        finally:
            os.kill(pid, signal.SIGCONT)
        assert seen != "timeout"
        at, reason = seen
        assert b.node in a.eval("nodes().")  # the node in the middle stays
        return reason, at / 1e6 - frozen

    assert c.port_pid is not None
    reason, took = freeze(c.port_pid)
    assert reason in (("py_dist", "no_route"), ("py_dist", "path_lost")), reason
    assert took < 1.5  # the heartbeat timeout (0.6 s) and a flood

    wait_routes(a, 2)
    assert a.eval(f"net_adm:ping('{c.node}').") == "pong"
    reason, took = freeze(c.pid)  # the BEAM; its port program goes on
    assert reason == "net_tick_timeout", reason
    assert took < 6  # net_ticktime 2 s: 1.5 to 2.5 s, and a margin


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_a_stalled_node_two_hops_away_costs_the_middle_bounded_memory(
        cluster: Cluster) -> None:
    """c's BEAM freezes while a streams to it through b: b holds a bounded
    amount in transit and keeps serving a."""
    a = cluster.start("a", "-py_dist", "neighbours", f"['b@{HOST}']")
    b = cluster.start("b", "-py_dist", "neighbours", f"['c@{HOST}']")
    c = cluster.start("c")
    wait_routes(a, 2)
    assert a.eval(f"net_adm:ping('{c.node}').") == "pong"
    c.eval("register(pd_sink, pd_agent:sink()).")
    assert b.port_pid is not None
    before = rss_mb(b.port_pid)
    os.kill(c.pid, signal.SIGSTOP)
    try:
        a.eval(f"""
            Bin = binary:copy(<<7>>, 1024 * 1024),
            Deadline = erlang:monotonic_time(millisecond) + 4000,
            Loop = fun L() -> case erlang:monotonic_time(millisecond) < Deadline of
                                  true -> {{pd_sink, '{c.node}'}} ! Bin, L();
                                  false -> ok
                              end end,
            spawn(Loop), ok.""")
        peak = before
        for _ in range(10):
            time.sleep(0.5)
            peak = max(peak, rss_mb(b.port_pid))
        # the middle node keeps serving its other traffic
        assert a.eval(f"net_adm:ping('{b.node}').") == "pong"
    finally:
        os.kill(c.pid, signal.SIGCONT)
    print(f"b's port program: {before:.0f} MB before, {peak:.0f} MB at most")
    # a's retransmit window holds the stream back end to end once c stops
    # acknowledging; the transit bounds (link queue, a 16 MiB backlog) hold
    # whatever is already on its way. Unbounded, it was gigabytes.
    assert peak - before < 200, (before, peak)
