"""Edge networks: a line a-b-c of real nodes in namespaces made here,
each hop losing 5% of its packets and delayed 100 ms +- 20 ms each way
(:mod:`pydist_tools.cluster.impaired_line`). Skipped, with the reason,
where namespaces cannot be made.

The tests share one line, in this order: a stream over it, then the cut
of b's link to c (which ends the line)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from pydist_tools.bench_edge import channel_budget, throughput
from pydist_tools.cluster import Cluster, ErlNode, impair, netns
from pydist_tools.cluster.impaired_line import ImpairedLine

from .helpers import port_stats

LOSS, DELAY_MS, JITTER_MS = 0.05, 100, 20
#: seconds of the stream a -> c, and messages a second in it
STREAM_S, RATE = 60, 1000
BIG = 16 * 1024 * 1024
#: the detector's keys on every node of the lossy line: the defaults, said
#: here because the bound of the cut test is computed from them. A hop's
#: first TCP stall (two losses of one segment: 200 + 400 ms of
#: retransmission timeouts, more on a loaded machine) comes before the link
#: has shown any gap to stretch its bound; every link of a line is the only
#: way to what lies behind it, so it gets heartbeat_timeout_max before it
#: is cut (a link with a detour is cut at heartbeat_timeout: a reroute).
HEARTBEAT_TIMEOUT_MS = 600
HEARTBEAT_TIMEOUT_MAX_MS = 3000
HEARTBEAT_INTERVAL_MS = 200


def via(node: ErlNode, dest: ErlNode) -> str:
    routes = node.eval(f"[V || #{{dest := D, via := V}} <- py_dist:routes(), "
                       f"D =:= <<\"{dest.node}\">>].")
    return routes[0].decode() if routes else "none"


def links_down(node: ErlNode) -> dict[bytes, int]:
    return {k: v for k, v in port_stats(node).items() if k.startswith(b"links_down_")}


@pytest.fixture(scope="module")
def line(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ImpairedLine, list[ErlNode]]]:
    reason = netns.unavailable() or impair.unavailable()
    if reason is not None:
        pytest.skip(reason)
    netns.reap_stale()
    d = tmp_path_factory.mktemp("lossy")
    keys = ["-py_dist", "heartbeat_timeout", str(HEARTBEAT_TIMEOUT_MS),
            "-py_dist", "heartbeat_timeout_max", str(HEARTBEAT_TIMEOUT_MAX_MS),
            "-py_dist", "heartbeat_interval", str(HEARTBEAT_INTERVAL_MS)]
    with ImpairedLine(LOSS, DELAY_MS, JITTER_MS, log_dir=d) as ln, Cluster(d / "cluster") as cl:
        nodes = ln.start_py(cl, *keys)
        yield ln, nodes


def test_a_stream_over_a_lossy_slow_line(line: tuple[ImpairedLine, list[ErlNode]]) -> None:
    """60 s of numbered messages a -> c, 1,000 a second, with a 16 MiB
    message in the middle of it: all arrive, in order, the big one
    intact; nobody sees a nodedown, no link goes down, the route stays."""
    ln, (a, b, c) = line
    assert a.eval(f"net_adm:ping('{c.node}').") == "pong"
    assert via(a, c) == b.node
    for node in (a, c):
        node.eval("persistent_term:put(pd_watch, pd_agent:watch_nodes()).")
    before = {n.name: links_down(n) for n in (a, b, c)}
    count = STREAM_S * RATE
    c.eval(f"persistent_term:put(pd_recv, pd_agent:ordered_receiver(pd_ordered, {{1, {count}}})).")
    c.eval("""register(pd_big, spawn(fun() ->
                  receive {big, From, Bin} -> From ! {big, erlang:md5(Bin), byte_size(Bin)} end
              end)), ok.""")
    # 20 messages every 20 ms for STREAM_S seconds, paced by the clock so
    # that a stall is caught up rather than stretching the stream
    batches = STREAM_S * 50
    a.eval(f"""spawn(fun() ->
        T0 = erlang:monotonic_time(millisecond),
        [begin
             [{{pd_ordered, '{c.node}'}} ! {{1, B * 20 + I}} || I <- lists:seq(1, 20)],
             Wait = T0 + (B + 1) * 20 - erlang:monotonic_time(millisecond),
             timer:sleep(max(0, Wait))
         end || B <- lists:seq(0, {batches - 1})] end), ok.""")
    time.sleep(STREAM_S / 4)
    began = time.monotonic()
    big = a.eval(f"""Bin = rand:bytes({BIG}),
        {{pd_big, '{c.node}'}} ! {{big, self(), Bin}},
        receive {{big, Md5, Size}} -> {{Md5 =:= erlang:md5(Bin), Size}}
        after 120000 -> timeout end.""", timeout=150)
    assert big == (True, BIG), f"the big message after {time.monotonic() - began:.0f} s: {big}"
    took = time.monotonic() - began
    result = c.eval("persistent_term:get(pd_recv) ! {get, self()}, "
                    "receive {result, R} -> R after 150000 -> timeout end.", timeout=180)
    assert result == ("ok", 1)
    for node in (a, c):
        assert node.eval("pd_agent:nodedowns(persistent_term:get(pd_watch)).") == []
    assert via(a, c) == b.node
    after = {n.name: links_down(n) for n in (a, b, c)}
    assert after == before, "a link went down on the lossy line"
    report = {n.name: {k: v for k, v in port_stats(n).items() if k in (
        b"links_suspected", b"resend_timeouts", b"retransmitted", b"rerouted_channels")}
        for n in (a, b, c)}
    print(f"16 MiB in {took:.1f} s; dropped by the loss rules: "
          f"{impair.dropped(ln.net.ns('b'))} packets; {report}")


def test_a_cut_link_is_found_within_the_detectors_bound(
        line: tuple[ImpairedLine, list[ErlNode]]) -> None:
    """b's link to c cut (its interface down: no FIN, what crosses is
    lost): b declares it dead within its silence bound, at most
    ``heartbeat_timeout_max``, and a, left with no path to c, sees
    nodedown for c, with reason no_route."""
    ln, (a, b, c) = line
    assert a.eval(f"net_adm:ping('{c.node}').") == "pong"
    a.eval(f"persistent_term:put(pd_down, pd_agent:collect_nodedown('{c.node}')).")
    b_before = port_stats(b).get(b"links_down_heartbeat_timeout", 0)
    cut_at = time.time()
    ln.net.set_link(2, False)
    got: Any = a.eval("persistent_term:get(pd_down) ! {get, self()}, "
                      "receive {nodedown, R} -> R after 30000 -> timeout end.", timeout=40)
    assert got != "timeout"
    down_us, reason = got
    assert reason == ("py_dist", "no_route")
    assert port_stats(b).get(b"links_down_heartbeat_timeout", 0) == b_before + 1
    # b's silence bound for the link, plus a beat (heartbeats and the
    # check run on beats), plus the link-state packet's way over hop 1:
    # its delay and jitter, and a second for TCP to repair a loss on it
    bound = (HEARTBEAT_TIMEOUT_MAX_MS + HEARTBEAT_INTERVAL_MS + DELAY_MS + JITTER_MS) / 1000 + 1
    took = down_us / 1e6 - cut_at
    print(f"a saw c down {took:.2f} s after the cut (bound {bound:.2f} s)")
    assert 0 < took <= bound


def test_a_long_fat_path_grows_the_in_flight_budget(tmp_path_factory: pytest.TempPathFactory
                                                    ) -> None:
    """A clean line of 400 ms round trip a -> c: a stream over it grows
    the connection's in-flight budget past ``inflight_bytes`` (which
    alone would cap it at 512 KiB per round trip), from the round trip
    it measured; no frame is sent twice (the retransmission timeout
    follows the round trip, and the budget does not queue past it)."""
    reason = netns.unavailable() or impair.unavailable()
    if reason is not None:
        pytest.skip(reason)
    d = tmp_path_factory.mktemp("longpath")
    with ImpairedLine(0.0, DELAY_MS, 0, log_dir=d) as ln, Cluster(d / "cluster") as cl:
        a, _, c = ln.start_py(cl)
        inflight = 512 * 1024  # the default inflight_bytes
        mbs = throughput(a, c, 8.0)
        budget, min_rtt = channel_budget(a, c)
        print(f"a -> c over 4 x {DELAY_MS} ms: {mbs:.1f} MB/s, "
              f"budget {budget} B, min rtt {min_rtt} us")
        counts = port_stats(a)
        assert min_rtt >= 4 * DELAY_MS * 1000
        assert budget > inflight
        assert counts.get(b"resend_timeouts", 0) == 0
        assert counts.get(b"retransmitted", 0) == 0


def test_a_slow_link_keeps_the_budget_at_its_bandwidth_delay_product(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    """A line limited to 10 Mbit/s each way, 50 ms a hop: the budget
    follows what the path delivers, not its delay alone (which would let
    16 MiB, 13 s of this link, wait in queues ahead of every small
    message and past the retransmission timeout); no frame goes twice."""
    reason = netns.unavailable() or impair.unavailable()
    if reason is not None:
        pytest.skip(reason)
    mbit, delay_ms = 10, 50
    d = tmp_path_factory.mktemp("slowlink")
    with ImpairedLine(0.0, delay_ms, 0, rate_mbit=mbit, log_dir=d) as ln, \
            Cluster(d / "cluster") as cl:
        a, _, c = ln.start_py(cl, "-py_dist", "resend_timeout", "1000")
        mbs = throughput(a, c, 8.0)
        budget, min_rtt = channel_budget(a, c)
        print(f"a -> c at {mbit} Mbit/s: {mbs:.2f} MB/s, budget {budget} B, "
              f"min rtt {min_rtt} us")
        product = mbit * 1e6 / 8 * min_rtt / 1e6
        # twice the product (the budget's gain), with room for a rate
        # sample over a burst; far below the 16 MiB a delay alone would give
        assert budget <= max(512 * 1024, 4 * product)
        assert port_stats(a).get(b"resend_timeouts", 0) == 0
