"""How the routing core scales: 100 to 1,000 simulated nodes.

Real clusters on one machine stop at a few dozen nodes, and their timings
mix the core with the scheduler. Here the unchanged core runs on the
simulated network of :mod:`pydist_tools.simnet`, and this module asks
what an operator would: from a cold start, after a link fails, after it
comes back and after a node fails, how long until every node routes along
a true shortest path of the live graph (checked against a Dijkstra of our
own, not the core's), how much of that is the heartbeats noticing, what
it costs in route computations and flooded messages, and what the link
state costs at rest.

Run: ``python -m pydist_tools.simulate --nodes 100 --topology regular
--degree 4 --seed 1``; progress goes to stderr, the table to stdout.
``--sweep 100,250,1000`` runs each size in turn, prints one table across
them and writes a plot (``--plot``, SVG) of convergence and control
traffic against the size. Simulated times depend only on the seed; wall
times on the machine.
"""

from __future__ import annotations

import dataclasses
import heapq
import logging
import math
import random
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import click

from pydist.core import lsdb, spf
from pydist.core.wire import Kind
from pydist_tools import simplot
from pydist_tools.simnet import Edge, Graph, SimNet, barabasi_albert, regular, ring_of_clusters

TOPOLOGIES = ("regular", "ba", "clusters")


# --- the truth -------------------------------------------------------------------

class Truth:
    """Shortest paths of the live graph, from every live node: what every
    node's table should say. Past ``max_hops`` a destination must be
    unreachable; where shortest paths of several lengths straddle the
    limit, the core's choice among them decides, and either is right."""

    def __init__(self, graph: Graph, alive: list[bool], max_hops: int) -> None:
        self.graph = [{} if not alive[u] else {v: c for v, c in nbrs.items() if alive[v]}
                      for u, nbrs in enumerate(graph)]
        count = len(graph)
        self.dist: list[list[float]] = [[] for _ in range(count)]
        #: per node: destinations past max_hops -> whether a route may be there
        self.limited: list[dict[int, bool]] = [{} for _ in range(count)]
        #: per node: how many destinations its table must hold
        self.must = [0] * count
        for s in range(count):
            if alive[s]:
                self._paths_from(s, max_hops)

    def _paths_from(self, s: int, max_hops: int) -> None:
        graph, count = self.graph, len(self.graph)
        dist = [math.inf] * count
        fewest, most = [0] * count, [0] * count  # links on the shortest paths
        dist[s] = 0
        heap = [(0.0, s)]
        while heap:
            d, u = heapq.heappop(heap)
            if d > dist[u]:
                continue
            for v, cost in graph[u].items():
                nd = d + cost
                if nd < dist[v]:
                    dist[v], fewest[v], most[v] = nd, fewest[u] + 1, most[u] + 1
                    heapq.heappush(heap, (nd, v))
                elif nd == dist[v]:
                    fewest[v] = min(fewest[v], fewest[u] + 1)
                    most[v] = max(most[v], most[u] + 1)
        self.dist[s] = dist
        for x in range(count):
            if x != s and dist[x] < math.inf:
                if most[x] <= max_hops:
                    self.must[s] += 1
                else:
                    self.limited[s][x] = fewest[x] <= max_hops

    def wrong(self, s: int, via: dict[bytes, bytes], index: dict[bytes, int]) -> bool:
        """Whether node ``s``'s table (destination -> neighbour) misses a
        destination, holds one it cannot reach, or sends one off a
        shortest path."""
        dist, mine, nbrs, limited = self.dist, self.dist[s], self.graph[s], self.limited[s]
        held = 0
        for dest, nbr in via.items():
            x, n = index.get(dest), index.get(nbr)
            if x is None or n is None or n not in nbrs or mine[x] == math.inf:
                return True
            if nbrs[n] + dist[n][x] != mine[x]:
                return True
            allowed = limited.get(x)
            if allowed is None:
                held += 1
            elif not allowed:
                return True
        return held != self.must[s]


