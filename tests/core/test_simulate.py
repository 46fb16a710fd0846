"""The simulator of :mod:`pydist_tools.simulate`: many unchanged nodes on a
virtual clock converge to the true shortest paths, from a cold start and
after a link or a node fails, and a seed gives the same run every time.

Convergence is checked here again, with a breadth-first search of our own
(every link costs the same), not only by the simulator's own check. No
timings are asserted: wall times depend on the machine.

100 nodes: with the back-off of route computations and originations
(:mod:`pydist.core.backoff`) a cold start costs each node about 1 LSP per
node and some 40 route computations, seconds for the whole network.
"""

from __future__ import annotations

import random
from collections import deque

import pytest

from pydist_tools.simnet import barabasi_albert, regular, ring_of_clusters
from pydist_tools.simtruth import ARRIVES, DEAD, HOLE, LOOP, walk
from pydist_tools.simulate import Scenario, Simulation, run

SIZE = 100
DEGREE = 4


def started(seed: int = 1) -> Simulation:
    """A random 4-regular network of SIZE nodes after a cold start."""
    sim = Simulation(Scenario(nodes=SIZE, topology="regular", degree=DEGREE, seed=seed))
    assert [len(nbrs) for nbrs in sim.graph] == [DEGREE] * SIZE
    assert sim.cold_start().converged is not None
    return sim


def live_graph(sim: Simulation) -> list[set[int]]:
    net = sim.net
    return [{v for v in nbrs if net.alive[v] and (u, v) not in net.cut} if net.alive[u]
            else set() for u, nbrs in enumerate(sim.graph)]


def hops_from(graph: list[set[int]], source: int) -> dict[int, int]:
    hops, todo = {source: 0}, deque([source])
    while todo:
        u = todo.popleft()
        for v in graph[u]:
            if v not in hops:
                hops[v] = hops[u] + 1
                todo.append(v)
    return hops


def assert_shortest_routes(sim: Simulation) -> None:
    """Every live node routes to exactly the nodes it can reach, each
    through a neighbour one link nearer to it."""
    net = sim.net
    graph = live_graph(sim)
    hops = [hops_from(graph, u) for u in range(SIZE)]
    assert all(max(h.values()) <= net.config.max_hops for h in hops)
    for u in range(SIZE):
        if not net.alive[u]:
            continue
        via = net.nodes[u].router.via
        assert set(via) == {net.names[x] for x in hops[u] if x != u}, u
        for dest, nbr in via.items():
            x, n = net.index[dest], net.index[nbr]
            assert n in graph[u], (u, x, n)
            assert hops[n][x] == hops[u][x] - 1, (u, x, n)
    assert not sim.tracker.wrong  # the simulator's own check agrees


def test_a_cold_start_converges_to_shortest_paths() -> None:
    sim = started()
    assert len(sim.edges) == SIZE * DEGREE // 2
    assert_shortest_routes(sim)
    names = set(sim.net.names)
    assert all(set(node.router.db.lsps()) == names for node in sim.net.nodes)


def test_after_a_link_fails_the_routes_avoid_it() -> None:
    """Its two ends notice through the heartbeats; every node then routes
    along the shortest paths of the graph without it, and again with it
    once it is back."""
    sim = started()
    u, v = sim.edges[7]
    failure = sim.fail_link(u, v)
    assert failure.converged is not None and failure.detected is not None
    assert failure.detected <= failure.converged
    net = sim.net
    assert net.names[v] not in net.nodes[u].router.adjacent
    assert net.names[u] not in net.nodes[v].router.adjacent
    assert_shortest_routes(sim)
    assert sim.heal_link(u, v).converged is not None
    assert net.names[v] in net.nodes[u].router.adjacent
    assert_shortest_routes(sim)


def test_after_a_node_fails_the_routes_go_around_it() -> None:
    sim = started()
    gone = 11
    failure = sim.fail_node(gone)
    assert failure.converged is not None and failure.detected_last is not None
    assert_shortest_routes(sim)
    name = sim.net.names[gone]
    assert not any(name in node.router.via or name in node.router.adjacent
                   for i, node in enumerate(sim.net.nodes) if sim.net.alive[i])


