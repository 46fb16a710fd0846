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

from pydist.bench import Case, Measure, Rows, alternate, carrier_pairs, compare, quantile
from pydist.cluster import Cluster, ErlNode

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
