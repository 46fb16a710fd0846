"""Benchmark of head-of-line blocking: small round trips while other
processes stream 64 MiB messages to the same node, py_dist against
``inet_tcp_dist`` in the same run.

Stock distribution sends a connection's bytes in the order the runtime
queued them, so a ping waits behind whatever of the stream is queued
ahead of it (the runtime's queue, the socket buffers). py_dist schedules a
connection's traffic per sending process: the ping goes between two
batches of the stream.
"""

from __future__ import annotations

from pydist_tools.cluster import Cluster, ErlNode
from pydist_tools.measure import Case, Measure, Rows, alternate, carrier_pairs, compare, quantile

STREAM = 64 << 20
STREAMERS = 2


def _behind_stream(src: ErlNode, dst: ErlNode, seconds: float) -> list[float]:
    idle = src.eval(f"pd_agent:rtt('{dst.node}', 300).")
    count = max(100, int(seconds * 250))
    rtts, nbytes, micros = src.eval(
        f"pd_agent:head_of_line('{dst.node}', {STREAM}, {STREAMERS}, {count}).",
        timeout=600)
    return [quantile(idle, 0.5), quantile(rtts, 0.5), quantile(rtts, 0.99),
            float(max(rtts)), nbytes / micros]


CASES: list[tuple[list[Case], Measure]] = [
    ([Case("idle round trip p50", "us", False),
      Case("round trip p50 behind streams", "us", False),
      Case("round trip p99 behind streams", "us", False),
      Case("round trip max behind streams", "us", False),
      Case("stream throughput meanwhile", "MB/s", True)], _behind_stream),
]


def run(seconds: float = 2.0, rounds: int = 3) -> Rows:
    with Cluster() as cluster:
        return alternate(CASES, carrier_pairs(cluster, "hol"), seconds, rounds)


def table(rows: Rows) -> str:
    return compare(rows, "inet_tcp", "py", ("inet_tcp", "py_dist", "py vs inet_tcp"))


def floor(count: int = 1000) -> dict[str, float]:
    """py_dist's round trips a -> b while the streams go from a to a third
    node c instead: the same BEAMs and port programs as busy, the pinged
    connection empty. What no scheduling of one connection can beat on
    this machine; beside it, the same run with the streams to b."""
    with Cluster() as cluster:
        a, b, c = (cluster.start(f"floor_{n}") for n in "abc")
        for node in (b, c):
            assert a.eval(f"net_adm:ping('{node.node}').") == "pong"
        other = a.eval(f"""
            Echo = rpc:call('{b.node}', pd_agent, echo, []),
            Sink = rpc:call('{c.node}', pd_agent, sink, []),
            Bin = binary:copy(<<7>>, {STREAM}),
            Pids = [spawn(fun S() -> Sink ! {{data, Bin}}, S() end)
                    || _ <- lists:seq(1, {STREAMERS})],
            timer:sleep(300),
            R = pd_agent:pinger(Echo, {count}),
            [exit(P, kill) || P <- Pids],
            R.""", timeout=600)
        same = a.eval(f"pd_agent:head_of_line('{b.node}', {STREAM}, {STREAMERS}, {count}).",
                      timeout=600)[0]
        return {"other p50": quantile(other, 0.5), "other p99": quantile(other, 0.99),
                "same p50": quantile(same, 0.5), "same p99": quantile(same, 0.99)}
