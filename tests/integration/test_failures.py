"""Nodes and port programs that die, and what their peers see."""

from __future__ import annotations

import os
import signal
import time

from pydist.core.config import Config
from pydist_tools.cluster import HOST, Cluster, free_port

from .helpers import nodedown, watch_nodedown


def sink_total(node, sink: str, messages: int):  # type: ignore[no-untyped-def]
    """Bytes the registered sink got once it has all ``messages``, or timeout."""
    return node.eval(f"""
        Wait = fun W(0) -> timeout;
                   W(K) -> {sink} ! {{count, self()}},
                           receive {{count, {messages}, Bytes}} -> Bytes;
                                   {{count, _, _}} -> timer:sleep(100), W(K - 1)
                           end
               end,
        Wait(300).
    """, timeout=60)


def test_kill9_of_a_peer_is_seen_within_a_second(cluster: Cluster) -> None:
    a, b, c = cluster.start("a"), cluster.start("b"), cluster.start("c")
    for x in (b, c):
        assert x.eval(f"net_adm:ping('{a.node}').") == "pong"
        watch_nodedown(x, a)
    killed_at = time.time()
    a.kill9()
    for x in (b, c):
        result = nodedown(x)
        assert result != "timeout"
        seen_us, reason = result
        assert seen_us / 1e6 - killed_at < 1.0, (x.node, reason)
        # its port program said goodbye: what stock says of a closed TCP connection
        assert reason == "connection_closed", (x.node, reason)
    # the same name started again is reachable again
    a2 = cluster.start("a")
    assert b.eval(f"net_adm:ping('{a2.node}').") == "pong"
    assert b.eval(f"rpc:call('{a2.node}', os, getpid, []).") == str(a2.pid).encode()


def test_heartbeat_finds_a_frozen_peer(cluster: Cluster) -> None:
    """No goodbye, no TCP reset: only heartbeats can tell. The link is the
    only way between a and b, so it gets the longest silence the config
    allows (heartbeat_timeout_max) before it is cut, not heartbeat_timeout."""
    a, b = cluster.start("a"), cluster.start("b")
    assert b.eval(f"net_adm:ping('{a.node}').") == "pong"
    watch_nodedown(b, a)
    assert a.port_pid is not None
    os.kill(a.port_pid, signal.SIGSTOP)
    try:
        stopped_at = time.time()
        seen_us, reason = nodedown(b)
    finally:
        os.kill(a.port_pid, signal.SIGCONT)
    assert reason == ("py_dist", "heartbeat_timeout")
    config = Config()
    took = seen_us / 1e6 - stopped_at
    assert config.heartbeat_timeout < took < config.heartbeat_timeout_max + 1.0, took


def test_port_program_killed_node_survives_and_reconnects(cluster: Cluster) -> None:
    a, b = cluster.start("a"), cluster.start("b")
    assert b.eval(f"net_adm:ping('{a.node}').") == "pong"
    watch_nodedown(a, b)
    old_port = b.port_pid
    assert old_port is not None
    os.kill(old_port, signal.SIGKILL)
    seen = nodedown(a)
    assert seen != "timeout"
    assert b.alive()
    # b's owner restarted the program, on the same port, and b connects again
    deadline = time.time() + 10
    while b.eval("maps:get(restarts, py_dist:info()).") < 1 and time.time() < deadline:
        time.sleep(0.05)
    info = b.eval("py_dist:info().")
    assert info["restarts"] == 1 and info["os_pid"] != old_port
    assert b.eval(f"net_adm:ping('{a.node}').") == "pong"
    assert a.eval(f"net_adm:ping('{b.node}').") == "pong"
    b.port_pid = info["os_pid"]