def test_a_partition_and_its_healing() -> None:
    """Every link across a cut into two halves fails at once: each half
    routes to itself only; then they all come back: every node again."""
    sim = started()
    across = sim.partition()
    assert across and len(across) < len(sim.edges)
    assert sim.split(across).converged is not None
    graph = live_graph(sim)
    assert len(hops_from(graph, 0)) < SIZE  # split indeed
    assert_shortest_routes(sim)
    assert sim.rejoin(across).converged is not None
    assert len(hops_from(live_graph(sim), 0)) == SIZE
    assert_shortest_routes(sim)


def test_repeated_failures_give_percentiles() -> None:
    sim = started(seed=4)
    times = sim.flaps(4)
    assert len(times["link failure"]) == len(times["link back"]) >= 1
    assert_shortest_routes(sim)


def test_the_same_seed_gives_the_same_run() -> None:
    """Everything simulated (times, counts, messages by kind) is equal for
    equal seeds, and differs for another seed."""
    scenario = Scenario(nodes=24, topology="ba", rest=20.0, settle=0.5)
    first, second = run(scenario, events=2), run(scenario, events=2)
    assert first.simulated() == second.simulated()
    assert all(e.converged is not None for e in first.episodes)
    assert {e.what for e in first.episodes} >= {"partition", "partition heals"}
    assert first.percentiles["link failure"]
    other = run(Scenario(nodes=24, topology="ba", rest=20.0, settle=0.5, seed=2))
    assert other.simulated() != first.simulated()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_topologies(seed: int) -> None:
    """Degrees as asked, no link twice, and a ring no single failure splits."""
    rng = random.Random(seed)
    for count, degree, fewer in (100, 4, 0), (101, 3, 1):  # 303 ends: one left over
        edges = regular(count, degree, rng)
        degrees = sorted(sum(x in e for e in edges) for x in range(count))
        assert degrees == [degree - 1] * fewer + [degree] * (count - fewer)
        assert len(set(edges)) == len(edges) and all(u < v for u, v in edges)
    edges = barabasi_albert(200, 2, rng)
    assert len(edges) == 3 + 2 * (200 - 3) and all(u < v for u, v in edges)
    edges = ring_of_clusters(60, 4, 3, rng)
    graph: list[set[int]] = [set() for _ in range(60)]
    for u, v in edges:
        graph[u].add(v)
        graph[v].add(u)
    assert len(hops_from(graph, 0)) == 60
    for x in range(60):  # no single node splits the ring
        rest = [g - {x} if y != x else set() for y, g in enumerate(graph)]
        assert len(hops_from(rest, (x + 1) % 60)) == 59


def test_walk_tells_arrival_loop_hole_and_failure() -> None:
    """Frames followed through tables on a line 0-1-2-3, to node 3."""
    line: list[dict[int, int]] = [{1: 1}, {0: 1, 2: 1}, {1: 1, 3: 1}, {2: 1}]
    assert walk(3, line, [1, 2, 3, None]) == [ARRIVES, ARRIVES, ARRIVES, None]
    assert walk(3, line, [1, 0, 3, None]) == [LOOP, LOOP, ARRIVES, None]
    assert walk(3, line, [1, 2, None, None]) == [None, None, None, None]
    cut = [{1: 1}, {0: 1, 2: 1}, {1: 1}, {}]  # 2-3 failed, 2 has not noticed
    assert walk(3, cut, [1, 2, 3, None]) == [DEAD, DEAD, DEAD, None]
    assert walk(0, line, [None, 2, 1, 2]) == [None, LOOP, LOOP, LOOP]


def test_transients_while_a_link_failure_floods() -> None:
    """Until its ends notice, frames over a failed link go into it; once
    the tables settle no pair loops, falls into a hole or into the failure."""
    sim = started()
    u, v = sim.edges[7]
    failure = sim.fail_link(u, v)
    seen = failure.transients
    assert seen.most[DEAD] > 0 and failure.detected is not None
    assert seen.lasted[DEAD] == pytest.approx(failure.detected_last, abs=0.002)
    assert seen.most[HOLE] == 0  # the rest of the graph still reaches everyone
    sim.forwarding.sample(sim.net.now)
    assert sim.forwarding.current == {LOOP: 0, HOLE: 0, DEAD: 0}
