"""Routing through other nodes, end to end in memory: links from control terms,
flooding, forwarding with a hop limit, static routes, failures, bad link state.

Uses :class:`Net` of ``test_node``.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Callable
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_node import COOKIE, HOST, INTERVAL, PORTS, TIMEOUT, Net, header_of, name

from pydist.core import frame
from pydist.core.config import Config
from pydist.core.etf import Atom
from pydist.core.lsdb import Lsp, encode
from pydist.core.node import Node
from pydist.core.output import Dial, Output
from pydist.core.wire import Kind

MAX_HOPS = Config().max_hops
COST = Config().link_cost  # what the side that did not ask for a link advertises


class RNet(Net):
    """:class:`Net` with routing helpers, whose :meth:`pump` also lets the
    routers' held-back work fall due (see :mod:`pydist.core.backoff`)."""

    def pump(self) -> None:
        """Deliver everything in flight; then, while a router has put off an
        origination or a recomputation, move the clock on to it (running
        every node's timer, as time passing would) and deliver again. The
        network is left quiet: what a test asserts next is the settled state."""
        super().pump()
        while (due := min(map(held_back, self.nodes.values()))) < float("inf"):
            self.advance_to(max(due, self.now))

    def link(self, label: str, peer: str, cost: int = COST) -> None:
        self.beam(label, (Atom("link"), name(peer), HOST, PORTS[peer], cost, COOKIE))

    def connect_routed(self, src: str, chan: int, dst: str) -> None:
        """Connect as the BEAM does to a node it knows reachable: no endpoint."""
        self.beam(src, (Atom("connect"), chan, name(dst), b"", 0, COOKIE))

    def open(self, src: str, chan: int, dst: str) -> int:
        """A routed channel; returns the id ``dst`` accepted it as."""
        self.connect_routed(src, chan, dst)
        self.pump()
        accepted = [c for c, peer in self.accepted(dst) if peer == name(src)]
        assert accepted, f"{dst} accepted nothing from {src}"
        return accepted[-1]

    def run_to(self, t: float, step: float = INTERVAL / 2) -> None:
        while self.now + step <= t:
            self.advance_to(self.now + step)
        self.advance_to(t)


def held_back(node: Node) -> float:
    """When the router does what its back-off put off (never: nothing)."""
    router = node.router
    return min(router.origination.due, router.spf.due if router.dirty else float("inf"))


def build(labels: str, links: dict[str, int], config: Config | None = None) -> RNet:
    """Nodes ``labels``, and links: ``"uv"`` -> the cost ``u`` dials ``v`` at."""
    net = RNet(*labels, config=config)
    for uv, cost in links.items():
        net.link(uv[0], uv[1], cost)
    net.pump()
    return net


def line() -> RNet:
    """a - b - c, both links dialled by b (costs 3 and 5 on b's side)."""
    return build("abc", {"ba": 3, "bc": 5})


def ring() -> RNet:
    """a - b - c - d - a, each node dialling the next, all costs equal."""
    return build("abcd", dict.fromkeys(("ab", "bc", "cd", "da"), COST))


def moved(net: RNet, send: Callable[[], None]) -> dict[str, int]:
    """Which nodes forwarded, and how often, while ``send`` ran."""
    before = {x: node.stats["forwarded"] for x, node in net.nodes.items()}
    send()
    net.pump()
    return {x: n.stats["forwarded"] - before[x] for x, n in net.nodes.items()
            if n.stats["forwarded"] != before[x]}


def bug(reason: str, raises: type[Exception] = AssertionError) -> pytest.MarkDecorator:
    """A known bug of the core: the test says what should happen."""
    return pytest.mark.xfail(strict=True, raises=raises, reason=reason)


# --- 1. a line ------------------------------------------------------------------------