def test_a_stalled_beam_is_not_taken_for_dead(cluster: Cluster) -> None:
    """A BEAM that reads nothing from its port for longer than the heartbeat
    timeout (a long GC, an overloaded machine) keeps its connections: its
    port program buffers what arrives and goes on heartbeating."""
    a, b = cluster.start("a"), cluster.start("b")
    assert b.eval(f"net_adm:ping('{a.node}').") == "pong"
    a.eval("register(stalled_sink, pd_agent:sink()).")
    watch_nodedown(b, a)
    os.kill(a.pid, signal.SIGSTOP)
    try:
        # from a process of its own: past what the carrier buffers, the
        # sender is suspended until a reads again (back-pressure, as stock)
        b.eval(f"spawn(fun() -> [{{stalled_sink, '{a.node}'}} ! "
               f"{{data, binary:copy(<<1>>, 1 bsl 20)}} || _ <- lists:seq(1, 8)] end), ok.")
        time.sleep(2.0)  # over three heartbeat timeouts
    finally:
        os.kill(a.pid, signal.SIGCONT)
    assert sink_total(a, "stalled_sink", 8) == 8 << 20
    assert nodedown(b, wait_ms=500) == "timeout"  # no nodedown
    assert a.eval("nodes().") == [b.node]


def test_a_slow_peer_holds_up_only_its_own_connection(cluster: Cluster) -> None:
    """b stops reading (its BEAM is frozen) while a streams to it: a's link
    to b fills, a pauses that one connection, and a keeps talking to c.
    The in-flight budget is opened wide: with the default 512 KiB, a stops
    at the budget once b stops acknowledging, and whether the link's queue
    fills then depends on the kernel's socket buffers."""
    small_queues = ("-py_dist", "link_hwm", "4", "-py_dist", "inflight_bytes", str(64 << 20))
    a, b, c = (cluster.start(n, *small_queues) for n in ("a", "b", "c"))
    for x in (b, c):
        assert a.eval(f"net_adm:ping('{x.node}').") == "pong"
    b.eval("register(slow_sink, pd_agent:sink()).")
    watch_nodedown(a, b)
    os.kill(b.pid, signal.SIGSTOP)
    try:
        a.eval(f"""
            spawn(fun() -> B = binary:copy(<<2>>, 1 bsl 20),
                           [{{slow_sink, '{b.node}'}} ! {{data, B}} || _ <- lists:seq(1, 64)]
                  end), ok.
        """)
        # b's buffers, the sockets' and a's link queue fill: a's link to b
        # congests (how soon depends on the machine's load)
        deadline = time.monotonic() + 20
        while True:
            stats = a.eval("maps:get(stats, maps:get(port, py_dist:info())).")
            if stats.get(b"link_congested", 0) >= 1:
                break
            assert time.monotonic() < deadline, stats
            time.sleep(0.1)
        # the connection to c does not wait for b
        assert a.eval(f"rpc:call('{c.node}', erlang, node, [], 2000).") == c.node
    finally:
        os.kill(b.pid, signal.SIGCONT)
    # and nothing for b was lost
    assert sink_total(b, "slow_sink", 64) == 64 << 20
    assert nodedown(a, wait_ms=200) == "timeout"  # no nodedown


def test_a_port_owner_that_falls_behind_holds_its_links(cluster: Cluster) -> None:
    """The port owner's mailbox has a bound too: when it falls behind, the
    port program stops reading links until it catches up; nothing is lost."""
    a, b = cluster.start("a"), cluster.start("b")
    assert b.eval(f"net_adm:ping('{a.node}').") == "pong"
    a.eval("register(busy_sink, pd_agent:sink()).")
    watch_nodedown(b, a)
    count = 300_000  # enough packets for any batching to pass the hold mark
    a.eval("sys:suspend(py_dist_port).")
    try:
        b.eval(f"spawn(fun() -> [{{busy_sink, '{a.node}'}} ! {{data, <<I:800>>}}"
               f" || I <- lists:seq(1, {count})] end), ok.")
        # wait until the owner is well behind (how soon depends on the load)
        deadline = time.monotonic() + 20
        queued = 0
        while queued <= 4096 and time.monotonic() < deadline:
            time.sleep(0.2)
            queued = a.eval(
                "element(2, process_info(whereis(py_dist_port), message_queue_len)).")
    finally:
        a.eval("sys:resume(py_dist_port).")
    assert queued > 4096, queued  # the owner really was behind
    assert sink_total(a, "busy_sink", count) == count * 100  # <<I:800>> is 100 bytes
    stats = a.eval("maps:get(stats, maps:get(port, py_dist:info())).")
    assert stats.get(b"beam_holds", 0) >= 1 and stats.get(b"beam_releases", 0) >= 1, stats
    assert nodedown(b, wait_ms=200) == "timeout"  # no nodedown


