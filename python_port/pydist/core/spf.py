"""Shortest paths from the link-state database, and the next-hop table.

Dijkstra over the links that both ends report (a link one end has not
confirmed, or no longer lists, carries nothing: the two-way check of
OSPF and IS-IS). Each direction uses the cost its own origin advertises.
Ties are broken by name, so every run over the same database gives the
same paths, and a recomputation that changes nothing moves no traffic.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from dataclasses import dataclass, field

from pydist.core.lsdb import Lsp


@dataclass
class Paths:
    """Shortest paths from ``me``: per reachable destination, its distance,
    the links on the way, the neighbour to send through, and the node
    before it on the path."""

    me: bytes
    dist: dict[bytes, int] = field(default_factory=dict)
    hops: dict[bytes, int] = field(default_factory=dict)
    next_hop: dict[bytes, bytes] = field(default_factory=dict)
    parent: dict[bytes, bytes] = field(default_factory=dict)

    def path(self, dest: bytes) -> list[bytes]:
        """The nodes from ``me`` to ``dest``, both included ([] if unreachable)."""
        if dest not in self.dist:
            return []
        nodes = [dest]
        while nodes[-1] != self.me:
            nodes.append(self.parent[nodes[-1]])
        nodes.reverse()
        return nodes


def edges(lsps: Mapping[bytes, Lsp]) -> dict[bytes, dict[bytes, int]]:
    """The two-way links of the database: origin -> {neighbour: cost}."""
    listed = {origin: dict(lsp.neighbours) for origin, lsp in lsps.items()}
    return {origin: {n: c for n, c in nbrs.items() if origin in listed.get(n, ())}
            for origin, nbrs in listed.items()}


def shortest_paths(me: bytes, lsps: Mapping[bytes, Lsp]) -> Paths:
    graph = edges(lsps)
    paths = Paths(me)
    # dist, node, via, parent decide the order; the hop count rides along
    heap: list[tuple[int, bytes, bytes, bytes, int]] = [(0, me, me, me, 0)]
    done: set[bytes] = set()
    while heap:
        dist, node, via, parent, hops = heapq.heappop(heap)
        if node in done:
            continue
        done.add(node)
        paths.dist[node] = dist
        paths.hops[node] = hops
        if node != me:
            paths.next_hop[node] = via
            paths.parent[node] = parent
        for nbr, cost in graph.get(node, {}).items():
            if nbr not in done:
                heapq.heappush(heap, (dist + cost, nbr, nbr if node == me else via, node,
                                      hops + 1))
    return paths
