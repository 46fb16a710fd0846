"""A simulated network that drives many unchanged :class:`Node` objects.

The routing core is a state machine fed inputs and the time (see
:mod:`pydist.core.node`), so how it behaves at hundreds or thousands of
nodes can be measured without sockets, processes or a wall clock.
:class:`SimNet` plays the I/O shell for every node at once, on a virtual
clock: it feeds control terms as the BEAM would, takes each node's output
after every input, carries out its ``Dial``/``HangUp`` commands, delivers
its messages after a link's latency, and re-arms the node's timer at
:meth:`Node.next_deadline`, as :mod:`pydist.shell.runtime` does.

It uses only the node's public entry points (``port_packet``,
``link_message``, ``timer``, ``next_deadline``, ``take_output``), so what
it measures is the code that runs in production. Everything random comes
from generators seeded by the one seed, so a run is reproducible.

The topologies it can be wired as are at the end: random regular graphs,
Barabási-Albert power-law graphs, and a ring of clusters.

Links are FIFO per direction (ZeroMQ over TCP); a failed link drops what
crosses it both ways from then on, what is in flight included, as a cut
cable does; a failed node stops (no more timers) and everything to or from
it is dropped. Optional per-message loss goes beyond what TCP would do:
the core assumes reliable links, so use it to stress the repair paths.
"""

from __future__ import annotations

import gc
import heapq
import itertools
import random
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from pydist.core import frame, port_codec
from pydist.core.channels import LinkKey
from pydist.core.config import Config
from pydist.core.etf import Atom
from pydist.core.node import Node
from pydist.core.output import Dial, HangUp, Out
from pydist.core.port_codec import PortDecoder
from pydist.core.wire import Kind

HOST = b"127.0.0.1"
BASE_PORT = 10000
COOKIE = b"sim-cookie"
#: how much later the shell's next turn comes when a timer run leaves the
#: node's deadline no later than now (see SimNet.spins)
TURN = 1e-6
_NEVER = float("inf")
#: an event: when, a tie-breaker that keeps FIFO order, the node it is
#: for, the link key (None: the node's timer), the message's parts, and
#: the sending node (-1 for a timer)
Event = tuple[float, int, int, LinkKey | None, list[Out] | None, int]
_KIND = {int(kind): kind for kind in Kind}
_KIND_OFFSET = 1  # version, then kind: see pydist.core.frame
Edge = tuple[int, int]  # a link: (the node that dials, the node it dials)
Graph = list[dict[int, int]]  # per node: neighbour -> cost


def node_name(index: int) -> bytes:
    return f"n{index:04d}@sim".encode()


