"""The performance issue's figures from one run, each beside its goal: the
carriers' cases, the stages a large message crosses (alone), and the
round trips behind 64 MiB streams with the floor no scheduler of one
connection can beat (``pydist bench --part performance``).

One run, so that the machine's load of the moment weighs on every figure
alike: on a shared two-core machine a stock figure swings 2x between
runs, and a ratio is only worth something against figures of its own run.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydist_tools import bench, bench_ceilings, bench_lanes
from pydist_tools.bench_ceilings import Ceiling, Stage
from pydist_tools.measure import Case, Rows


@dataclass
class Figures:
    carriers: Rows
    ceilings: dict[Stage, Ceiling]
    #: the carriers' large-message cases, measured beside the stages
    large: Rows
    lanes: Rows
    #: py_dist's round trips with the streams sent to another node
    floor: dict[str, float]


#: (case, goal as a ratio py_dist / stock, or None: compare with the last run)
GOALS: list[tuple[str, float | None]] = [
    ("64 MiB msgs", 1.0),
    ("1 MiB msgs", 0.5),
    ("100 B msgs, 1 sender", 2.9),
    ("100 B msgs, 8 senders", None),
    ("round trip p50", None),
]
HOL_GOAL = 10.0
HOL_CASE = "round trip p99 behind streams"


def run(seconds: float = 2.0, rounds: int = 3) -> Figures:
    carriers = bench.run(seconds, rounds)
    ceilings, large = bench_ceilings.run(seconds, rounds)
    lanes = bench_lanes.run(seconds, rounds)
    return Figures(carriers, ceilings, large, lanes, bench_lanes.floor())


def _ratio(rows: Rows, name: str) -> float:
    """How many times better py_dist is than stock in case ``name``."""
    case, values = _row(rows, name)
    stock, py = values["inet_tcp"], values["py"]
    return py / stock if case.higher_is_better else stock / py


def _row(rows: Rows, name: str) -> tuple[Case, dict[str, float]]:
    return next((c, v) for c, v in rows if c.name == name)


def table(f: Figures) -> str:
    lines = ["carriers\n", bench.table(f.carriers),
             "\nstages alone, and the large-message cases beside them\n",
             bench_ceilings.table(f.ceilings, f.large),
             f"\nhead-of-line: round trips while {bench_lanes.STREAMERS} processes stream "
             f"{bench_lanes.STREAM >> 20} MiB messages to the pinged node\n",
             bench_lanes.table(f.lanes),
             "\ntargets (ratio: how many times better py_dist is than stock)\n",
             "| case | goal | measured | met |", "|---|---:|---:|---|"]
    for name, goal in GOALS:
        ratio = _ratio(f.carriers, name)
        if goal is None:
            lines.append(f"| {name} | as before | {ratio:.2f}x | compare |")
        else:
            lines.append(f"| {name} | {goal:.1f}x | {ratio:.2f}x | "
                         f"{'yes' if ratio >= goal else 'no'} |")
    hol = _ratio(f.lanes, HOL_CASE)
    stock_p99 = _row(f.lanes, HOL_CASE)[1]["inet_tcp"]
    best = stock_p99 / f.floor["other p99"]
    lines.append(f"| {HOL_CASE} | {HOL_GOAL:.0f}x | {hol:.2f}x | "
                 f"{'yes' if hol >= HOL_GOAL else 'no'} |")
    lines.append(f"\nfloor of head-of-line: with the streams sent to a third node (same "
                 f"BEAMs and port programs busy, the pinged connection empty) py_dist's p99 "
                 f"is {f.floor['other p99']:,.0f} us, {best:.2f}x better than stock's "
                 f"{stock_p99:,.0f} us behind the streams: the most any scheduling of the "
                 f"connection could reach here (same-connection p99 in that run: "
                 f"{f.floor['same p99']:,.0f} us)")
    return "\n".join(lines)
