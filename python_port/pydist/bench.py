"""Benchmark: py_dist against stock ``inet_tcp_dist`` in the same run.

Not a test: numbers from this shared, noisy 2-core machine vary between
runs; the ratios of one run are what to compare.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import click
import zmq

from pydist.cluster import Cluster, ErlNode

PROTOS = ("inet_tcp", "py")


@dataclass(frozen=True)
class Case:
    name: str
    unit: str
    higher_is_better: bool


Measure = Callable[[ErlNode, ErlNode, float], list[float]]


def _throughput(size: int, senders: int, per: str) -> Measure:
    def measure(src: ErlNode, dst: ErlNode, seconds: float) -> list[float]:
        src.eval(f"persistent_term:put(sink, rpc:call('{dst.node}', pd_agent, sink, [])).")
        msgs, nbytes, micros = src.eval(
            f"pd_agent:throughput(persistent_term:get(sink), {size}, {senders}, "
            f"{int(seconds * 1000)}).", timeout=seconds + 120)
        return [float(msgs / micros * 1e6 if per == "msg" else nbytes / micros)]
    return measure


def quantile(samples: list[float], q: float) -> float:
    """The ``q`` quantile of ``samples`` (sorted here), nearest rank below."""
    ordered = sorted(samples)
    return float(ordered[min(len(ordered) - 1, int(len(ordered) * q))])


def _rtt(src: ErlNode, dst: ErlNode, seconds: float) -> list[float]:
    """p50 and p99 of one set of round trips."""
    samples = src.eval(f"pd_agent:rtt('{dst.node}', {int(seconds * 3000)}).",
                       timeout=seconds * 20 + 60)
    return [quantile(samples, q) for q in (0.5, 0.99)]


def _setup(src: ErlNode, dst: ErlNode, seconds: float) -> list[float]:
    times = src.eval(f"""
        [begin
             true = erlang:disconnect_node('{dst.node}'),
             timer:sleep(20),
             {{T, pong}} = timer:tc(net_adm, ping, ['{dst.node}']),
             T
         end || _ <- lists:seq(1, {max(5, int(seconds * 10))})].
    """, timeout=120)
    return [float(statistics.median(list(times)))]


_fresh = 0


def _first_connect(src: ErlNode, dst: ErlNode, seconds: float) -> list[float]:
    """A connection to a node never talked to: lookup, link and handshake."""
    global _fresh
    times = []
    for _ in range(3):
        _fresh += 1
        node = src.cluster.start(f"bench_new_{_fresh}_{src.proto.replace('_', '')}",
                                 proto=src.proto)
        node.eval("timer:sleep(200).")  # let both kinds of node finish booting alike
        micros, result = src.eval(f"timer:tc(net_adm, ping, ['{node.node}']).")
        assert result == "pong"
        times.append(float(micros))
        node.stop()
        src.cluster.nodes.remove(node)
    return [float(statistics.median(times))]


CASES: list[tuple[list[Case], Measure]] = [
    ([Case("100 B msgs, 1 sender", "msg/s", True)], _throughput(100, 1, "msg")),
    ([Case("100 B msgs, 8 senders", "msg/s", True)], _throughput(100, 8, "msg")),
    ([Case("1 MiB msgs", "MB/s", True)], _throughput(1 << 20, 1, "byte")),
    ([Case("64 MiB msgs", "MB/s", True)], _throughput(64 << 20, 1, "byte")),
    ([Case("round trip p50", "us", False), Case("round trip p99", "us", False)], _rtt),
    ([Case("reconnect (disconnect, ping)", "us", False)], _setup),
    ([Case("first connection to a new node", "us", False)], _first_connect),
]


Rows = list[tuple[Case, dict[str, float]]]


def alternate(cases: list[tuple[list[Case], Measure]],
              pairs: dict[str, tuple[ErlNode, ErlNode]], seconds: float, rounds: int) -> Rows:
    """Each case, ``rounds`` times, taking the pairs of nodes in turn;
    medians per case and pair. All pairs are up for the whole run, so a
    burst of load on this shared machine hits them alike."""
    samples: dict[Case, dict[str, list[float]]] = {
        c: {tag: [] for tag in pairs} for cs, _ in cases for c in cs}
    for cs, measure in cases:
        for round_ in range(rounds):
            for tag, (src, dst) in pairs.items():
                for case, value in zip(cs, measure(src, dst, seconds), strict=True):
                    samples[case][tag].append(value)
                    click.echo(f"  {tag:>10}  {case.name:<28} round {round_ + 1}: "
                               f"{value:>14,.1f} {case.unit}", err=True)
    return [(c, {tag: statistics.median(v) for tag, v in by.items()})
            for c, by in samples.items()]


def compare(rows: Rows, base: str, other: str, titles: tuple[str, str, str]) -> str:
    """A markdown table of ``other`` against ``base``; the ratio says how
    many times better ``other`` is (rates other/base, times base/other)."""
    base_title, other_title, ratio_title = titles
    lines = [f"| case | unit | {base_title} | {other_title} | {ratio_title} |",
             "|---|---|---:|---:|---:|"]
    for case, values in rows:
        was, now = values[base], values[other]
        better = now / was if case.higher_is_better else was / now
        lines.append(f"| {case.name} | {case.unit} | {was:,.1f} | {now:,.1f} | {better:.2f}x |")
    return "\n".join(lines)


def carrier_pairs(cluster: Cluster, prefix: str) -> dict[str, tuple[ErlNode, ErlNode]]:
    """A connected pair of nodes of each carrier, by carrier."""
    pairs = {}
    for proto in PROTOS:
        tag = "py" if proto == "py" else "tcp"
        src = cluster.start(f"{prefix}_src_{tag}", proto=proto)
        dst = cluster.start(f"{prefix}_dst_{tag}", proto=proto)
        assert src.eval(f"net_adm:ping('{dst.node}').") == "pong"
        pairs[proto] = (src, dst)
    return pairs


def run(seconds: float = 2.0, rounds: int = 3) -> Rows:
    """Each case, ``rounds`` times, alternating the carriers; medians."""
    with Cluster() as cluster:
        return alternate(CASES, carrier_pairs(cluster, "bench"), seconds, rounds)


def table(rows: Rows) -> str:
    return compare(rows, "inet_tcp", "py", ("inet_tcp", "py_dist", "py vs inet_tcp"))


_ECHO = """
import sys, zmq
sock = zmq.Context().socket(zmq.ROUTER)
port = sock.bind_to_random_port("tcp://127.0.0.1")
print(port, flush=True)
while True:
    sock.send_multipart(sock.recv_multipart())
"""


def zmq_floor(count: int = 5000) -> tuple[float, float]:
    """Round trip p50 and p99 (us) of 100-byte ZeroMQ messages between two
    Python processes on loopback, nothing else: the least a round trip
    through two port programs costs on this machine, before any BEAM, pipe,
    protocol or encryption."""
    echo = subprocess.Popen([sys.executable, "-c", _ECHO], stdout=subprocess.PIPE, text=True)
    ctx = zmq.Context()
    try:
        assert echo.stdout is not None
        sock = ctx.socket(zmq.DEALER)
        sock.connect(f"tcp://127.0.0.1:{int(echo.stdout.readline())}")
        samples = []
        for _ in range(count):
            start = time.perf_counter()
            sock.send(b"x" * 100)
            sock.recv()
            samples.append((time.perf_counter() - start) * 1e6)
        return quantile(samples, 0.5), quantile(samples, 0.99)
    finally:
        ctx.destroy(linger=0)
        echo.kill()
        echo.wait()