class SimNet:
    """``count`` nodes on one virtual clock, named, with the same cookie,
    each listening at an endpoint of its own, and no links yet."""

    def __init__(self, count: int, *, seed: int, latency: float = 0.001,
                 jitter: float = 0.0, loss: float = 0.0, config: Config | None = None) -> None:
        self.config = config or Config()
        self.now = 0.0
        self.latency, self.jitter, self.loss = latency, jitter, loss
        self.rng = random.Random(f"{seed}-net")
        self.names = [node_name(i) for i in range(count)]
        self.index = {name: i for i, name in enumerate(self.names)}
        self.endpoints = {f"tcp://{HOST.decode()}:{BASE_PORT + i}": i for i in range(count)}
        # the admission nonces too come from a seeded generator, not the OS
        self.nodes = [Node(self.config, self.now, rng=random.Random(f"{seed}-{i}"),
                           entropy=random.Random(f"{seed}-{i}-nonces").randbytes)
                      for i in range(count)]
        #: (node, its link key) -> (peer node, the peer's key for the same link)
        self.wires: dict[tuple[int, LinkKey], tuple[int, LinkKey]] = {}
        #: the last arrival time per link direction: a later message never overtakes
        self.arrivals: dict[tuple[int, LinkKey], float] = {}
        self.events: list[Event] = []
        self._order = itertools.count()
        #: when each node's timer event is due (one live event per node)
        self.armed = [_NEVER] * count
        self.alive = [True] * count
        #: failed links, both directions: (sender, receiver)
        self.cut: set[tuple[int, int]] = set()
        #: messages and bytes the nodes sent, by frame kind
        self.sent: Counter[Kind] = Counter()
        self.sent_bytes: Counter[Kind] = Counter()
        self.dropped: Counter[str] = Counter()
        #: each node's route_computations counter as last seen
        self.computations = [0] * count
        #: wall seconds in node calls, and in the calls that recomputed routes
        self.core_wall = 0.0
        self.route_wall = 0.0
        #: inputs fed to nodes (messages delivered and timers run)
        self.handled = 0
        #: timer runs after which the node was due again at once: the real
        #: shell polls with a zero timeout and runs the timer again, a turn
        #: later; a virtual clock that does not move would spin for ever
        self.spins = 0
        #: called with a node's index after a call that recomputed its routes
        self.on_routes: Callable[[int], None] | None = None
        #: called with the current time when the clock is about to move on:
        #: every node's state is then final for that instant
        self.on_advance: Callable[[float], None] | None = None
        self._decoder = PortDecoder(1 << 16, scratch=1 << 16)
        for i, name in enumerate(self.names):
            self.beam(i, (Atom("set_node"), name))
            self.beam(i, (Atom("cookie"), COOKIE))
            self.beam(i, (Atom("advertise"), b"%s:%d" % (HOST, BASE_PORT + i)))

    # --- the BEAM side ----------------------------------------------------

    def beam(self, i: int, term: Any) -> None:
        """A control term from node ``i``'s BEAM, through the ``{packet, 4}`` pipe."""
        for packet in self._decoder.feed(port_codec.encode_ctrl(term)):
            node = self.nodes[i]
            started = time.perf_counter()
            node.port_packet(packet, self.now)
            self._after(i, node, started)

    def link(self, u: int, v: int, cost: int | None = None) -> None:
        """``u``'s BEAM asks for a link to neighbour ``v`` (``u`` dials)."""
        cost = self.config.link_cost if cost is None else cost
        self.beam(u, (Atom("link"), self.names[v], HOST, BASE_PORT + v, cost, COOKIE))

    # --- failures -----------------------------------------------------------

    def fail_link(self, u: int, v: int) -> None:
        self.cut |= {(u, v), (v, u)}

    def heal_link(self, u: int, v: int) -> None:
        self.cut -= {(u, v), (v, u)}

    def fail_node(self, i: int) -> None:
        self.alive[i] = False

    # --- the clock ------------------------------------------------------------

    def run(self, until: float, done: Callable[[], bool] | None = None,
            tick: Callable[[], None] | None = None) -> bool:
        """Handle events up to time ``until``; stop early, at the event
        after which ``done()`` holds (True then). ``tick`` is called every
        1,024 inputs, for progress reports."""
        # millions of live objects (every node's database) and few cycles:
        # the cyclic collector's full passes cost more than the run itself
        collecting = gc.isenabled()
        gc.disable()
        try:
            return self._run(until, done, tick)
        finally:
            if collecting:
                gc.enable()

    def _run(self, until: float, done: Callable[[], bool] | None,
             tick: Callable[[], None] | None) -> bool:
        events, alive, cut, nodes, armed = (self.events, self.alive, self.cut, self.nodes,
                                            self.armed)
        clock = time.perf_counter
        while events and events[0][0] <= until:
            at, _, i, key, parts, src = heapq.heappop(events)
            if not alive[i]:
                continue
            if at != self.now and self.on_advance is not None:
                self.on_advance(self.now)
            self.now = at
            node = nodes[i]
            if key is None:
                if at != armed[i]:
                    continue  # superseded by a later arming
                armed[i] = _NEVER
                started = clock()
                node.timer(at)
                self._after(i, node, started, timer=True)
            else:
                assert parts is not None
                if not alive[src] or (src, i) in cut:
                    self.dropped["failed"] += 1
                    continue
                started = clock()
                node.link_message(key, parts, at)
                self._after(i, node, started)
            self.handled += 1
            if tick is not None and not self.handled & 1023:
                tick()
            if done is not None and done():
                return True
        self.now = max(self.now, until)
        return False

    # --- the shell --------------------------------------------------------------

    def _after(self, i: int, node: Node, started: float, timer: bool = False) -> None:
        """After any input: account the call, carry out the node's output,
        re-arm its timer, and say if its routes were recomputed."""
        elapsed = time.perf_counter() - started
        self.core_wall += elapsed
        computed = node.stats["route_computations"]
        recomputed = computed != self.computations[i]
        if recomputed:
            self.computations[i] = computed
            self.route_wall += elapsed
        self._carry_out(i, node)
        deadline = node.next_deadline()
        if deadline <= self.now:
            if timer:
                self.spins += 1
                deadline = self.now + TURN
            else:
                deadline = self.now
        if deadline != self.armed[i]:
            self.armed[i] = deadline
            if deadline < _NEVER:
                heapq.heappush(self.events, (deadline, next(self._order), i, None, None, -1))
        if recomputed and self.on_routes is not None:
            self.on_routes(i)

    def _carry_out(self, i: int, node: Node) -> None:
        """In the shell's order: dial, send, hang up (after the last words)."""
        out = node.take_output()
        hangups: list[LinkKey] = []
        for command in out.commands:
            if isinstance(command, Dial):
                target = self.endpoints.get(command.endpoint)
                if target is not None:  # else nobody listens there
                    rkey = f"peer-{i}-{command.key}".encode()
                    self.wires[(i, command.key)] = (target, rkey)
                    self.wires[(target, rkey)] = (i, command.key)
            elif isinstance(command, HangUp):
                hangups.append(command.key)
            # Forget: the link the neighbour dialled stays until it hangs up
        for key, parts in out.links:
            self._send(i, key, parts)
        for key, parts in out.transit:
            self._send(i, key, parts)
        for key in hangups:
            other = self.wires.pop((i, key), None)
            if other is not None:
                self.wires.pop(other, None)

    def _send(self, i: int, key: LinkKey, parts: list[Out]) -> None:
        kind = _KIND[parts[0][_KIND_OFFSET]]  # the header is the first part's start
        self.sent[kind] += 1
        self.sent_bytes[kind] += sum(map(frame.size, parts))
        wire = self.wires.get((i, key))
        if wire is None:
            self.dropped["no_wire"] += 1
            return
        if self.loss and self.rng.random() < self.loss:
            self.dropped["lost"] += 1
            return
        dst, dkey = wire
        at = self.now + self.latency
        if self.jitter:
            at += self.rng.uniform(0.0, self.jitter)
        direction = (i, key)
        at = max(at, self.arrivals.get(direction, 0.0))
        self.arrivals[direction] = at
        heapq.heappush(self.events, (at, next(self._order), dst, dkey, parts, i))


