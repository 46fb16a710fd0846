"""Garbage sent straight to a node's ZeroMQ endpoint costs nothing else."""

from __future__ import annotations

import random
import socket
import struct
import time

import zmq

from pydist.core import lsdb
from pydist.core.wire import HEADER, VERSION, Kind, node_id
from pydist_tools.cluster import HOST, Cluster

from .helpers import hand_admit


def test_garbage_to_the_endpoint_is_logged_and_harmless(cluster: Cluster) -> None:
    a, b = cluster.start("a"), cluster.start("b")
    assert b.eval(f"net_adm:ping('{a.node}').") == "pong"
    port = a.eval("maps:get(listen_port, py_dist:info()).")
    rng = random.Random(1234)

    # 1. not even ZeroMQ: raw TCP noise, and a connection cut mid-greeting
    for size in (1, 10, 64, 4096):
        with socket.create_connection((HOST, port)) as s:
            s.sendall(rng.randbytes(size))
    with socket.create_connection((HOST, port)) as s:
        s.sendall(b"\xff\x00\x00\x00\x00\x00\x00\x00\x01\x7f")  # half a ZMTP greeting

    # 2. ZeroMQ, but not our frames
    ctx = zmq.Context()
    try:
        good_header = HEADER.pack(VERSION, Kind.HELLO, 0, 16, 0, 0, node_id(b"x@h"), 0, 0, 0, 1)
        messages: list[list[bytes]] = [
            [rng.randbytes(100)],                                  # one part
            [rng.randbytes(44), rng.randbytes(10), b"extra"],      # three parts
            [good_header[:20], b"x@h"],                            # truncated header
            [b"\x09" + good_header[1:], b"x@h"],                   # unknown version
            [good_header[:1] + b"\x63" + good_header[2:], b""],    # unknown kind
            [HEADER.pack(VERSION, Kind.DATA, 0, 16, 0, 7, 1, 2, 0, 0, 1), b"\0\0\0\x05ab"],
        ]
        for parts in messages:
            dealer = ctx.socket(zmq.DEALER)
            dealer.setsockopt(zmq.LINGER, 1000)
            dealer.connect(f"tcp://{HOST}:{port}")
            dealer.send_multipart(parts)
            dealer.close()
        # a cookie holder's link, then a DATA frame for a channel that does
        # not exist and a truncated run of frames: refused, link survives or
        # not, but nothing else is touched
        dealer = ctx.socket(zmq.DEALER)
        dealer.setsockopt(zmq.LINGER, 1000)
        dealer.connect(f"tcp://{HOST}:{port}")
        assert hand_admit(dealer, b"x@h", cluster.cookie), "a admits a cookie holder"
        dealer.send_multipart([
            HEADER.pack(VERSION, Kind.DATA, 1, 16, 0, 99, node_id(b"x@h"),
                        node_id(a.node.encode()), 0, 0, 1),
            struct.pack("!I", 1000) + b"short"])
        dealer.send_multipart([
            HEADER.pack(VERSION, Kind.OPEN, 1, 16, 0, 5, node_id(b"x@h"),
                        node_id(a.node.encode()), 0, 0, 1), b"not-me@nowhere"])
        assert dealer.poll(2000), "a refuses the channel"
        dealer.close()
    finally:
        ctx.term()

    time.sleep(0.3)
    # the node and its port program are still the same and still serve b
    assert a.eval("py_dist:info().")["os_pid"] == a.port_pid
    assert a.eval("maps:get(restarts, py_dist:info()).") == 0
    assert b.eval(f"rpc:call('{a.node}', erlang, node, []).") == a.node
    assert b.eval(f"B = crypto:strong_rand_bytes(100000), "
                  f"erlang:md5(B) =:= rpc:call('{a.node}', erlang, md5, [B]).") is True
    assert a.eval("nodes().") == [b.node]
    log = a.log_text()
    assert "bad frame" in log
    assert "refusing channel" in log