def test_a_channel_through_a_middle_node() -> None:
    """a reaches c through b without ever dialling c; data flows both ways,
    in order, one forwarding per frame at b, each one hop shorter."""
    net = line()
    assert ("reachable", b"c@h") in net.events["a"]
    assert ("reachable", b"a@h") in net.events["c"]
    c1 = net.open("a", 1, "c")
    net.send("a", 1, [b"one", b"two"])
    net.send("a", 1, [b"three"])
    net.send("c", c1, [b"back"])
    net.pump()
    assert net.received("c", c1) == [b"one", b"two", b"three"]
    assert net.received("a", 1) == [b"back"]
    assert net.nodes["b"].stats["forwarded"] == 4  # OPEN, 2 DATA one way, 1 back
    assert [h.hops for h, _ in net.sent("b", "c", Kind.DATA)] == [MAX_HOPS - 1] * 2
    assert [c for c in net.commands["a"] + net.commands["c"] if isinstance(c, Dial)] == []
    assert net.closed("a") == net.closed("c") == []


def test_a_node_past_the_hop_limit_is_unreachable_not_a_black_hole() -> None:
    """With max_hops 2, on the line a - b - c - d, d is three links from a:
    a says it is unreachable (and a connect to it is refused) instead of
    sending frames that b or c would drop at the limit; c, two links away,
    is reachable."""
    net = build("abcd", {"ab": COST, "bc": COST, "cd": COST},
                replace(Config(), max_hops=2))
    assert ("reachable", b"c@h") in net.events["a"]
    assert ("reachable", b"d@h") not in net.events["a"]
    assert ("reachable", b"a@h") not in net.events["d"]
    assert ("reachable", b"b@h") in net.events["d"]
    net.connect_routed("a", 1, "d")
    net.pump()
    assert net.closed("a") == [(1, "no_route")]
    assert all(n.stats["hop_limit_exceeded"] == 0 for n in net.nodes.values())
    c1 = net.open("a", 2, "c")  # two links: as far as a frame may go
    net.send("a", 2, [b"far enough"])
    net.pump()
    assert net.received("c", c1) == [b"far enough"]


def test_a_refresh_that_changes_no_link_computes_no_route() -> None:
    """Every node re-floods its link-state packet each lsp_lifetime / 3;
    one that lists the same links moves nothing, so no node recomputes its
    routes for it (a counter proves it)."""
    net = line()
    net.run_to(1.0)
    before = {x: (n.stats["route_computations"], n.stats["lsp_new"])
              for x, n in net.nodes.items()}
    net.run_to(net.now + Config().lsp_lifetime / 3 + 1.0, step=0.2)
    for x, node in net.nodes.items():
        computed, fresh = before[x]
        assert node.stats["lsp_new"] > fresh, x  # the refreshes did arrive
        assert node.stats["route_computations"] == computed, x


# --- 2. topology ------------------------------------------------------------------------

def test_the_middle_node_says_what_it_forwarded() -> None:
    """After a link message, b tells the shell whether it sent a frame in
    transit on, on which link and how large: the shell's transit gate
    holds back the link it came from by that (see pydist.shell.transit)."""
    net = line()
    net.open("a", 1, "c")
    net.send("a", 1, [b"x" * 100])
    ((src, key, parts),) = net.queue  # a's DATA, not yet at b
    net.queue.clear()
    dst, dkey = net.wires[(src, key)]
    b = net.nodes["b"]
    assert dst == "b" and header_of(parts).kind == Kind.DATA
    b.link_message(dkey, parts, net.now)
    out = b.take_output()
    ((link, sent),) = out.transit
    assert link == net.key("b", "c") and out.links == []
    assert b.forwarded() == (link, sum(len(p) for p in sent))
    assert b.take_output() == Output()  # taken: the node starts afresh
    hb = frame.encode(Kind.HEARTBEAT, net.nodes["a"].id, b.id)
    b.link_message(dkey, [hb], net.now)
    assert b.forwarded() is None


