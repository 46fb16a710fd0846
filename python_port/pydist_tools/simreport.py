"""What the simulator (:mod:`pydist_tools.simulate`) measured, and how it
says so: one table per run, one across sizes, and the plot."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from pydist_tools import simplot
from pydist_tools.simtruth import DEAD, HOLE, LOOP, Transients


@dataclass
class Episode:
    """One event and what followed until the routes settled."""

    what: str
    #: simulated seconds from the event until every table was right (None: never)
    converged: float | None
    #: simulated seconds until the first, and the last, node that lost a
    #: neighbour dropped it (the heartbeats noticing; None: nothing was lost)
    detected: float | None
    detected_last: float | None
    route_computations: int
    #: wall seconds in the node calls that recomputed routes
    route_wall: float
    #: messages the nodes sent, and their bytes, by frame kind
    messages: dict[str, int]
    bytes: dict[str, int]
    inputs: int
    wall: float
    #: loops and holes seen while the tables settled
    transients: Transients = field(default_factory=Transients)


@dataclass
class Result:
    nodes: int
    topology: str
    links: int
    seed: int
    episodes: list[Episode] = field(default_factory=list)
    #: at rest: simulated seconds, and per node per simulated second by kind
    rest_seconds: float = 0.0
    rest_messages: dict[str, float] = field(default_factory=dict)
    rest_bytes: dict[str, float] = field(default_factory=dict)
    rest_route_computations: int = 0
    lsps_per_node: tuple[int, int] = (0, 0)
    lsdb_bytes: int = 0
    summary_bytes: int = 0
    #: wall seconds of one shortest-path run over a full database
    spf_wall: float = 0.0
    #: timer runs that left the node due again at once (see SimNet.spins)
    timer_spins: int = 0
    wall: float = 0.0
    #: CPU seconds of this process: about the wall time on an idle machine
    cpu: float = 0.0
    #: convergence times (simulated s) of repeated events, by kind
    percentiles: dict[str, list[float]] = field(default_factory=dict)
    #: (source, destination) pairs whose frames were followed while tables settled
    sampled_pairs: int = 0

    def simulated(self) -> dict[str, Any]:
        """Everything but the machine's times: equal for equal seeds."""
        def strip(value: Any) -> Any:
            if isinstance(value, dict):
                return {k: strip(v) for k, v in value.items()
                        if "wall" not in k and k != "cpu"}
            if isinstance(value, list):
                return [strip(v) for v in value]
            return value
        return dict(strip(dataclasses.asdict(self)))

    def table(self) -> str:
        n = self.nodes
        lines = [f"{self.nodes} nodes, {self.topology}, {self.links} links, seed {self.seed}",
                 "",
                 f"{'event':<16}{'converged':>10}{'detected':>13}{'then':>8}{'route comps':>12}"
                 f"{'/node':>7}{'ms/comp':>8}{'comp s':>8}{'LSP msgs':>12}{'/node':>8}"
                 f"{'kB/node':>8}{'inputs':>12}{'wall s':>8}"]
        for e in self.episodes:
            comps = e.route_computations
            lines.append(
                f"{e.what:<16}{ms(e.converged):>10}"
                f"{_span(e.detected, e.detected_last):>13}{_after(e):>8}"
                f"{comps:>12,}{comps / n:>7.1f}"
                f"{1000 * e.route_wall / max(comps, 1):>8.2f}{e.route_wall:>8.1f}"
                f"{e.messages.get('LSP', 0):>12,}{e.messages.get('LSP', 0) / n:>8.1f}"
                f"{sum(e.bytes.values()) / n / 1000:>8.1f}{e.inputs:>12,}{e.wall:>8.1f}")
        lines += ["", "converged, detected: simulated, from the event (detected: the first "
                  "and the last end noticing); then: from the last",
                  "detection to convergence (flooding, the back-off, route computation); "
                  "ms/comp, comp s: wall time of the node calls that recomputed routes"]
        lines += ["", f"while the tables settled, frames followed from every node to a sample "
                  f"of destinations ({self.sampled_pairs:,} pairs; at most at once, and for "
                  "how long any was so):",
                  f"  {'event':<16}{'loops':>20}{'holes':>20}{'into a failure':>20}"]
        for e in self.episodes:
            t = e.transients
            lines.append(f"  {e.what:<16}" + "".join(
                f"{_transient(t, state):>20}" for state in (LOOP, HOLE, DEAD)))
        lines += ["  holes: a node on the way has no route though the destination is "
                  "reachable; into a failure: sent into a link or node that failed, "
                  "before the sender noticed"]
        lines += ["", f"at rest, {self.rest_seconds:g} simulated s, per node per second "
                  f"({self.rest_route_computations} route computations in all):",
                  f"  {'kind':<10}{'messages':>10}{'bytes':>10}"]
        for kind in sorted(self.rest_messages, key=lambda k: -self.rest_bytes[k]):
            lines.append(f"  {kind:<10}{self.rest_messages[kind]:>10.2f}"
                         f"{self.rest_bytes[kind]:>10,.0f}")
        lines.append(f"  {'all':<10}{sum(self.rest_messages.values()):>10.2f}"
                     f"{sum(self.rest_bytes.values()):>10,.0f}")
        for what, times in self.percentiles.items():
            if times:
                ordered = sorted(times)
                p50 = ordered[len(ordered) // 2]
                p99 = ordered[min(len(ordered) - 1, (99 * len(ordered)) // 100)]
                lines.append(f"{what}, {len(ordered)} events: p50 {ms(p50)}, "
                             f"p99 {ms(p99)}, worst {ms(ordered[-1])}")
        low, high = self.lsps_per_node
        lines += ["", f"link-state database per node: {low}..{high} LSPs, "
                  f"{self.lsdb_bytes:,} bytes encoded; a summary is {self.summary_bytes:,} bytes",
                  f"one shortest-path run over it: {1000 * self.spf_wall:.2f} ms wall",
                  f"timer runs that left the node due again at once: {self.timer_spins:,}",
                  f"wall time of the run: {self.wall:.1f} s ({self.cpu:.1f} s CPU)"]
        return "\n".join(lines)


def _transient(t: Transients, state: str) -> str:
    most = t.most[state]
    return "none" if not most else f"{most:,} for {ms(t.lasted[state])}"


def ms(seconds: float | None) -> str:
    return "never" if seconds is None else f"{1000 * seconds:,.0f} ms"


def _after(e: Episode) -> str:
    if e.converged is None or e.detected_last is None:
        return "-"
    return ms(max(0.0, e.converged - e.detected_last))


def _span(first: float | None, last: float | None) -> str:
    if first is None or last is None:
        return "-"
    if round(1000 * first) == round(1000 * last):
        return ms(first)
    return f"{1000 * first:,.0f}..{ms(last)}"


def _converged(episodes: dict[str, Episode], what: str) -> str:
    return ms(episodes[what].converged) if what in episodes else "-"


def sweep_table(results: list[Result]) -> str:
    """One line per size: what the issue asks to see against cluster size."""
    head = (f"{'nodes':>6}{'links':>7}{'cold start':>11}{'link fail':>10}{'detect':>8}"
            f"{'link back':>10}{'node fail':>10}{'split':>8}{'healed':>8}{'ms/comp':>8}"
            f"{'comps/node':>11}"
            f"{'rest msg/s':>11}{'rest B/s':>9}{'churn B/s':>10}{'LSDB kB':>8}{'wall s':>8}")
    lines = [head]
    for r in results:
        e = {ep.what: ep for ep in r.episodes}
        comps = sum(ep.route_computations for ep in r.episodes)
        wall = sum(ep.route_wall for ep in r.episodes)
        churn = [ep for ep in r.episodes if ep.what != "cold start" and ep.converged]
        churn_bytes = (sum(sum(ep.bytes.values()) for ep in churn)
                       / max(sum(ep.converged or 0.0 for ep in churn), 1e-9) / r.nodes)
        lines.append(
            f"{r.nodes:>6,}{r.links:>7,}{ms(e['cold start'].converged):>11}"
            f"{ms(e['link failure'].converged):>10}{ms(e['link failure'].detected_last):>8}"
            f"{ms(e['link back'].converged):>10}{ms(e['node failure'].converged):>10}"
            f"{_converged(e, 'partition'):>8}{_converged(e, 'partition heals'):>8}"
            f"{1000 * wall / max(comps, 1):>8.2f}{comps / r.nodes:>11.1f}"
            f"{sum(r.rest_messages.values()):>11.1f}{sum(r.rest_bytes.values()):>9,.0f}"
            f"{churn_bytes:>10,.0f}{r.lsdb_bytes / 1000:>8.1f}{r.wall:>8.0f}")
    lines += ["", "times simulated but ms/comp (wall, per route computation) and wall s; "
              "churn B/s: bytes per node per simulated second from each failure to its "
              "convergence"]
    return "\n".join(lines)


def plot(results: list[Result]) -> str:
    sizes = [r.nodes for r in results]

    def conv(what: str) -> list[float | None]:
        out: list[float | None] = []
        for r in results:
            ep = next(ep for ep in r.episodes if ep.what == what)
            out.append(None if ep.converged is None else 1000 * ep.converged)
        return out
    convergence = [(what, conv(what)) for what in
                   ("cold start", "link failure", "link back", "node failure")]
    traffic: list[simplot.Series] = [
        ("all", [sum(r.rest_bytes.values()) for r in results]),
        *((kind, [r.rest_bytes.get(kind, 0.0) for r in results])
          for kind in sorted({k for r in results for k in r.rest_bytes}))]
    first = results[0]
    caption = (f"py_dist routing core, simulated: {first.topology}, seed {first.seed}; "
               "convergence checked against true shortest paths")
    return simplot.svg(sizes, convergence, traffic, caption)