def _rss_mb(pid: int) -> float:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_a_flood_from_one_peer_stays_within_bounds(cluster: Cluster) -> None:
    """A cookie holder that links and then floods: chunks of messages that never
    complete, chunks declaring huge messages, data for channels that do not
    exist, link-state packets of thousands of made-up nodes. The port
    program's memory stays within its bounds and b's connection to a keeps
    working all along."""
    bound = ("-py_dist", "max_frame", str(8 << 20), "-py_dist", "max_nodes", "256")
    a, b = cluster.start("a", *bound), cluster.start("b")
    assert b.eval(f"net_adm:ping('{a.node}').") == "pong"
    assert a.port_pid is not None
    port = a.eval("maps:get(listen_port, py_dist:info()).")
    # lane messages are taken only from nodes with a connection: the
    # flooder, with no keys to stop it, writes b's id as their source
    me, dst, connected = node_id(b"x@h"), node_id(a.node.encode()), node_id(b.node.encode())
    before = _rss_mb(a.port_pid)
    chunk = bytes(64 * 1024)
    ctx = zmq.Context()
    peak, pings = before, 0
    try:
        dealer = ctx.socket(zmq.DEALER)
        dealer.setsockopt(zmq.LINGER, 0)
        dealer.setsockopt(zmq.SNDHWM, 64)
        dealer.connect(f"tcp://{HOST}:{port}")
        assert hand_admit(dealer, b"x@h", cluster.cookie), "a admits a cookie holder"
        deadline, i = time.monotonic() + 4.0, 0
        while time.monotonic() < deadline:
            i += 1
            try:
                # chunk 0 of 1000 of message i: never completes
                dealer.send_multipart([HEADER.pack(VERSION, Kind.LANE, 0, 16, 1, 7, connected,
                                                   dst, i, 0, 1000), chunk], zmq.NOBLOCK)
                # a message of 2**31 chunks: refused at its first
                dealer.send_multipart([HEADER.pack(VERSION, Kind.LANE, 0, 16, 1, 7, connected,
                                                   dst, i, 5, 1 << 31), chunk], zmq.NOBLOCK)
                # data for a channel that does not exist
                dealer.send_multipart([HEADER.pack(VERSION, Kind.DATA, 1, 16, 0, i, me, dst,
                                                   0, 0, 1), b"\0\0\0\1x"], zmq.NOBLOCK)
                # a node nobody has heard of, with a neighbour
                lsp = lsdb.encode(lsdb.Lsp(f"n{i}@h".encode(), 1, 30.0, ((b"x@h", 1),)))
                dealer.send_multipart([HEADER.pack(VERSION, Kind.LSP, 0, 16, 0, 0, me, 0,
                                                   0, 0, 1), lsp], zmq.NOBLOCK)
            except zmq.Again:
                time.sleep(0.001)
            if i % 200 == 0:
                peak = max(peak, _rss_mb(a.port_pid))
                assert b.eval(f"rpc:call('{a.node}', erlang, node, [], 5000).") == a.node
                pings += 1
        dealer.close()
    finally:
        ctx.term()
    time.sleep(0.5)
    peak = max(peak, _rss_mb(a.port_pid))
    stats = a.eval("maps:get(stats, maps:get(port, py_dist:info())).")
    print(f"a's port program: {before:.0f} MB before, {peak:.0f} MB at most; "
          f"{i} rounds, {pings} rpcs meanwhile; {stats}")
    assert pings > 0 and i > 1000
    assert stats.get(b"lane_errors", 0) > 0  # the huge declared sizes, and chunks past the bound
    # bounds: lane reassembly max_frame (8 MiB), LSDB max_nodes (256), the
    # rest small; generous for allocator slack
    assert peak - before < 80, (before, peak)
    assert a.eval("maps:get(restarts, py_dist:info()).") == 0
    assert b.eval(f"net_adm:ping('{a.node}').") == "pong"
