"""Benchmark: py_dist against stock ``inet_tcp_dist`` in the same run.

Not a test: numbers from this shared, noisy 2-core machine vary between
runs; the ratios of one run are what to compare.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass

import click

from pydist.cluster import Cluster, ErlNode

PROTOS = ("inet_tcp", "py")


@dataclass(frozen=True)
class Case:
    name: str
    unit: str
    higher_is_better: bool
    measure: Callable[[ErlNode, ErlNode, float], float]


def _throughput(size: int, senders: int, per: str) -> Callable[[ErlNode, ErlNode, float], float]:
    def measure(src: ErlNode, dst: ErlNode, seconds: float) -> float:
        src.eval(f"persistent_term:put(sink, rpc:call('{dst.node}', pd_agent, sink, [])).")
        msgs, nbytes, micros = src.eval(
            f"pd_agent:throughput(persistent_term:get(sink), {size}, {senders}, "
            f"{int(seconds * 1000)}).", timeout=seconds + 120)
        return float(msgs / micros * 1e6 if per == "msg" else nbytes / micros)
    return measure


_rtt_samples: dict[str, list[int]] = {}


def _rtt(quantile: float) -> Callable[[ErlNode, ErlNode, float], float]:
    """Quantiles of one set of round trips per pair of nodes."""
    def measure(src: ErlNode, dst: ErlNode, seconds: float) -> float:
        if src.node not in _rtt_samples:
            _rtt_samples[src.node] = sorted(src.eval(
                f"pd_agent:rtt('{dst.node}', {int(seconds * 3000)}).",
                timeout=seconds * 20 + 60))
        samples = _rtt_samples[src.node]
        return float(samples[min(len(samples) - 1, int(len(samples) * quantile))])
    return measure


def _setup(src: ErlNode, dst: ErlNode, seconds: float) -> float:
    times = src.eval(f"""
        [begin
             true = erlang:disconnect_node('{dst.node}'),
             timer:sleep(20),
             {{T, pong}} = timer:tc(net_adm, ping, ['{dst.node}']),
             T
         end || _ <- lists:seq(1, {max(5, int(seconds * 10))})].
    """, timeout=120)
    return float(statistics.median(list(times)))


CASES = [
    Case("100 B msgs, 1 sender", "msg/s", True, _throughput(100, 1, "msg")),
    Case("100 B msgs, 8 senders", "msg/s", True, _throughput(100, 8, "msg")),
    Case("1 MiB msgs", "MB/s", True, _throughput(1 << 20, 1, "byte")),
    Case("64 MiB msgs", "MB/s", True, _throughput(64 << 20, 1, "byte")),
    Case("round trip p50", "us", False, _rtt(0.50)),
    Case("round trip p99", "us", False, _rtt(0.99)),
    Case("connection setup", "us", False, _setup),
]


def run(seconds: float = 3.0) -> list[tuple[Case, dict[str, float]]]:
    results: dict[str, dict[str, float]] = {c.name: {} for c in CASES}
    _rtt_samples.clear()
    with Cluster() as cluster:
        for proto in PROTOS:
            tag = "py" if proto == "py" else "tcp"
            src = cluster.start(f"bench_src_{tag}", proto=proto)
            dst = cluster.start(f"bench_dst_{tag}", proto=proto)
            assert src.eval(f"net_adm:ping('{dst.node}').") == "pong"
            for case in CASES:
                value = case.measure(src, dst, seconds)
                results[case.name][proto] = value
                click.echo(f"  {proto:>8}  {case.name:<24} {value:>14,.1f} {case.unit}",
                           err=True)
            src.stop()
            dst.stop()
    return [(c, results[c.name]) for c in CASES]


def ratio(case: Case, values: dict[str, float]) -> float:
    """How many times better py_dist is: > 1 means faster than inet_tcp."""
    py, tcp = values["py"], values["inet_tcp"]
    return py / tcp if case.higher_is_better else tcp / py


def table(rows: list[tuple[Case, dict[str, float]]]) -> str:
    lines = ["| case | unit | inet_tcp | py_dist | py vs inet_tcp |",
             "|---|---|---:|---:|---:|"]
    for case, values in rows:
        lines.append(f"| {case.name} | {case.unit} | {values['inet_tcp']:,.1f} | "
                     f"{values['py']:,.1f} | {ratio(case, values):.2f}x |")
    return "\n".join(lines)
