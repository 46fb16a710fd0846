"""Admission: a peer that has not proven the cookie gets nothing from a node.

An outsider dials a node started with default settings, says HELLO, and
then tries what a link would carry: lane messages that ask ``rex`` to run
a command (cast and call, every lane), link-state packets that claim links
to every node, a proof made up. None of it is acted on; the node logs the
refusal, and its other links and connections carry on.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import zmq
from zmq.utils.monitor import recv_monitor_message

from pydist.core import lsdb
from pydist.core.wire import HEADER, VERSION, Kind, node_id
from pydist_tools.bench_scale import tcp_sockets
from pydist_tools.cluster import HOST, Cluster, ErlNode, wait_routes

from .helpers import hand_admit, hand_hello, hand_recv, port_stat, port_stats


def _dealer(ctx: zmq.Context, node: ErlNode,  # type: ignore[type-arg]
            reconnect: bool = True) -> zmq.Socket:  # type: ignore[type-arg]
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    if not reconnect:
        sock.setsockopt(zmq.RECONNECT_IVL, -1)
    sock.connect(f"tcp://{HOST}:{node.eval('maps:get(listen_port, py_dist:info()).')}")
    return sock


def _rex_payloads(node: ErlNode, marker: Path) -> list[bytes]:
    """term_to_binary({rex, Request}) that run `touch marker`: cast and call."""
    command = f'os, cmd, ["touch {marker}"], user'
    cast = node.eval(f"term_to_binary({{rex, {{'$gen_cast', {{cast, {command}}}}}}}).")
    call = node.eval(f"term_to_binary({{rex, {{'$gen_call', {{self(), make_ref()}}, "
                     f"{{call, {command}}}}}}}).")
    assert isinstance(cast, bytes) and isinstance(call, bytes)
    return [cast, call]


def _lane_frames(src: bytes, dst: str, payloads: list[bytes]) -> list[list[bytes]]:
    frames = []
    for lane in (1, 2, 3):
        for i, payload in enumerate(payloads):
            frames.append([HEADER.pack(VERSION, Kind.LANE, 0, 16, lane, 7, node_id(src),
                                       node_id(dst.encode()), lane * 10 + i, 0, 1), payload])
    return frames


def _healthy(v: ErlNode, b: ErlNode, os_pid: int) -> None:
    assert v.eval("maps:get(os_pid, py_dist:info()).") == os_pid
    assert v.eval("maps:get(restarts, py_dist:info()).") == 0
    assert b.eval(f"rpc:call('{v.node}', erlang, node, []).") == v.node
    assert v.eval("nodes().") == [b.node]


def test_an_outsider_runs_nothing_through_rex(cluster: Cluster, tmp_path: Path) -> None:
    v, b = cluster.start("v"), cluster.start("b")
    assert b.eval(f"net_adm:ping('{v.node}').") == "pong"
    os_pid = v.eval("maps:get(os_pid, py_dist:info()).")
    marker = tmp_path / "ran"
    payloads = _rex_payloads(v, marker)
    ctx = zmq.Context()
    try:
        # under a name of its own, and under the name of b, whose
        # connection to v is up: a link is admitted by the cookie, not a name
        for claimed in (f"evil@{HOST}".encode(), b.node.encode()):
            sock = _dealer(ctx, v)
            hand_hello(sock, claimed)
            answer = hand_recv(sock, (Kind.HELLO, Kind.BYE))
            assert answer is not None and answer[0] == Kind.HELLO, "v answers with its nonce"
            for parts in _lane_frames(claimed, v.node, payloads):
                sock.send_multipart(parts)
            sock.close()
        # with a made-up proof
        sock = _dealer(ctx, v)
        assert not hand_admit(sock, f"guess@{HOST}".encode(), "not-the-cookie")
        sock.close()
    finally:
        ctx.destroy(linger=0)

    assert v.logged("before it proved the cookie", f"evil@{HOST}")
    assert v.logged("refusing a link from", f"guess@{HOST}", "wrong cookie")
    assert v.logged("Connection attempt from node", f"guess@{HOST}", "rejected")
    deadline = time.monotonic() + 5
    while port_stat(v, "frames_before_proof") < 12:
        assert time.monotonic() < deadline, port_stat(v, "frames_before_proof")
        time.sleep(0.05)
    time.sleep(0.5)  # what would have run has had its time
    assert not marker.exists()
    assert port_stat(v, "links_admitted") == 1  # b's link, and no other
    assert port_stat(v, "links_refused_cookie") == 1
    _healthy(v, b, os_pid)


def test_forged_link_state_from_an_outsider_moves_no_route(cluster: Cluster) -> None:
    v, b = cluster.start("v"), cluster.start("b")
    c = cluster.start("c", "-py_dist", "neighbours", f"['{b.node}']")
    assert c.eval(f"net_adm:ping('{v.node}').") == "pong"
    for node in (v, b, c):  # links b-c and c-v
        wait_routes(node, 2)
    os_pid = v.eval("maps:get(os_pid, py_dist:info()).")
    before = {n.node: n.eval("py_dist:routes().") for n in (v, b, c)}
    evil = f"evil@{HOST}".encode()
    ctx = zmq.Context()
    try:
        for target in (v, b):
            sock = _dealer(ctx, target)
            hand_hello(sock, evil)
            assert hand_recv(sock, (Kind.HELLO,)) is not None
            # "every node is my neighbour, at cost 1": draws every route to evil
            for origin in (evil, v.node.encode(), b.node.encode(), c.node.encode()):
                others = tuple((n, 1) for n in (evil, v.node.encode(), b.node.encode(),
                                                c.node.encode()) if n != origin)
                lsp = lsdb.encode(lsdb.Lsp(origin, 1 << 40, 60.0, others))
                sock.send_multipart([HEADER.pack(VERSION, Kind.LSP, 0, 16, 0, 0,
                                                 node_id(evil), 0, 0, 0, 1), lsp])
            sock.close()
    finally:
        ctx.destroy(linger=0)
    for node in (v, b):
        deadline = time.monotonic() + 5
        while port_stat(node, "frames_before_proof") < 4:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    time.sleep(0.5)
    after = {n.node: n.eval("py_dist:routes().") for n in (v, b, c)}
    assert after == before
    origins = v.eval("[O || #{origin := O} <- maps:get(lsdb, py_dist:topology())].")
    assert evil not in origins
    assert c.eval(f"rpc:call('{v.node}', erlang, node, []).") == v.node
    assert v.eval("maps:get(os_pid, py_dist:info()).") == os_pid


def test_lane_messages_only_from_connected_nodes(cluster: Cluster) -> None:
    """A cookie holder's link is admitted, but a lane message comes from a
    node only after its nodeup: one with no distribution connection is
    dropped and counted. py_dist:send/3 to a node not connected yet
    connects first, and its message arrives."""
    v, b = cluster.start("v"), cluster.start("b")
    v.eval("register(pd_inbox, self()).")
    holder = f"holder@{HOST}".encode()
    ctx = zmq.Context()
    try:
        sock = _dealer(ctx, v)
        assert hand_admit(sock, holder, cluster.cookie), "the cookie admits the link"
        payload = v.eval("term_to_binary({pd_inbox, from_a_lane}).")
        assert isinstance(payload, bytes)
        for parts in _lane_frames(holder, v.node, [payload]):
            sock.send_multipart(parts)
        deadline = time.monotonic() + 5
        while port_stat(v, "lane_unordered_dropped_not_connected") < 1:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        sock.close()
    finally:
        ctx.destroy(linger=0)
    assert v.eval("receive M -> M after 300 -> nothing end.") == "nothing"
    for lane in ("unordered", "unreliable", "realtime"):
        assert port_stat(v, f"lane_{lane}_dropped_not_connected") == 1

    assert b.eval("nodes().") == []
    assert b.eval(f"py_dist:send({{pd_inbox, '{v.node}'}}, hello, [unordered]).") == "ok"
    assert v.eval("receive M -> M after 5000 -> nothing end.") == "hello"
    assert b.eval("nodes().") == [v.node]
    # and to a node that cannot be reached: nothing sent, the sender told
    assert b.eval(f"py_dist:send({{pd_inbox, 'nobody@{HOST}'}}, m, [unordered, {{notify, t}}]), "
                  "receive {py_dist_dropped, t, R} -> R after 15000 -> timeout end.",
                  timeout=30) == "not_connected"


def test_the_cookie_dist_util_would_use_admits_the_link(cluster: Cluster) -> None:
    """A per-node cookie (erlang:set_cookie/2) admits the link to that node;
    a new cookie of the node's own (erlang:set_cookie/1) admits new links
    from then on, in either direction."""
    a = cluster.start("a")
    w = cluster.start("w")
    w.eval("erlang:set_cookie(other_cookie).")
    _until_admitted(w, "other_cookie")  # w's port program has it within a second
    assert a.eval(f"net_adm:ping('{w.node}').") == "pang"
    assert a.logged(f"{w.node} refuses our link: wrong cookie")
    # w keeps its own cookie, but uses a's with a
    w.eval(f"erlang:set_cookie('{a.node}', '{cluster.cookie}').")
    assert w.eval(f"net_adm:ping('{a.node}').") == "pong"
    # the cluster's cookie becomes w's own: c dials w, and is admitted once
    # w's port program has it
    c = cluster.start("c")
    assert c.eval(f"net_adm:ping('{w.node}').") == "pang"
    w.eval(f"erlang:set_cookie('{cluster.cookie}').")
    _until_admitted(w, cluster.cookie)
    assert c.eval(f"net_adm:ping('{w.node}').") == "pong"


def _until_admitted(node: ErlNode, cookie: str | None) -> None:
    """Until a link proving ``cookie`` is admitted by ``node``: the cookie
    check each second has handed a new cookie to its port program."""
    deadline = time.monotonic() + 20
    ctx = zmq.Context()
    try:
        while True:
            sock = _dealer(ctx, node)
            admitted = hand_admit(sock, f"probe@{HOST}".encode(), cookie)
            sock.close()
            if admitted:
                return
            assert time.monotonic() < deadline
            time.sleep(0.1)
    finally:
        ctx.destroy(linger=0)


def test_connections_that_carry_no_admitted_link_are_closed(cluster: Cluster) -> None:
    """ZeroMQ's listener keeps whatever connects; the node closes, as stock
    distribution does after net_setuptime, each connection that carries no
    admitted link: one that never said HELLO, one that said it and stopped,
    one refused for a wrong proof (after the refusal, which it reads). Its
    connection to a member stays up throughout."""
    v, b = cluster.start("v"), cluster.start("b")
    assert b.eval(f"net_adm:ping('{v.node}').") == "pong"
    assert v.port_pid is not None
    members = tcp_sockets(v.port_pid)
    ctx = zmq.Context()
    try:
        watched = []
        for say in ("nothing", "hello", "wrong proof"):
            sock = _dealer(ctx, v, reconnect=False)
            watched.append((say, sock, sock.get_monitor_socket(zmq.EVENT_DISCONNECTED)))
            if say == "hello":
                hand_hello(sock, f"idle@{HOST}".encode())
            elif say == "wrong proof":
                assert not hand_admit(sock, f"guess@{HOST}".encode(), "not-the-cookie")
        assert _wait(lambda: tcp_sockets(v.port_pid) == members + 3, 10)
        for say, _, monitor in watched:
            assert monitor.poll(30000), f"the connection that said {say} is still open"
            assert recv_monitor_message(monitor)["event"] == zmq.EVENT_DISCONNECTED
        assert _wait(lambda: tcp_sockets(v.port_pid) == members, 10)
        assert port_stat(v, "connections_shut_unadmitted") == 3
        for _, sock, monitor in watched:
            monitor.close()
            sock.close()
    finally:
        ctx.destroy(linger=0)
    assert v.eval("nodes().") == [b.node]
    assert b.eval(f"rpc:call('{v.node}', erlang, node, []).") == v.node
    # the two outsiders' links went, as links; b's stayed
    stats = port_stats(v)
    assert {k: n for k, n in stats.items() if k.startswith(b"links_down_")} == {
        b"links_down_connect_timeout": 1, b"links_down_wrong_cookie": 1}, stats
    assert stats[b"links_admitted"] == 1


def _wait(condition: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True