def test_topology_query() -> None:
    """The reply holds every node's LSP and the routes with their costs."""
    net = line()
    net.beam("a", (Atom("add_route"), b"c@h", b"b@h"))
    net.beam("a", (Atom("query"), 5, Atom("topology")))
    ((tag, ref, topo),) = [e for e in net.ctrl("a") if e[0] == "reply"]
    assert (tag, ref, topo[Atom("node")]) == ("reply", 5, b"a@h")
    lsdb = {e[Atom("origin")]: e for e in topo[Atom("lsdb")]}
    assert {o: e[Atom("neighbours")] for o, e in lsdb.items()} == {
        b"a@h": [(b"b@h", COST)], b"b@h": [(b"a@h", 3), (b"c@h", 5)], b"c@h": [(b"b@h", COST)]}
    lifetime_ms = Config().lsp_lifetime * 1000
    assert all(e[Atom("seq")] >= 1 and 0 < e[Atom("age_left")] <= lifetime_ms
               for e in lsdb.values())
    routes = [(r[Atom("dest")], r[Atom("via")], r[Atom("cost")], r[Atom("static")])
              for r in topo[Atom("routes")]]
    assert routes == [(b"b@h", b"b@h", COST, False), (b"c@h", b"b@h", COST + 5, True)]


# --- 3. hop limit ---------------------------------------------------------------------

def test_a_routing_loop_ends_at_the_hop_limit() -> None:
    """b's static route to c points back to a: every frame bounces between a
    and b exactly max_hops - 1 times, then is dropped and counted."""
    net = line()
    net.beam("a", (Atom("add_route"), b"c@h", b"b@h"))
    net.beam("b", (Atom("add_route"), b"c@h", b"a@h"))
    net.connect_routed("a", 1, "c")  # an OPEN that loops
    for i in range(3):
        net.send("a", 1, [b"lost %d" % i])
    net.pump()
    a, b, c = (net.nodes[x] for x in "abc")
    assert a.stats["forwarded"] + b.stats["forwarded"] == 4 * (MAX_HOPS - 1)
    assert a.stats["hop_limit_exceeded"] + b.stats["hop_limit_exceeded"] == 4
    assert c.stats["forwarded"] == 0 and net.accepted("c") == []
    assert all(ln.up for node in (a, b) for ln in node.links.values())
    net.beam("b", (Atom("del_route"), b"c@h"))  # the loop gone, a channel gets through
    assert moved(net, lambda: net.connect_routed("a", 2, "c")) == {"b": 1}


# --- 4. static routes -------------------------------------------------------------------

def test_static_route_overrides_and_falls_back() -> None:
    """Of two equal ways round a ring the smaller name wins; a static route
    moves the traffic, deleting it moves it back, and a static route via a
    neighbour that is not up is ignored until the link comes (back)."""
    net = ring()
    a = net.nodes["a"]
    c1 = net.open("a", 1, "c")

    def send() -> None:
        net.send("a", 1, [b"x"])

    assert a.router.via[b"c@h"] == b"b@h" and moved(net, send) == {"b": 1}
    net.beam("a", (Atom("add_route"), b"c@h", b"d@h"))
    assert a.router.via[b"c@h"] == b"d@h" and moved(net, send) == {"d": 1}
    net.beam("a", (Atom("del_route"), b"c@h"))
    assert moved(net, send) == {"b": 1}
    net.beam("a", (Atom("unlink"), b"d@h"))
    net.pump()
    net.beam("a", (Atom("add_route"), b"c@h", b"d@h"))
    assert a.router.via[b"c@h"] == b"b@h" and moved(net, send) == {"b": 1}
    net.link("a", "d")
    net.pump()
    assert moved(net, send) == {"d": 1}
    assert net.received("c", c1) == [b"x"] * 5
    assert net.closed("a") == net.closed("c") == []


def test_a_route_change_that_loses_no_link_keeps_the_channel() -> None:
    """The static route moves the channel while a frame is still on the old path."""
    net = ring()
    c1 = net.open("a", 1, "c")
    net.send("a", 1, [b"first"])  # waits on a -> b
    net.beam("a", (Atom("add_route"), b"c@h", b"d@h"))
    net.send("a", 1, [b"second"])  # a -> d -> c: delivered first
    while net.queue:
        net._deliver(next((i for i, (src, key, _) in enumerate(net.queue)
                           if (src, net.wires[(src, key)][0]) != ("a", "b")), 0))
    assert net.closed("c") == [] and net.received("c", c1) == [b"first", b"second"]


# --- 5. a link on the path fails ------------------------------------------------------

