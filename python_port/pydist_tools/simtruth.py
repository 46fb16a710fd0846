"""What the simulator checks the core against (:mod:`pydist_tools.simulate`):
the true shortest paths of the live graph, by a Dijkstra of our own, and
which nodes route otherwise while the network settles."""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field

from pydist_tools.simnet import Graph, SimNet


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




#: what a frame sent from a node towards a destination meets, following
#: every node's table: it arrives, comes back to a node it crossed (a
#: loop), finds a node with no route though the destination is reachable
#: (a hole: dropped, or on the first node a nodedown), or is sent into a
#: link or node that failed and that the sender has not noticed yet
ARRIVES, LOOP, HOLE, DEAD = "arrives", "loop", "hole", "dead"


def walk(dest: int, graph: Graph, hop: list[int | None]) -> list[str | None]:
    """Per node: what a frame to ``dest`` meets from there, or None where
    it meets a node with no route (a hole if the destination is reachable
    from there; for ``dest`` itself, None too). ``graph`` is the live
    graph, ``hop[x]`` the neighbour node ``x`` sends to ``dest`` through
    (None: no route). One pass for all sources:
    each node is walked from once, and a walk stops at a node already
    judged, so the cost is linear in the nodes."""
    count = len(graph)
    fate: list[str | None] = [None] * count
    judged = [False] * count
    judged[dest] = True
    for start in range(count):
        if judged[start]:
            continue
        path: list[int] = []
        on_path: set[int] = set()
        x, verdict = start, None
        while True:
            if judged[x]:
                verdict = ARRIVES if x == dest else fate[x]
                break
            if x in on_path:
                verdict = LOOP
                break
            path.append(x)
            on_path.add(x)
            n = hop[x]
            if n is None:
                verdict = None  # judged below: a hole, or nothing to reach
                break
            if n not in graph[x]:
                verdict = DEAD
                break
            x = n
        for y in path:
            judged[y] = True
            fate[y] = verdict
    return fate


@dataclass
class Transients:
    """Over one episode: the most (source, destination) pairs seen in each
    state but ``arrives`` at once, and for how long (simulated seconds) any
    pair was in it; sampled whenever routes changed, at most once per
    ``resolution`` seconds."""

    most: dict[str, int] = field(default_factory=lambda: {LOOP: 0, HOLE: 0, DEAD: 0})
    lasted: dict[str, float] = field(default_factory=lambda: {LOOP: 0.0, HOLE: 0.0, DEAD: 0.0})


class Forwarding:
    """Follows frames through every node's table to a sample of
    destinations while the network settles, to see the loops and holes
    that a link-state protocol has while a change floods (microloops)."""

    def __init__(self, net: SimNet, graph: Graph, dests: list[int],
                 resolution: float = 0.001) -> None:
        self.net, self.dests, self.resolution = net, dests, resolution
        self._use(graph)
        self.seen = Transients()
        #: the pairs in each state at the last sample, and when it was taken
        self.current: dict[str, int] = {}
        self._sampled: float | None = None
        self._changed = False

    def start(self, graph: Graph, now: float) -> None:
        """An event happened at ``now``; ``graph`` is the live graph after it."""
        self._use(graph)
        self.seen, self._sampled = Transients(), None
        self.sample(now)

    def _use(self, graph: Graph) -> None:
        """The live graph until the next event, and its components (which
        routes changing do not change)."""
        self.graph, self._component = graph, _reach(graph)

    def changed(self) -> None:
        self._changed = True

    def advance(self, now: float) -> None:
        """The clock is about to move past ``now``: sample the tables as
        they stand if they changed and the last sample is old enough."""
        if self._changed and (self._sampled is None or now - self._sampled >= self.resolution):
            self.sample(now)

    def finish(self, now: float) -> Transients:
        self._account(now)
        return self.seen

    def sample(self, now: float) -> None:
        self._changed = False
        self._account(now)
        net, graph, reach = self.net, self.graph, self._component
        index, alive = net.index, net.alive
        vias = [node.router.via for node in net.nodes]
        counts = {LOOP: 0, HOLE: 0, DEAD: 0}
        for dest in self.dests:
            if not alive[dest]:
                continue
            name = net.names[dest]
            hop = [None if not alive[x] or (nbr := via.get(name)) is None else index[nbr]
                   for x, via in enumerate(vias)]
            for x, verdict in enumerate(walk(dest, graph, hop)):
                if verdict is None:
                    if alive[x] and x != dest and reach[x] == reach[dest]:
                        counts[HOLE] += 1
                elif verdict != ARRIVES:
                    counts[verdict] += 1
        for state, n in counts.items():
            self.seen.most[state] = max(self.seen.most[state], n)
        self.current, self._sampled = counts, now

    def _account(self, now: float) -> None:
        """The state of the last sample lasted until ``now``."""
        if self._sampled is not None:
            for state, n in self.current.items():
                if n:
                    self.seen.lasted[state] += now - self._sampled


def _reach(graph: Graph) -> list[int]:
    """Per node, a label of its connected component."""
    label = [-1] * len(graph)
    for s in range(len(graph)):
        if label[s] < 0:
            label[s], todo = s, [s]
            while todo:
                for v in graph[todo.pop()]:
                    if label[v] < 0:
                        label[v] = s
                        todo.append(v)
    return label