def test_killing_a_connection_while_data_comes_in_costs_only_that_connection(
        cluster: Cluster) -> None:
    """b kills its connection to a (its controller, as OTP's yoyo tests
    do) again and again while a streams to it: packets that reach the port
    owner after erts took the connection down are dropped, the port owner and its port
    program carry on, and the next connection works (found by kernel's
    erl_distribution_SUITE:monitor_nodes_down_up)."""
    a, b = cluster.start("a"), cluster.start("b")
    assert a.eval(f"net_adm:ping('{b.node}').") == "pong"
    owner = b.eval("whereis(py_dist_port).")
    a.eval(f"""persistent_term:put(pd_spam, [spawn(fun S() ->
        {{pd_nobody, '{b.node}'}} ! binary:copy(<<7>>, 1024), S() end) || _ <- [1, 2, 3, 4]]),
        ok.""")
    # the port owner busy elsewhere (suspended) while the connection dies:
    # what comes for it meanwhile is put after erts took it down
    # each round waits (up to 5 s) for the stream to bring the connection
    # back: on a loaded machine a reconnect can take longer than a fixed pause
    killed = b.eval(f"""
        Owner = fun Owner(0) -> none;
                    Owner(Tries) ->
                        case net_kernel:node_info('{a.node}', owner) of
                            {{ok, C}} -> C;
                            _ -> timer:sleep(20), Owner(Tries - 1)
                        end
                end,
        lists:sum([case Owner(250) of
                       none -> 0;
                       Ctrl ->
                           sys:suspend(py_dist_port),
                           timer:sleep(50),
                           exit(Ctrl, kill),
                           timer:sleep(200),
                           sys:resume(py_dist_port),
                           1
                   end || _ <- lists:seq(1, 10)]).""", timeout=120)
    a.eval("[exit(P, kill) || P <- persistent_term:get(pd_spam)].")
    assert killed == 10  # the stream brought the connection back every time
    assert b.eval("whereis(py_dist_port).") == owner
    assert b.eval("maps:get(restarts, py_dist:info()).") == 0
    assert b.eval(f"rpc:call('{a.node}', erlang, node, []).") == a.node


def test_a_neighbour_that_stays_gone_is_dialled_less_and_less(cluster: Cluster) -> None:
    """A kept neighbour nobody answers for: each failed dial doubles the wait
    before the next (the count of failures grows, the link stays down);
    once it starts, it is linked within the longest wait, and the count is
    back to zero for the next time."""
    port = free_port()
    keep = f"[{{'b@{HOST}', #{{endpoint => {{\"{HOST}\", {port}}}}}}}]"
    a = cluster.start("a", "-py_dist", "neighbours", keep,
                      "-py_dist", "neighbour_retry", "100",
                      "-py_dist", "neighbour_retry_max", "1600",
                      "-py_dist", "heartbeat_timeout_max", "700")
    failures = (f"{{state, Ns, _, _}} = sys:get_state(py_dist_neighbours), "
                f"element(5, maps:get('b@{HOST}', Ns)).")
    deadline = time.monotonic() + 60
    while a.eval(failures) < 4:
        assert time.monotonic() < deadline, "a's dials of b did not fail"
        time.sleep(0.2)
    assert a.eval("py_dist:neighbours().") in ([(f"b@{HOST}", "down")],
                                                [(f"b@{HOST}", "dialling")])
    b = cluster.start("b", "-py_dist", "listen_port", str(port))
    assert a.eval("""
        Wait = fun W(0) -> timeout;
                   W(K) -> case py_dist:neighbours() of
                               [{_, up}] -> ok;
                               _ -> timer:sleep(100), W(K - 1)
                           end
               end,
        Wait(300).""", timeout=60) == "ok"
    assert a.eval(failures) == 0
    assert a.eval(f"net_adm:ping('{b.node}').") == "pong"
