"""Sequencing with real nodes: links cut and restored under a stream, every
path cut, and frames of an earlier connection."""

from __future__ import annotations

import time

import zmq

from pydist.core.wire import FLAG_INITIATOR, HEADER, VERSION, Kind, node_id
from pydist_tools.cluster import HOST, Cluster, ErlNode, wait_routes

from .helpers import hand_admit, nodedown, watch_nodedown


def ring(cluster: Cluster, size: int) -> list[ErlNode]:
    nodes = [cluster.start(f"s{i}", "-py_dist", "neighbours", f"['s{(i + 1) % size}@{HOST}']")
             for i in range(size)]
    for node in nodes:
        wait_routes(node, size - 1, degree=2)
    return nodes


def port_stats(node: ErlNode) -> dict[bytes, int]:
    result: dict[bytes, int] = node.eval("maps:get(stats, maps:get(port, py_dist:info())).")
    return result


def wait_via(node: ErlNode, dest: ErlNode, via: ErlNode, timeout_ms: int = 10000) -> None:
    """Until ``node`` routes to ``dest`` through its neighbour ``via``."""
    result = node.eval(f"""
        Wait = fun W(T) ->
                   Via = [V || #{{dest := D, via := V}} <- py_dist:routes(),
                               D =:= <<"{dest.node}">>],
                   case Via of
                       [<<"{via.node}">>] -> ok;
                       _ when T =< 0 -> Via;
                       _ -> timer:sleep(5), W(T - 5)
                   end
               end,
        Wait({timeout_ms}).""", timeout=timeout_ms / 1000 + 30)
    assert result == "ok", f"{node.name} routes to {dest.name} via {result!r}, not {via.name}"


def test_a_stream_survives_twenty_cuts_of_the_link_it_uses(cluster: Cluster) -> None:
    """100,000 numbered messages to the node opposite in a ring of four, while
    the first link of their path is cut and restored 20 times: all arrive, in
    order, once; nobody sees a nodedown."""
    s0, s1, s2, _ = nodes = ring(cluster, 4)
    assert s0.eval(f"net_adm:ping('{s2.node}').") == "pong"
    for node in nodes:
        node.eval("persistent_term:put(pd_watch, pd_agent:watch_nodes()).")
    s2.eval("persistent_term:put(pd_recv, pd_agent:ordered_receiver(pd_ordered, {1, 100000})).")
    # paced, so that the stream outlasts the cuts: 200 bursts of 500, for
    # 10 s at least; the cuts wait for the route back each time (s1 < s3,
    # so the tie between the two equal paths goes to s1), and after a burst
    # of flaps the link-state back-off may take half a second for it
    s0.eval(f"""spawn(fun() ->
        [begin
             [{{pd_ordered, '{s2.node}'}} ! {{1, B * 500 + I}} || I <- lists:seq(1, 500)],
             timer:sleep(50)
         end || B <- lists:seq(0, 199)] end), ok.""")
    for _ in range(20):
        wait_via(s0, s2, s1)
        assert s0.eval(f"py_dist:unlink('{s1.node}').") == "ok"
        time.sleep(0.03)
        assert s0.eval(f"py_dist:link('{s1.node}').") == "ok"
    result = s2.eval("persistent_term:get(pd_recv) ! {get, self()}, "
                     "receive {result, R} -> R after 60000 -> timeout end.", timeout=90)
    assert result == ("ok", 1)
    downs = {n.name: n.eval("pd_agent:nodedowns(persistent_term:get(pd_watch)).") for n in nodes}
    assert downs == {n.name: [] for n in nodes}
    # every cut moved the stream off s1 (and, once the route was back, on)
    stats = port_stats(s0)
    assert stats.get(b"channels_moved", 0) >= 20, stats


def test_every_path_cut_is_a_nodedown_and_the_node_comes_back(cluster: Cluster) -> None:
    """s2 loses both its links: s0 sees nodedown at once, with a reason that
    says there is no path, and a process that asked is told of the loss;
    when a link returns, so does the connection."""
    s0, s1, s2, s3 = ring(cluster, 4)
    assert s0.eval(f"net_adm:ping('{s2.node}').") == "pong"
    assert s0.eval("py_dist:monitor_losses().") == "ok"  # this eval process hears
    watch_nodedown(s0, s2)
    cut = time.time()
    assert s1.eval(f"py_dist:unlink('{s2.node}').") == "ok"  # s1 keeps s2
    assert s2.eval(f"py_dist:unlink('{s3.node}').") == "ok"  # s2 keeps s3
    seen = nodedown(s0)
    assert seen != "timeout"
    at, reason = seen
    assert reason == ("py_dist", "no_route"), reason
    assert at / 1e6 - cut < 1.0
    loss = s0.eval(f"receive {{py_dist_loss, '{s2.node}', R, #{{unacked := N}}}} -> {{R, N}} "
                   f"after 1000 -> none end.")
    assert loss != "none" and loss[0] == "no_route" and isinstance(loss[1], int), loss
    assert s1.eval(f"py_dist:link('{s2.node}').") == "ok"
    wait_routes(s0, 3)
    assert s0.eval(f"net_adm:ping('{s2.node}').") == "pong"


def test_frames_of_an_earlier_connection_are_dropped_and_counted(cluster: Cluster) -> None:
    """After a reconnect, DATA of the old connection's epoch, injected
    straight into the node's endpoint, reaches nothing and is counted."""
    a, b = cluster.start("a"), cluster.start("b")
    assert a.eval(f"net_adm:ping('{b.node}').") == "pong"

    def epoch() -> int:
        (found,) = [c["epoch"] for c in b.eval("maps:get(channels, maps:get(port, "
                                               "py_dist:info())).")
                    if c["peer"] == a.node.encode()]
        assert isinstance(found, int)
        return found

    old = epoch()
    one = a.eval(f"py_dist:info('{b.node}').")
    assert one["peer"] == b.node.encode() and one["next_seq"] >= 1, one
    assert a.eval("py_dist:info('nobody@nowhere').") == "undefined"
    assert a.eval(f"erlang:disconnect_node('{b.node}').") is True
    assert a.eval(f"net_adm:ping('{b.node}').") == "pong"
    assert epoch() != old
    before = port_stats(b).get(b"data_unknown_channel", 0)
    b.eval("register(pd_inbox, self()).")
    port = b.eval("maps:get(listen_port, py_dist:info()).")
    ctx = zmq.Context()
    try:
        dealer = ctx.socket(zmq.DEALER)
        dealer.setsockopt(zmq.LINGER, 1000)
        dealer.connect(f"tcp://{HOST}:{port}")
        src = node_id(a.node.encode())
        assert hand_admit(dealer, b"x@h", cluster.cookie)
        for seq in range(5):  # as a would have sent them, on the old channel
            dealer.send_multipart([
                HEADER.pack(VERSION, Kind.DATA, FLAG_INITIATOR, 16, 0, old, src,
                            node_id(b.node.encode()), seq, 0, 1),
                b"\0\0\0\x01p"])
        dealer.close()
    finally:
        ctx.term()
    deadline = time.monotonic() + 10
    while port_stats(b).get(b"data_unknown_channel", 0) < before + 5:
        assert time.monotonic() < deadline, port_stats(b)
        time.sleep(0.05)
    # the connection of today is untouched
    assert a.eval(f"rpc:call('{b.node}', erlang, node, []).") == b.node
    assert b.eval("receive M -> M after 100 -> nothing end.") == "nothing"
