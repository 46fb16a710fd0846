"""Garbage sent straight to a node's ZeroMQ endpoint costs nothing else."""

from __future__ import annotations

import random
import socket
import struct
import time

import zmq

from pydist.cluster import HOST, Cluster
from pydist.core.wire import HEADER, VERSION, Kind, node_id


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
        # a well-behaved HELLO, then a DATA frame for a channel that does not
        # exist and a truncated run of frames: refused, link survives or not,
        # but nothing else is touched
        dealer = ctx.socket(zmq.DEALER)
        dealer.setsockopt(zmq.LINGER, 1000)
        dealer.connect(f"tcp://{HOST}:{port}")
        dealer.send_multipart([good_header, b"x@h"])
        dealer.send_multipart([
            HEADER.pack(VERSION, Kind.DATA, 1, 16, 0, 99, node_id(b"x@h"),
                        node_id(a.node.encode()), 0, 0, 1),
            struct.pack("!I", 1000) + b"short"])
        dealer.send_multipart([
            HEADER.pack(VERSION, Kind.OPEN, 1, 16, 0, 5, node_id(b"x@h"),
                        node_id(a.node.encode()), 0, 0, 1), b"not-me@nowhere"])
        assert dealer.poll(2000), "a answers a HELLO"
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
