"""What the simulator checks the core against (:mod:`pydist_tools.simulate`):
the true shortest paths of the live graph, by a Dijkstra of our own, and
which nodes route otherwise while the network settles."""

from __future__ import annotations

import heapq
import math

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