def test_a_failed_link_moves_the_channels_round_the_ring() -> None:
    """b-c goes silent with a frame on it. The channels whose path used it
    (a's to c, and b's to its neighbour c) move round the other way without
    closing: what the far end has not acknowledged is sent again, and the
    far end delivers it once, in order."""
    net = ring()
    c1 = net.open("a", 1, "c")
    cb = net.open("b", 2, "c")
    net.blocked |= {("b", "c"), ("c", "b")}
    net.send("a", 1, [b"lost on b-c"])
    net.run_to(TIMEOUT + 0.2)
    assert [net.closed(x) for x in "abcd"] == [[], [], [], []]
    assert net.nodes["a"].router.via == {b"b@h": b"b@h", b"c@h": b"d@h", b"d@h": b"d@h"}
    assert net.nodes["c"].router.via == {b"a@h": b"d@h", b"b@h": b"d@h", b"d@h": b"d@h"}
    assert net.nodes["b"].router.via[b"c@h"] == b"a@h"
    assert not any(e[0] == "unreachable" for x in "abcd" for e in net.ctrl(x))
    assert net.received("c", c1) == [b"lost on b-c"]
    assert net.nodes["a"].stats["retransmitted"] >= 1

    def send() -> None:
        net.send("a", 1, [b"round"])
        net.send("b", 2, [b"from b"])
        net.send("c", c1, [b"the other way"])

    moved(net, send)
    assert net.received("c", c1) == [b"lost on b-c", b"round"]
    assert net.received("c", cb) == [b"from b"]
    assert net.received("a", 1) == [b"the other way"]


def test_a_silent_link_with_a_detour_is_cut_sooner_than_the_only_way() -> None:
    """Silence on a ring link is a cheap reroute: cut at heartbeat_timeout
    (above). On a line the link is the only way to what lies behind it,
    and cutting it a nodedown: b waits for heartbeat_timeout_max first."""
    net = line()
    c1 = net.open("a", 1, "c")
    net.blocked |= {("b", "c"), ("c", "b")}
    start = net.now
    net.run_to(start + TIMEOUT + 0.2)
    assert [net.closed(x) for x in "abc"] == [[], [], []]
    assert net.nodes["b"].stats["links_suspected"] == 1
    sole = Config().heartbeat_timeout_max
    net.run_to(start + sole + INTERVAL)
    assert net.nodes["b"].stats["links_down_heartbeat_timeout"] == 1
    assert net.closed("a") == [(1, "no_route")]
    assert net.closed("c") == [(c1, "no_route")]


def test_links_a_partition_cuts_are_not_kept_as_the_only_way() -> None:
    """a-b-c-d-a split in two: d-a goes silent, and b-c a little later. By
    the time b-c's silence reaches heartbeat_timeout, d-a is cut and known
    cut, so b-c looks like the only way from b to c; but it had a detour
    when its silence began, so it is cut at its own bound, not kept for
    heartbeat_timeout_max: a partition is found in heartbeat_timeout."""
    net = ring()
    start = net.now
    net.blocked |= {("d", "a"), ("a", "d")}
    net.run_to(start + 0.25)
    net.blocked |= {("b", "c"), ("c", "b")}
    net.run_to(start + 0.25 + TIMEOUT + 2 * INTERVAL)
    for node in "abcd":
        assert net.nodes[node].stats["links_down_heartbeat_timeout"] == 1, node
    assert ("unreachable", b"c@h") in net.ctrl("b")
    assert ("unreachable", b"b@h") in net.ctrl("c")


# --- 6. unreachable --------------------------------------------------------------------

def test_losing_every_path_makes_a_node_unreachable() -> None:
    """b unlinks c: a hears c is gone and its channel to c closes no_route; b's
    own channel to c closes unlinked; c, told by b's BYE, closes b's with
    unlinked (its reason) and a's with no_route. A channel to c is then refused, until
    the link is back."""
    net = line()
    c1 = net.open("a", 1, "c")
    cb = net.open("b", 2, "c")
    net.beam("b", (Atom("unlink"), b"c@h"))
    net.pump()
    assert ("unreachable", b"c@h") in net.ctrl("a") and ("unreachable", b"c@h") in net.ctrl("b")
    assert net.closed("a") == [(1, "no_route")]
    assert net.closed("b") == [(2, "unlinked")]
    net.connect_routed("a", 3, "c")
    assert net.closed("a")[-1] == (3, "no_route")
    assert {("unreachable", b"a@h"), ("unreachable", b"b@h")} <= set(net.ctrl("c"))
    # c's channel to b ends with b's goodbye; the one from a, now without
    # a path, as unreachable
    assert sorted(net.closed("c")) == [(c1, "no_route"), (cb, "unlinked")]
    net.link("b", "c")
    net.pump()
    assert net.ctrl("a")[-1] == ("reachable", b"c@h")
    net.open("a", 4, "c")


