"""What the benchmarks share: a case and how to measure it, running cases
on pairs of nodes in turn, and the table that compares two of them.

Each benchmark module builds on this one, and none on another's top.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass

import click

from pydist_tools.cluster import Cluster, ErlNode

PROTOS = ("inet_tcp", "py")


@dataclass(frozen=True)
class Case:
    name: str
    unit: str
    higher_is_better: bool


Measure = Callable[[ErlNode, ErlNode, float], list[float]]


def throughput(size: int, senders: int, per: str) -> Measure:
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


def rtt(src: ErlNode, dst: ErlNode, seconds: float) -> list[float]:
    """p50 and p99 of one set of round trips."""
    samples = src.eval(f"pd_agent:rtt('{dst.node}', {int(seconds * 3000)}).",
                       timeout=seconds * 20 + 60)
    return [quantile(samples, q) for q in (0.5, 0.99)]


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
