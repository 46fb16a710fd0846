"""What an operator gets: the overlay's events as OTP logger reports with
structured metadata (see py_dist_events), and py_dist:info() in the shape
the README documents."""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import zmq

from pydist_tools.cluster import HOST, Cluster, ErlNode, wait_routes

from .helpers import hand_admit


def events(node: ErlNode, event: str, at_least: int = 1,
           timeout: float = 15.0) -> list[tuple[Any, ...]]:
    """The logged py_dist events named ``event``: once there are
    ``at_least`` of them, or after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        found = [e for e in node.eval("pd_agent:events().") if e[2]["event"] == event]
        if len(found) >= at_least or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def test_links_routes_losses_and_refusals_are_logger_reports(cluster: Cluster) -> None:
    """A line a-b-c and a's neighbour d; b stops, d falls silent, an outsider
    fails the cookie: a's logger gets each as a report with the metadata
    py_dist => Category, at the level stock would use."""
    a = cluster.start("a")
    assert a.eval("pd_agent:watch_events().") == "ok"
    b = cluster.start("b", "-py_dist", "neighbours", f"['{a.node}']")
    c = cluster.start("c", "-py_dist", "neighbours", f"['{b.node}']")
    d = cluster.start("d", "-py_dist", "neighbours", f"['{a.node}']")
    wait_routes(a, 3)
    up = events(a, "link_up")
    assert sorted((level, category, report["peer"]) for level, category, report in up) == [
        ("info", "link", b.node.encode()), ("info", "link", d.node.encode())]
    reachable = {r["node"] for _, category, r in events(a, "reachable")
                 if category == "route"}
    assert reachable == {b.node.encode(), c.node.encode(), d.node.encode()}

    b.stop()
    unreachable = events(a, "unreachable", at_least=2)
    assert {r["node"] for _, _, r in unreachable} == {b.node.encode(), c.node.encode()}
    [(level, category, down)] = events(a, "link_down")
    # b's port program said goodbye as its node stopped: no failure
    assert (level, category, down) == ("info", "link", {
        "event": "link_down", "peer": b.node.encode(), "reason": b"peer_exit"})
    os.kill(d.port_pid, signal.SIGSTOP)  # d's carrier falls silent: a failure
    try:
        downs = events(a, "link_down", at_least=2)
    finally:
        os.kill(d.port_pid, signal.SIGCONT)
    [(level, category, down)] = [e for e in downs if e[2]["peer"] == d.node.encode()]
    assert (level, category) == ("notice", "link")
    assert down["reason"] == b"heartbeat_timeout"

    ctx = zmq.Context()
    try:
        sock = ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(f"tcp://{HOST}:{a.eval('maps:get(listen_port, py_dist:info()).')}")
        assert not hand_admit(sock, f"guess@{HOST}".encode(), "not-the-cookie")
        sock.close()
    finally:
        ctx.destroy(linger=0)
    [(level, category, refused)] = events(a, "link_refused")
    assert (level, category) == ("error", "admission")
    assert refused == {"event": "link_refused", "peer": f"guess@{HOST}".encode(),
                       "reason": "wrong_cookie"}
    # people still read one line, rendered by the report callback
    assert a.logged(f"Connection attempt from node guess@{HOST} rejected")


def test_info_has_the_documented_shape(cluster: Cluster) -> None:
    a = cluster.start("a")
    b = cluster.start("b", "-py_dist", "neighbours", f"['{a.node}']")
    wait_routes(a, 1)
    assert b.eval(f"net_adm:ping('{a.node}').") == "pong"
    info = a.eval("py_dist:info().")
    assert {"os_pid", "listen_port", "channels", "restarts", "port"} <= set(info)
    port = info["port"]
    assert set(port) == {"links", "channels", "stats", "process_lanes"}
    assert port["process_lanes"] == 0
    [link] = port["links"]
    assert link == {"peer": b.node.encode(), "up": True, "dialled": False, "channels": 1}
    [channel] = port["channels"]
    assert {"chan", "peer", "epoch", "initiator", "paused", "unacked_bytes", "reorder_bytes",
            "next_seq", "expected", "queued_bytes", "flows", "inflight_budget",
            "min_rtt_us"} == set(channel)
    assert channel["peer"] == b.node.encode()
    assert port["stats"][b"links_admitted"] == 1
    assert all(isinstance(k, bytes) and isinstance(v, int) for k, v in port["stats"].items())