class Tracker:
    """Which live nodes route wrongly, rechecked whenever one recomputes;
    when they last all became right; and when the nodes watched for a
    lost neighbour dropped it (the detection of a failure)."""

    def __init__(self, net: SimNet, truth: Truth) -> None:
        self.net = net
        self.wrong: set[int] = set()
        self.since: float | None = None
        self.watch: dict[int, bytes] = {}
        self.detected: list[float] = []
        self.reset(truth)
        net.on_routes = self.check

    def reset(self, truth: Truth) -> None:
        self.truth = truth
        net = self.net
        self.wrong = {i for i, node in enumerate(net.nodes)
                      if net.alive[i] and truth.wrong(i, node.router.via, net.index)}
        self.since = None if self.wrong else net.now
        self.watch, self.detected = {}, []

    def check(self, i: int) -> None:
        net = self.net
        router = net.nodes[i].router
        if self.truth.wrong(i, router.via, net.index):
            self.wrong.add(i)
            self.since = None
        elif i in self.wrong:
            self.wrong.discard(i)
            if not self.wrong:
                self.since = net.now
        lost = self.watch.get(i)
        if lost is not None and lost not in router.adjacent:
            del self.watch[i]
            self.detected.append(net.now)


# --- measurements ------------------------------------------------------------------

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
                 f"{'event':<13}{'converged':>10}{'detected':>13}{'then':>8}{'route comps':>12}"
                 f"{'/node':>7}{'ms/comp':>8}{'comp s':>8}{'LSP msgs':>10}{'/node':>7}"
                 f"{'kB/node':>8}{'inputs':>10}{'wall s':>8}"]
        for e in self.episodes:
            comps = e.route_computations
            lines.append(
                f"{e.what:<13}{_ms(e.converged):>10}"
                f"{_span(e.detected, e.detected_last):>13}{_after(e):>8}"
                f"{comps:>12,}{comps / n:>7.1f}"
                f"{1000 * e.route_wall / max(comps, 1):>8.2f}{e.route_wall:>8.1f}"
                f"{e.messages.get('LSP', 0):>10,}{e.messages.get('LSP', 0) / n:>7.1f}"
                f"{sum(e.bytes.values()) / n / 1000:>8.1f}{e.inputs:>10,}{e.wall:>8.1f}")
        lines += ["", "converged, detected: simulated, from the event (detected: the first "
                  "and the last end noticing); then: from the last",
                  "detection to convergence (flooding, the back-off, route computation); "
                  "ms/comp, comp s: wall time of the node calls that recomputed routes"]
        lines += ["", f"at rest, {self.rest_seconds:g} simulated s, per node per second "
                  f"({self.rest_route_computations} route computations in all):",
                  f"  {'kind':<10}{'messages':>10}{'bytes':>10}"]
        for kind in sorted(self.rest_messages, key=lambda k: -self.rest_bytes[k]):
            lines.append(f"  {kind:<10}{self.rest_messages[kind]:>10.2f}"
                         f"{self.rest_bytes[kind]:>10,.0f}")
        lines.append(f"  {'all':<10}{sum(self.rest_messages.values()):>10.2f}"
                     f"{sum(self.rest_bytes.values()):>10,.0f}")
        low, high = self.lsps_per_node
        lines += ["", f"link-state database per node: {low}..{high} LSPs, "
                  f"{self.lsdb_bytes:,} bytes encoded; a summary is {self.summary_bytes:,} bytes",
                  f"one shortest-path run over it: {1000 * self.spf_wall:.2f} ms wall",
                  f"timer runs that left the node due again at once: {self.timer_spins:,}",
                  f"wall time of the run: {self.wall:.1f} s ({self.cpu:.1f} s CPU)"]
        return "\n".join(lines)


def _ms(seconds: float | None) -> str:
    return "never" if seconds is None else f"{1000 * seconds:,.0f} ms"