def test_unlinking_a_dialled_link_tells_the_neighbour_at_once() -> None:
    """unlink says BYE, so the neighbour drops its channels now, not after a timeout."""
    net = line()
    cb = net.open("b", 2, "c")
    net.beam("b", (Atom("unlink"), b"c@h"))
    net.pump()
    assert net.closed("c") == [(cb, "unlinked")]


# --- 7. bad link state from a link ------------------------------------------------------

def _lsp(count: int, nbrs: bytes = b"", seq: int = 1) -> bytes:
    """An LSP of x@h, 9 s to live, no endpoint: ``count`` neighbours, then ``nbrs``."""
    return b"\x03x@h" + struct.pack("!QIBH", seq, 9000, 0, count) + nbrs


def _nbr(peer: bytes, cost: int) -> bytes:
    return bytes([len(peer)]) + peer + struct.pack("!I", cost)


BOGUS = {
    "lsp empty": (Kind.LSP, b""),
    "lsp random": (Kind.LSP, random.Random(7).randbytes(60)),
    "lsp 65535 neighbours": (Kind.LSP, _lsp(65535)),
    "lsp more neighbours than listed": (Kind.LSP, _lsp(3, _nbr(b"a@h", 1))),
    "lsp cost 0": (Kind.LSP, _lsp(1, _nbr(b"a@h", 0))),
    "lsp lists itself": (Kind.LSP, _lsp(1, _nbr(b"x@h", 1))),
    "lsp trailing bytes": (Kind.LSP, _lsp(0) + b"\0"),
    "lsp sequence 0": (Kind.LSP, _lsp(0, seq=0)),
    "summary empty": (Kind.SUMMARY, b""),
    "summary random": (Kind.SUMMARY, random.Random(8).randbytes(50)),
    "summary 65535 entries": (Kind.SUMMARY, struct.pack("!H", 65535)),
    "summary truncated": (Kind.SUMMARY, struct.pack("!H", 2) + b"\x03a@h\0\0"),
}


def _inject(net: RNet, src: str, dst: str, kind: Kind, payload: bytes) -> None:
    hdr = frame.encode(kind, net.nodes[src].id, 0)  # as Router.out is sent
    net.nodes[dst].link_message(net.key(dst, src), [hdr + payload], net.now)
    net.collect(dst)
    net.pump()


@pytest.mark.parametrize(("kind", "payload"), BOGUS.values(), ids=BOGUS.keys())
def test_bad_link_state_is_counted_and_harmless(kind: Kind, payload: bytes) -> None:
    """Rejected, counted; the link stays, and traffic through it flows on."""
    net = line()
    c1 = net.open("a", 1, "c")
    b = net.nodes["b"]
    lsdb_before = b.router.db.lsps()
    _inject(net, "a", "b", kind, payload)
    assert b.stats["lsp_rejected"] == 1 and b.stats["frame_errors"] == 0
    assert b.router.db.lsps() == lsdb_before and b"x@h" not in b.router.via
    assert all(ln.up for ln in b.links.values()) and len(b.links) == 2
    net.send("a", 1, [b"still"])
    net.send("c", c1, [b"here"])
    net.pump()
    assert net.received("c", c1) == [b"still"] and net.received("a", 1) == [b"here"]
    assert net.closed("a") == net.closed("b") == net.closed("c") == []


