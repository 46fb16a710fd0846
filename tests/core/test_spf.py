"""Shortest paths over the link-state database, checked against Floyd-Warshall."""

from __future__ import annotations

import random
from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st

from pydist.core.lsdb import Lsp
from pydist.core.spf import Paths, edges, shortest_paths

FAST = settings(max_examples=100, deadline=None)
INF = float("inf")

Costs = dict[tuple[bytes, bytes], int]


def db(links: dict[bytes, dict[bytes, int]]) -> dict[bytes, Lsp]:
    """A database with one LSP per key of ``links``, listing its neighbours and costs."""
    return {o: Lsp(o, 1, 60.0, tuple(sorted(n.items()))) for o, n in links.items()}


@st.composite
def graphs(draw: st.DrawFn) -> tuple[bytes, dict[bytes, Lsp]]:
    """``me`` and a database: 1..12 nodes, each pair unlinked, linked both ways (costs
    chosen per direction) or listed by one end only; some nodes publish no LSP and
    some LSPs list a node that does not exist."""
    nodes = draw(st.lists(st.binary(min_size=1, max_size=2), min_size=1, max_size=12,
                          unique=True))
    links: dict[bytes, dict[bytes, int]] = {n: {} for n in nodes}
    cost = st.integers(1, 100)
    for i, a in enumerate(nodes):
        for b in nodes[i + 1:]:
            kind = draw(st.sampled_from(["none", "none", "both", "both", "a", "b"]))
            if kind in ("both", "a"):
                links[a][b] = draw(cost)
            if kind in ("both", "b"):
                links[b][a] = draw(cost)
    for n in draw(st.lists(st.sampled_from(nodes), max_size=2)):
        links[n][b"ghost-" + n] = draw(cost)
    me = draw(st.sampled_from(nodes))
    silent = draw(st.lists(st.sampled_from(nodes), max_size=2))
    return me, db({n: nb for n, nb in links.items() if n not in silent})


def two_way(lsps: dict[bytes, Lsp]) -> Costs:
    """The links both ends list, each direction with the cost its origin gives it."""
    listed = {(o, n): c for o, lsp in lsps.items() for n, c in lsp.neighbours}
    return {(a, b): c for (a, b), c in listed.items() if (b, a) in listed}


def floyd_warshall(costs: Costs) -> dict[bytes, dict[bytes, float]]:
    nodes = sorted({x for pair in costs for x in pair})
    d = {a: {b: 0.0 if a == b else float(costs.get((a, b), INF)) for b in nodes} for a in nodes}
    for k in nodes:
        for i in nodes:
            for j in nodes:
                d[i][j] = min(d[i][j], d[i][k] + d[k][j])
    return d


def reference(me: bytes, costs: Costs) -> dict[bytes, dict[bytes, float]]:
    ref = floyd_warshall(costs)
    ref.setdefault(me, {me: 0.0})
    return ref


@FAST
@given(graphs())
def test_edges_keeps_only_two_way_links(graph: tuple[bytes, dict[bytes, Lsp]]) -> None:
    _, lsps = graph
    got = edges(lsps)
    assert set(got) == set(lsps)
    assert {(a, b): c for a, nbrs in got.items() for b, c in nbrs.items()} == two_way(lsps)


@FAST
@given(graphs())
def test_distances_match_floyd_warshall(graph: tuple[bytes, dict[bytes, Lsp]]) -> None:
    """Exactly the nodes reachable over two-way links have a distance, the right one."""
    me, lsps = graph
    ref = reference(me, two_way(lsps))[me]
    paths = shortest_paths(me, lsps)
    assert paths.me == me
    assert paths.dist == {d: x for d, x in ref.items() if x < INF}
    assert set(paths.next_hop) == set(paths.parent) == set(paths.dist) - {me}