def _after(e: Episode) -> str:
    if e.converged is None or e.detected_last is None:
        return "-"
    return _ms(max(0.0, e.converged - e.detected_last))


def _span(first: float | None, last: float | None) -> str:
    if first is None or last is None:
        return "-"
    if round(1000 * first) == round(1000 * last):
        return _ms(first)
    return f"{1000 * first:,.0f}..{_ms(last)}"


@dataclass(frozen=True)
class Scenario:
    nodes: int = 100
    topology: str = "regular"
    degree: int = 4
    attach: int = 2
    #: ring of clusters: how many (0: about sqrt(nodes) / 4, at least 3)
    clusters: int = 0
    seed: int = 1
    latency: float = 0.001
    jitter: float = 0.0
    loss: float = 0.0
    #: simulated seconds at rest to measure (a multiple of the refresh, 20 s)
    rest: float = 60.0
    #: simulated seconds the tables must stay right to count as converged
    settle: float = 1.0
    #: simulated seconds to wait for convergence before giving up
    limit: float = 120.0


def topology(s: Scenario, rng: random.Random) -> list[Edge]:
    """The scenario's undirected links, each with the end that dials first."""
    if s.topology == "regular":
        pairs = regular(s.nodes, s.degree, rng)
    elif s.topology == "ba":
        pairs = barabasi_albert(s.nodes, s.attach, rng)
    elif s.topology == "clusters":
        clusters = s.clusters or max(3, round(math.sqrt(s.nodes) / 4))
        pairs = ring_of_clusters(s.nodes, clusters, s.degree, rng)
    else:
        raise ValueError(f"unknown topology {s.topology!r}")
    return [(u, v) if rng.random() < 0.5 else (v, u) for u, v in pairs]


