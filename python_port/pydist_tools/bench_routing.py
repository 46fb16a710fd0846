"""Benchmark of routing: a 2-hop route against a direct py_dist link, in
the same run, and how long traffic stops when a link on the path goes.

Not a test: numbers from this shared 2-core machine vary between runs
(and on it the middle node competes for the same two cores).
"""

from __future__ import annotations

import os
import signal
import statistics
import time

import click

from pydist_tools.cluster import HOST, Cluster, ErlNode, wait_routes
from pydist_tools.measure import Case, Measure, Rows, alternate, compare, rtt, throughput

CASES: list[tuple[list[Case], Measure]] = [
    ([Case("100 B msgs, 1 sender", "msg/s", True)], throughput(100, 1, "msg")),
    ([Case("1 MiB msgs", "MB/s", True)], throughput(1 << 20, 1, "byte")),
    ([Case("64 MiB msgs", "MB/s", True)], throughput(64 << 20, 1, "byte")),
    ([Case("round trip p50", "us", False), Case("round trip p99", "us", False)], rtt),
]


def _neighbours(*nodes: str) -> tuple[str, ...]:
    return ("-py_dist", "neighbours", "[" + ", ".join(f"'{n}@{HOST}'" for n in nodes) + "]")


def run(seconds: float = 2.0, rounds: int = 3) -> Rows:
    """Each case on a direct link and on a route through one node in the
    middle, alternating; medians."""
    with Cluster() as cluster:
        d_src = cluster.start("bd_src", *_neighbours("bd_dst"))
        d_dst = cluster.start("bd_dst")
        r_src = cluster.start("br_src", *_neighbours("br_mid"))
        cluster.start("br_mid", *_neighbours("br_dst"))
        r_dst = cluster.start("br_dst")
        wait_routes(d_src, 1)
        wait_routes(r_src, 2)
        pairs = {"direct": (d_src, d_dst), "routed": (r_src, r_dst)}
        for src, dst in pairs.values():
            assert src.eval(f"net_adm:ping('{dst.node}').") == "pong"
        return alternate(CASES, pairs, seconds, rounds)


def reroute(rounds: int = 3) -> dict[str, float]:
    """A ring of four: the time from losing the link in use to a ping that
    gets through the other way round (a new connection, since frames may
    have been lost). Two ways to lose it: ``py_dist:unlink/1`` (the far
    end is told) and the middle node's port program frozen (SIGSTOP: only
    heartbeats find out). Medians in milliseconds."""
    times: dict[str, list[float]] = {"unlink": [], "silent": []}
    with Cluster() as cluster:
        ring = [cluster.start(f"rr{i}", *_neighbours(f"rr{(i + 1) % 4}")) for i in range(4)]
        for node in ring:
            wait_routes(node, 3, degree=2)
        src, mid, dst = ring[0], ring[1], ring[2]  # rr0 reaches rr2 via rr1: a tie, by name

        def until_pong() -> float:
            start = time.monotonic()
            assert src.eval(f"""
                P = fun L(K) -> case net_adm:ping('{dst.node}') of
                                    pong -> ok;
                                    pang when K > 0 -> timer:sleep(5), L(K - 1)
                                end end,
                P(2000).""", timeout=60) == "ok"
            return (time.monotonic() - start) * 1000

        for round_ in range(rounds):
            assert src.eval(f"net_adm:ping('{dst.node}').") == "pong"
            assert src.eval(f"py_dist:unlink('{mid.node}').") == "ok"
            times["unlink"].append(until_pong())
            assert src.eval(f"py_dist:link('{mid.node}').") == "ok"
            _wait_until_via(src, dst, mid)
            click.echo(f"  reroute after unlink, round {round_ + 1}: "
                       f"{times['unlink'][-1]:,.0f} ms", err=True)

            assert src.eval(f"net_adm:ping('{dst.node}').") == "pong"
            assert mid.port_pid is not None
            os.kill(mid.port_pid, signal.SIGSTOP)
            try:
                times["silent"].append(until_pong())
            finally:
                os.kill(mid.port_pid, signal.SIGCONT)
            for node in ring:
                wait_routes(node, 3, degree=2)
            _wait_until_via(src, dst, mid)
            click.echo(f"  reroute after a silent failure, round {round_ + 1}: "
                       f"{times['silent'][-1]:,.0f} ms", err=True)
    return {k: statistics.median(v) for k, v in times.items()}


def _wait_until_via(src: ErlNode, dst: ErlNode, via: ErlNode) -> None:
    """Until src routes to dst through via again (the ring has healed)."""
    for _ in range(400):
        routes = src.eval("py_dist:routes().")
        if any(r["dest"] == dst.node.encode() and r["via"] == via.node.encode()
               for r in routes):
            return
        time.sleep(0.05)
    raise AssertionError(f"{src.node} does not route to {dst.node} via {via.node} again: "
                         f"{src.eval('py_dist:neighbours().')} {src.eval('py_dist:topology().')}")


def table(rows: Rows) -> str:
    return compare(rows, "direct", "routed", ("direct", "2 hops", "routed vs direct"))