# --- topologies: what to wire ------------------------------------------------------------------

def regular(count: int, degree: int, rng: random.Random) -> list[Edge]:
    """A connected random graph where every node has ``degree`` neighbours
    (one has a neighbour less if ``count * degree`` is odd): stubs paired
    at random, a pair that would loop or repeat drawn again."""
    degree = min(degree, count - 1)
    for _ in range(1000):
        stubs = [i for i in range(count) for _ in range(degree)]
        rng.shuffle(stubs)
        edges: set[Edge] = set()
        stuck = False
        while len(stubs) > 1 and not stuck:
            u = stubs.pop()
            for _ in range(50):
                j = rng.randrange(len(stubs))
                v = stubs[j]
                if v != u and (min(u, v), max(u, v)) not in edges:
                    stubs[j] = stubs[-1]
                    stubs.pop()
                    edges.add((min(u, v), max(u, v)))
                    break
            else:
                stuck = True  # start again
        if not stuck and _connected(count, edges):
            return sorted(edges)
    raise ValueError(f"no connected {degree}-regular graph of {count} nodes found")


def barabasi_albert(count: int, attach: int, rng: random.Random) -> list[Edge]:
    """Power-law degrees: a clique of ``attach + 1`` nodes, then each new
    node links to ``attach`` distinct nodes chosen in proportion to degree."""
    attach = max(1, min(attach, count - 1))
    edges = {(u, v) for v in range(attach + 1) for u in range(v)}
    ends = [x for edge in sorted(edges) for x in edge]  # a node once per link it has
    for new in range(attach + 1, count):
        chosen: set[int] = set()
        while len(chosen) < attach:
            chosen.add(rng.choice(ends))
        for old in sorted(chosen):
            edges.add((old, new))
            ends += (old, new)
    return sorted(edges)


def ring_of_clusters(count: int, clusters: int, degree: int,
                     rng: random.Random) -> list[Edge]:
    """``clusters`` random ``degree``-regular clusters in a ring: each has
    two gateways, its first node linked to the next cluster's second, so
    no single failure splits the ring."""
    if count < 3 * clusters:
        raise ValueError("clusters need at least 3 nodes each")
    bounds = [count * c // clusters for c in range(clusters + 1)]
    edges: list[Edge] = []
    for c in range(clusters):
        first, size = bounds[c], bounds[c + 1] - bounds[c]
        edges += [(first + u, first + v) for u, v in regular(size, degree, rng)]
        east, west = first, bounds[(c + 1) % clusters] + 1
        if clusters > 1:
            edges.append((min(east, west), max(east, west)))
    return sorted(set(edges))


def _connected(count: int, edges: set[Edge]) -> bool:
    graph: Graph = [{} for _ in range(count)]
    for u, v in edges:
        graph[u][v] = graph[v][u] = 1
    seen, todo = {0}, [0]
    while todo:
        for v in graph[todo.pop()]:
            if v not in seen:
                seen.add(v)
                todo.append(v)
    return len(seen) == count
