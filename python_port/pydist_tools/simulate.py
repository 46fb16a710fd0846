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

import logging
import math
import random
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import click

from pydist.core import lsdb, spf
from pydist.core.wire import Kind
from pydist_tools.simnet import Edge, Graph, SimNet, barabasi_albert, regular, ring_of_clusters
from pydist_tools.simreport import Episode, Result, ms, plot, sweep_table
from pydist_tools.simtruth import Forwarding, Tracker, Truth

TOPOLOGIES = ("regular", "ba", "clusters")
#: destinations frames are followed to while the network settles
SAMPLED = 32


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
        # frames are followed to a sample of destinations drawn from a
        # generator of their own, so the scenario's draws stay as they were
        sample = random.Random(f"{s.seed}-destinations").sample(range(s.nodes),
                                                               min(s.nodes, SAMPLED))
        self.forwarding = Forwarding(self.net, self.live_graph(), sorted(sample))
        self.net.on_routes = self._routes_changed
        self.net.on_advance = self.forwarding.advance

    def _routes_changed(self, i: int) -> None:
        self.tracker.check(i)
        self.forwarding.changed()

    def live_graph(self) -> Graph:
        net = self.net
        return [{v: c for v, c in nbrs.items() if (u, v) not in net.cut and net.alive[v]}
                if net.alive[u] else {} for u, nbrs in enumerate(self.graph)]

    def truth(self) -> Truth:
        net = self.net
        return Truth(self.live_graph(), net.alive, net.config.max_hops)

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
        self.forwarding.start(self.live_graph(), net.now)
        self.say(f"{what}: {len(tracker.wrong)} of {sum(net.alive)} nodes route wrongly")
        converged = self._converge(start + s.limit, wall)
        found = [t - start for t in tracker.detected]
        e = Episode(what, None if converged is None else converged - start,
                    min(found, default=None), max(found, default=None),
                    sum(net.computations) - comps, net.route_wall - route_wall,
                    _by_name(net.sent - sent), _by_name(net.sent_bytes - sent_bytes),
                    net.handled - inputs, time.perf_counter() - wall,
                    self.forwarding.finish(net.now))
        self.say(f"{what}: converged after {ms(e.converged)} simulated, "
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

    def partition(self) -> list[Edge]:
        """The links across a cut of the live network into two halves: the
        first half of a breadth-first walk from a node drawn from the seed,
        and the rest."""
        net = self.net
        alive = [i for i in range(len(self.graph)) if net.alive[i]]
        start = alive[self.rng.randrange(len(alive))]
        order, seen = [start], {start}
        for u in order:
            for v in sorted(self.graph[u]):
                if v not in seen and net.alive[v] and (u, v) not in net.cut:
                    seen.add(v)
                    order.append(v)
        half = set(order[: len(order) // 2])
        return [(u, v) for u, v in self.edges if (u in half) != (v in half)
                and net.alive[u] and net.alive[v] and (u, v) not in net.cut]

    def split(self, across: list[Edge]) -> Episode:
        """Every link of ``across`` fails at once: a partition."""
        def cut() -> dict[int, bytes]:
            watch: dict[int, bytes] = {}
            for u, v in across:
                self.net.fail_link(u, v)
                watch.setdefault(u, self.net.names[v])
                watch.setdefault(v, self.net.names[u])
            return watch
        return self.episode("partition", cut)

    def rejoin(self, across: list[Edge]) -> Episode:
        """The partition heals: every link of ``across`` is back at once."""
        def heal() -> dict[int, bytes]:
            for u, v in across:
                self.net.heal_link(u, v)
                self.net.link(u, v, self.cost)
            return {}
        return self.episode("partition heals", heal)

    def flaps(self, count: int) -> dict[str, list[float]]:
        """``count`` links drawn from the seed, each failing and coming back
        in turn: the convergence times of each kind of event, for
        percentiles (one event tells little)."""
        times: dict[str, list[float]] = {"link failure": [], "link back": []}
        net = self.net
        for _ in range(count):
            u, v = self.edges[self.rng.randrange(len(self.edges))]
            if not (net.alive[u] and net.alive[v]) or (u, v) in net.cut:
                continue
            for e in (self.fail_link(u, v), self.heal_link(u, v)):
                if e.converged is not None:
                    times[e.what].append(e.converged)
        return times

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


def run(s: Scenario, progress: Callable[[str], None] | None = None, events: int = 0) -> Result:
    """A cold start, a while at rest, a link failure, the link back, a
    node failure, a partition in two halves and its healing; then
    ``events`` more link failures and recoveries for percentiles. Links,
    node and cut drawn from the seed."""
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
    across = sim.partition()
    result.episodes.append(sim.split(across))
    result.episodes.append(sim.rejoin(across))
    if events:
        result.percentiles = sim.flaps(events)
    result.timer_spins = sim.net.spins
    result.sampled_pairs = len(sim.forwarding.dests) * (s.nodes - 1)
    result.wall = time.perf_counter() - wall
    result.cpu = time.process_time() - cpu
    return result


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
@click.option("--events", default=0, show_default=True,
              help="links that fail and come back after the rest, for p50/p99")
@click.option("--log-level", default="error", show_default=True,
              help="of the core's own log (a link down is a warning)")
def main(nodes: int, sweep: str, plot_to: str, shape: str, degree: int, attach: int,
         clusters: int, seed: int, latency: float, jitter: float, loss: float, rest: float,
         settle: float, limit: float, events: int, log_level: str) -> None:
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
        results.append(run(scenario, progress, events))
        click.echo(results[-1].table() + "\n")
        sys.stdout.flush()
    if sweep:
        click.echo(sweep_table(results))
        with open(plot_to, "w", encoding="utf-8") as out:
            out.write(plot(results))
        progress(f"plot written to {plot_to}")


if __name__ == "__main__":
    main()