@FAST
@given(graphs())
def test_next_hop_is_a_neighbour_on_a_shortest_path(graph: tuple[bytes, dict[bytes, Lsp]]) -> None:
    """The next hop is a two-way neighbour of ``me`` that starts a shortest path, and
    of those the smallest name (ties broken by name)."""
    me, lsps = graph
    costs = two_way(lsps)
    ref = reference(me, costs)
    paths = shortest_paths(me, lsps)
    nbrs = {b: c for (a, b), c in costs.items() if a == me}
    for dest, hop in paths.next_hop.items():
        assert hop in nbrs
        assert nbrs[hop] + ref[hop][dest] == paths.dist[dest]
        assert hop == min(n for n, c in nbrs.items() if c + ref[n][dest] == paths.dist[dest])


@FAST
@given(graphs())
def test_path_walks_two_way_links(graph: tuple[bytes, dict[bytes, Lsp]]) -> None:
    """path(dest) runs from ``me`` to ``dest`` over two-way links, its costs add up to
    the distance, it starts with the next hop and ends with the parent."""
    me, lsps = graph
    costs = two_way(lsps)
    paths = shortest_paths(me, lsps)
    assert paths.path(me) == [me]
    for dest in paths.next_hop:
        path = paths.path(dest)
        assert path[0] == me and path[-1] == dest and len(set(path)) == len(path)
        assert path[1] == paths.next_hop[dest] and path[-2] == paths.parent[dest]
        assert sum(costs[a, b] for a, b in pairwise(path)) == paths.dist[dest]
    names = {x for lsp in lsps.values() for x in (lsp.origin, *dict(lsp.neighbours))}
    for dest in names - set(paths.dist):
        assert paths.path(dest) == []


def _table(paths: Paths) -> tuple[dict[bytes, int], dict[bytes, bytes], dict[bytes, bytes]]:
    return paths.dist, paths.next_hop, paths.parent


@FAST
@given(graphs(), st.randoms(use_true_random=False))
def test_deterministic_whatever_the_order(graph: tuple[bytes, dict[bytes, Lsp]],
                                          rng: random.Random) -> None:
    """The same database in another dict order gives the same tables."""
    me, lsps = graph
    order = list(lsps.items())
    rng.shuffle(order)
    assert _table(shortest_paths(me, dict(order))) == _table(shortest_paths(me, lsps))
    assert _table(shortest_paths(me, dict(reversed(order)))) == _table(shortest_paths(me, lsps))


def test_one_way_link_carries_nothing() -> None:
    """a lists b at cost 1, b does not list a: a reaches b the long way, through c."""
    lsps = db({b"a": {b"b": 1, b"c": 5}, b"b": {b"c": 1}, b"c": {b"a": 5, b"b": 1}})
    paths = shortest_paths(b"a", lsps)
    assert paths.dist == {b"a": 0, b"c": 5, b"b": 6}
    assert paths.next_hop == {b"c": b"c", b"b": b"c"} and paths.path(b"b") == [b"a", b"c", b"b"]
    del lsps[b"c"]  # and without c's LSP, neither is reachable
    assert shortest_paths(b"a", lsps).dist == {b"a": 0}


def test_each_direction_uses_its_own_cost() -> None:
    lsps = db({b"a": {b"b": 1}, b"b": {b"a": 7}})
    assert shortest_paths(b"a", lsps).dist[b"b"] == 1
    assert shortest_paths(b"b", lsps).dist[b"a"] == 7


def test_ties_go_to_the_smaller_name() -> None:
    # me -> x -> d and me -> y -> d cost the same; the network lists y first
    lsps = db({b"y": {b"me": 1, b"d": 1}, b"me": {b"y": 1, b"x": 1}, b"x": {b"me": 1, b"d": 1},
               b"d": {b"y": 1, b"x": 1}})
    paths = shortest_paths(b"me", lsps)
    assert paths.next_hop[b"d"] == b"x" and paths.path(b"d") == [b"me", b"x", b"d"]


def test_alone_or_unknown() -> None:
    """A node without an LSP, or with no two-way link, reaches only itself."""
    for lsps in [{}, db({b"a": {b"b": 1}}), db({b"b": {b"c": 1}, b"c": {b"b": 1}})]:
        paths = shortest_paths(b"a", lsps)
        assert (paths.dist, paths.next_hop, paths.path(b"a")) == ({b"a": 0}, {}, [b"a"])
