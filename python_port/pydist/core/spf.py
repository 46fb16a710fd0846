"""Shortest paths from the link-state database, and the next-hop table.

Dijkstra over the links that both ends report (a link one end has not
confirmed, or no longer lists, carries nothing: the two-way check of
OSPF and IS-IS). Each direction uses the cost its own origin advertises.
Ties are broken by name, so every run over the same database gives the
same paths, and a recomputation that changes nothing moves no traffic.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Set
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
    return search(me, {origin: dict(lsp.neighbours) for origin, lsp in lsps.items()})


def search(me: bytes, links: Mapping[bytes, Mapping[bytes, int]],
           own: Mapping[bytes, int] | None = None) -> Paths:
    """Dijkstra over ``links`` (origin -> {neighbour: cost}, as each lists
    them), taking a link only where its far end lists it too; ``own``, if
    given, stands for ``me``'s links (the router's adjacencies, which may
    be ahead of the LSP it last flooded).

    The two-way check is made as each link is looked at, so the database is
    not copied; and a node is pushed on the heap again only for a better
    (distance, first hop, parent) than it has, which is the order a heap of
    every candidate would pop them in: the same paths, fewer heap moves."""
    paths = Paths(me)
    dist, hop_count, next_hop, parent = paths.dist, paths.hops, paths.next_hop, paths.parent
    best: dict[bytes, tuple[int, bytes, bytes]] = {}
    # dist, node, via, parent decide the order; the hop count rides along
    heap: list[tuple[int, bytes, bytes, bytes, int]] = []
    push, pop = heapq.heappush, heapq.heappop
    for nbr, cost in (links.get(me, {}) if own is None else own).items():
        back = links.get(nbr)
        if back is not None and me in back and nbr != me:
            best[nbr] = (cost, nbr, me)
            push(heap, (cost, nbr, nbr, me, 1))
    dist[me], hop_count[me] = 0, 0
    while heap:
        d, node, via, up, hops = pop(heap)
        if node in dist:
            continue
        dist[node], hop_count[node], next_hop[node], parent[node] = d, hops, via, up
        for nbr, cost in links.get(node, {}).items():
            if nbr in dist:
                continue
            back = links.get(nbr)
            if back is None or node not in back:
                continue  # one way: carries nothing
            nd = d + cost
            held = best.get(nbr)
            if held is None or nd < held[0] or (nd == held[0] and (via, node) < held[1:]):
                best[nbr] = (nd, via, node)
                push(heap, (nd, nbr, via, node, hops + 1))
    return paths


def broken(old: Paths, old_via: Mapping[bytes, bytes], via: Mapping[bytes, bytes],
           cut: Set[tuple[bytes, bytes]], adjacent: Mapping[bytes, object]) -> list[bytes]:
    """The destinations in both tables whose old path is gone: its first
    link (to a neighbour no longer ``adjacent``) or a later one (in ``cut``,
    each link as its two names, the smaller first). The old tree is walked
    up from each destination, each node once; a destination the old tree
    did not route (a static route, a neighbour before its LSP) is judged
    by its first link, all we know of its path."""
    me, parent, next_hop = old.me, old.parent, old.next_hop
    whole: dict[bytes, bool] = {}

    def intact(x: bytes) -> bool:
        chain = []
        while x not in whole:
            up = parent[x]
            if up == me:
                whole[x] = x in adjacent
                break
            chain.append(x)
            x = up
        ok = whole[x]
        for y in reversed(chain):
            up = parent[y]
            ok = ok and ((up, y) if up < y else (y, up)) not in cut
            whole[y] = ok
        return ok

    return [dest for dest in sorted(old_via.keys() & via.keys())
            if not (intact(dest) if next_hop.get(dest) == old_via[dest]
                    else old_via[dest] in adjacent)]