class Simulation:
    """A scenario's network and its truth, run a stage at a time."""

    def __init__(self, s: Scenario, progress: Callable[[str], None] | None = None) -> None:
        self.scenario = s
        self.say = progress or (lambda _: None)
        self.rng = random.Random(f"{s.seed}-scenario")
        self.edges = topology(s, self.rng)
        self.net = SimNet(s.nodes, seed=s.seed, latency=s.latency, jitter=s.jitter,
                          loss=s.loss)
        self.cost = self.net.config.link_cost  # both ends advertise it
        self.graph: Graph = [{} for _ in range(s.nodes)]
        for u, v in self.edges:
            self.graph[u][v] = self.graph[v][u] = self.cost
        self.tracker = Tracker(self.net, self.truth())

    def truth(self) -> Truth:
        net = self.net
        graph = [{v: c for v, c in nbrs.items() if (u, v) not in net.cut}
                 for u, nbrs in enumerate(self.graph)]
        return Truth(graph, net.alive, net.config.max_hops)

    def episode(self, what: str, event: Callable[[], dict[int, bytes]]) -> Episode:
        """Make the event happen (it says which nodes should drop which
        neighbour), then run until the tables are right and stay so."""
        net, tracker, s = self.net, self.tracker, self.scenario
        sent, sent_bytes = net.sent.copy(), net.sent_bytes.copy()
        comps, route_wall, inputs = sum(net.computations), net.route_wall, net.handled
        wall, start = time.perf_counter(), net.now
        watch = event()
        tracker.reset(self.truth())
        tracker.watch = watch
        self.say(f"{what}: {len(tracker.wrong)} of {sum(net.alive)} nodes route wrongly")
        converged = self._converge(start + s.limit, wall)
        found = [t - start for t in tracker.detected]
        e = Episode(what, None if converged is None else converged - start,
                    min(found, default=None), max(found, default=None),
                    sum(net.computations) - comps, net.route_wall - route_wall,
                    _by_name(net.sent - sent), _by_name(net.sent_bytes - sent_bytes),
                    net.handled - inputs, time.perf_counter() - wall)
        self.say(f"{what}: converged after {_ms(e.converged)} simulated, "
                 f"{e.route_computations:,} route computations, {e.wall:.1f} s wall")
        return e

    def _converge(self, deadline: float, wall: float) -> float | None:
        net, tracker, settle = self.net, self.tracker, self.scenario.settle

        said = [time.perf_counter()]

        def tick() -> None:
            if time.perf_counter() - said[0] >= 15:
                said[0] = time.perf_counter()
                self.say(f"  t={net.now:.3f} s simulated, {len(tracker.wrong)} nodes wrong, "
                         f"{net.handled:,} inputs, {sum(net.computations):,} route "
                         f"computations, {said[0] - wall:.0f} s wall")

        while net.now < deadline:
            since = tracker.since
            if since is None:
                net.run(deadline, lambda: tracker.since is not None, tick)
            else:
                stable = min(since + settle, deadline)
                net.run(stable, lambda: tracker.since is None, tick)
                if tracker.since is not None and net.now >= since + settle:
                    return tracker.since
        return None

    # --- the stages ------------------------------------------------------------

    def cold_start(self) -> Episode:
        def links() -> dict[int, bytes]:
            for u, v in self.edges:
                self.net.link(u, v, self.cost)
            return {}
        return self.episode("cold start", links)

    def fail_link(self, u: int, v: int) -> Episode:
        def cut() -> dict[int, bytes]:
            self.net.fail_link(u, v)
            return {u: self.net.names[v], v: self.net.names[u]}
        return self.episode("link failure", cut)

    def heal_link(self, u: int, v: int) -> Episode:
        """The link is back: the BEAM of the end that dialled asks again,
        as it does after a neighbour_down."""
        def heal() -> dict[int, bytes]:
            self.net.heal_link(u, v)
            self.net.link(u, v, self.cost)
            return {}
        return self.episode("link back", heal)

    def fail_node(self, x: int) -> Episode:
        def stop() -> dict[int, bytes]:
            self.net.fail_node(x)
            return {n: self.net.names[x] for n in sorted(self.graph[x])
                    if self.net.alive[n]}
        return self.episode("node failure", stop)

    def at_rest(self, result: Result) -> None:
        net, seconds = self.net, self.scenario.rest
        sent, sent_bytes, comps = net.sent.copy(), net.sent_bytes.copy(), sum(net.computations)
        wall = time.perf_counter()
        net.run(net.now + seconds)
        live = sum(net.alive) * seconds
        result.rest_seconds = seconds
        result.rest_messages = {k: c / live for k, c in _by_name(net.sent - sent).items()}
        result.rest_bytes = {k: c / live for k, c in _by_name(net.sent_bytes - sent_bytes).items()}
        result.rest_route_computations = sum(net.computations) - comps
        self.say(f"at rest: {seconds:g} s simulated in {time.perf_counter() - wall:.1f} s wall")

    def database(self, result: Result) -> None:
        """Link-state database sizes, and one shortest-path run over the
        first node's, timed (best of three)."""
        routers = [node.router for i, node in enumerate(self.net.nodes) if self.net.alive[i]]
        sizes = [len(r.db) for r in routers]
        result.lsps_per_node = (min(sizes), max(sizes))
        first = routers[0]
        lsps = first.db.lsps()
        result.lsdb_bytes = sum(len(lsdb.encode(lsp)) for lsp in lsps.values())
        result.summary_bytes = len(lsdb.encode_summary(first.db.summary()))
        best = math.inf
        for _ in range(3):
            started = time.perf_counter()
            spf.search(first.me, first.db.links)  # as the router runs it: nothing copied
            best = min(best, time.perf_counter() - started)
        result.spf_wall = best


def _by_name(counts: Counter[Kind]) -> dict[str, int]:
    return {kind.name: n for kind, n in sorted(counts.items())}