def test_own_lsp_at_the_last_sequence_does_not_break_the_node() -> None:
    """A neighbour relays an LSP of b's name at the highest sequence (b's
    earlier life, or a bad neighbour): b must neither raise nor be left
    unable to originate (each refresh would raise from Node.timer)."""
    net = line()
    b = net.nodes["b"]
    _inject(net, "a", "b", Kind.LSP, encode(Lsp(b"b@h", 2**64 - 1, 30.0, ((b"a@h", 1),))))
    net.run_to(Config().lsp_lifetime)  # refreshes are due every lifetime / 3
    assert all(ln.up for ln in b.links.values()) and len(b.links) == 2


def test_names_from_link_state_are_bounded() -> None:
    """Origins seen only in LSPs that are gone take no memory for ever."""
    net = line()
    for i in range(50):
        _inject(net, "a", "b", Kind.LSP, encode(Lsp(b"n%d" % i, 1, 1.0, ())))
    net.run_to(2.0)
    router = net.nodes["b"].router
    assert len(router.db) == 3 and len(router.names) == 3


# --- 8. random graphs -----------------------------------------------------------------

@st.composite
def graphs(draw: st.DrawFn) -> tuple[str, dict[str, int]]:
    """Connected graphs of 3..7 nodes: "uv" (u dials v) -> u's cost."""
    labels = "abcdefg"[:draw(st.integers(3, 7))]
    pairs = {(labels[draw(st.integers(0, i - 1))], labels[i]) for i in range(1, len(labels))}
    pairs |= draw(st.sets(st.tuples(st.sampled_from(labels), st.sampled_from(labels))
                          .filter(lambda p: p[0] < p[1]), max_size=8))
    edges: dict[str, int] = {}
    for u, v in sorted(pairs):
        if draw(st.booleans()):
            u, v = v, u
        edges[u + v] = draw(st.integers(1, 30))
    return labels, edges


@settings(max_examples=60, deadline=None)
@given(graphs(), st.data())
def test_random_graphs_converge_to_shortest_paths(
        graph: tuple[str, dict[str, int]], data: st.DataObject) -> None:
    """Every node hears every other reachable, holds every LSP as the graph
    says, routes along a shortest path (Floyd-Warshall; each direction at
    the cost its own end advertises), and a routed channel gets through."""
    labels, edges = graph
    net = build(labels, edges)
    w: dict[str, dict[str, int]] = {x: {} for x in labels}
    for uv, cost in edges.items():
        w[uv[0]][uv[1]], w[uv[1]][uv[0]] = cost, COST
    d = {u: {v: 0 if u == v else w[u].get(v, float("inf")) for v in labels} for u in labels}
    for k in labels:
        for i in labels:
            for j in labels:
                d[i][j] = min(d[i][j], d[i][k] + d[k][j])
    lsdb = {name(u): tuple(sorted((name(v), c) for v, c in w[u].items())) for u in labels}
    for u in labels:
        node = net.nodes[u]
        others = {name(x) for x in labels if x != u}
        assert {e[1] for e in net.ctrl(u) if e[0] == "reachable"} == others
        assert not [e for e in net.ctrl(u) if e[0] == "unreachable"]
        assert {o: lsp.neighbours for o, lsp in node.router.db.lsps().items()} == lsdb
        assert set(node.router.via) == others
        for x in labels:
            if x != u:
                nbr = node.router.via[name(x)].decode()[0]
                assert w[u][nbr] + d[nbr][x] == d[u][x], (u, x, nbr)
    src, dst = data.draw(st.permutations(labels))[:2]
    hops, at = 0, src
    while at != dst:
        at, hops = net.nodes[at].router.via[name(dst)].decode()[0], hops + 1
    got = net.open(src, 1, dst)
    assert sum(moved(net, lambda: net.send(src, 1, [b"hi"])).values()) == hops - 1
    assert net.received(dst, got) == [b"hi"]


def test_keeping_a_neighbour_that_dialled_us_already_needs_no_dial() -> None:
    """b dialled a; a then asks to keep b: no second link, and a's BEAM
    hears at once that the neighbour is up."""
    net = line()
    net.beam("a", (Atom("link"), b"b@h", HOST, PORTS["b"], COST, COOKIE))
    net.pump()
    assert not [c for c in net.commands["a"] if isinstance(c, Dial)]
    assert net.ctrl("a")[-1] == ("neighbour_up", b"b@h")