def run(s: Scenario, progress: Callable[[str], None] | None = None) -> Result:
    """A cold start, a while at rest, a link failure, the link back, a
    node failure; the link and the node drawn from the seed."""
    wall, cpu = time.perf_counter(), time.process_time()
    sim = Simulation(s, progress)
    result = Result(s.nodes, s.topology, len(sim.edges), s.seed)
    sim.say(f"{s.nodes} nodes, {len(sim.edges)} links ({s.topology}), seed {s.seed}")
    result.episodes.append(sim.cold_start())
    sim.at_rest(result)
    sim.database(result)
    u, v = sim.edges[sim.rng.randrange(len(sim.edges))]
    result.episodes.append(sim.fail_link(u, v))
    result.episodes.append(sim.heal_link(u, v))
    result.episodes.append(sim.fail_node(sim.rng.randrange(s.nodes)))
    result.timer_spins = sim.net.spins
    result.wall = time.perf_counter() - wall
    result.cpu = time.process_time() - cpu
    return result


def sweep_table(results: list[Result]) -> str:
    """One line per size: what the issue asks to see against cluster size."""
    head = (f"{'nodes':>6}{'links':>7}{'cold start':>11}{'link fail':>10}{'detect':>8}"
            f"{'link back':>10}{'node fail':>10}{'ms/comp':>8}{'comps/node':>11}"
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
            f"{r.nodes:>6,}{r.links:>7,}{_ms(e['cold start'].converged):>11}"
            f"{_ms(e['link failure'].converged):>10}{_ms(e['link failure'].detected_last):>8}"
            f"{_ms(e['link back'].converged):>10}{_ms(e['node failure'].converged):>10}"
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


@click.command()
@click.option("--nodes", default=100, show_default=True)
@click.option("--sweep", default="", help="sizes to run in turn, e.g. 100,250,1000 "
              "(instead of --nodes): one table across them, and a plot")
@click.option("--plot", "plot_to", default="simulate.svg", show_default=True,
              help="where --sweep writes its SVG plot")
@click.option("--topology", "shape", type=click.Choice(TOPOLOGIES), default="regular",
              show_default=True)
@click.option("--degree", default=4, show_default=True,
              help="neighbours per node (regular, and inside clusters)")
@click.option("--attach", default=2, show_default=True,
              help="Barabási-Albert: links per new node")
@click.option("--clusters", default=0, help="ring of clusters: how many (0: automatic)")
@click.option("--seed", default=1, show_default=True)
@click.option("--latency", default=1.0, show_default=True, help="one way per link, ms")
@click.option("--jitter", default=0.0, show_default=True, help="added at random, up to, ms")
@click.option("--loss", default=0.0, show_default=True, help="probability a message is lost")
@click.option("--rest", default=60.0, show_default=True, help="simulated seconds at rest")
@click.option("--settle", default=1.0, show_default=True,
              help="simulated seconds tables must stay right")
@click.option("--limit", default=120.0, show_default=True,
              help="simulated seconds to wait for convergence")
@click.option("--log-level", default="error", show_default=True,
              help="of the core's own log (a link down is a warning)")
def main(nodes: int, sweep: str, plot_to: str, shape: str, degree: int, attach: int,
         clusters: int, seed: int, latency: float, jitter: float, loss: float, rest: float,
         settle: float, limit: float, log_level: str) -> None:
    """Simulate NODES nodes of py_dist's routing core and print how it converges."""
    started = time.perf_counter()
    logging.basicConfig(level=log_level.upper(), format="%(name)s: %(message)s")

    def progress(line: str) -> None:
        click.echo(f"[{time.perf_counter() - started:7.1f} s] {line}", err=True)

    sizes = [int(n) for n in sweep.split(",")] if sweep else [nodes]
    results = []
    for size in sizes:
        scenario = Scenario(size, shape, degree, attach, clusters, seed, latency / 1000,
                            jitter / 1000, loss, rest, settle, limit)
        results.append(run(scenario, progress))
        click.echo(results[-1].table() + "\n")
        sys.stdout.flush()
    if sweep:
        click.echo(sweep_table(results))
        with open(plot_to, "w", encoding="utf-8") as out:
            out.write(plot(results))
        progress(f"plot written to {plot_to}")


if __name__ == "__main__":
    main()
