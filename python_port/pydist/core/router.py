"""Routing: adjacencies, link-state flooding, and the forwarding table.

The router knows neighbours by name and links by key; it never sees a
channel. It is fed adjacency changes, link-state frames and the time, and
leaves frames to send in :attr:`Router.out`. :meth:`settle` recomputes
shortest paths only if something changed since its last call (the node
calls it after each message and timer run, so a copy of an LSP it already
holds costs nothing) and says which destinations became reachable, which
are gone, and which are still reachable but lost a link of the path they
were using. Frames in flight on that link may be lost, so the node moves
the channels to that destination onto the new next hop and resends what
the far end has not acknowledged (:mod:`pydist.core.sequencing`): the
connection survives the change. Only a channel with no path left is closed.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from pydist.core import lsdb, spf
from pydist.core.channels import LinkKey
from pydist.core.lsdb import Lsdb, LspError, Verdict
from pydist.core.trust import Trust
from pydist.core.wire import Kind, node_id

log = logging.getLogger("pydist.router")


@dataclass
class Change:
    """What one :meth:`Router.settle` found."""

    reachable: list[bytes] = field(default_factory=list)
    unreachable: list[bytes] = field(default_factory=list)
    #: reachable still, but a link of the old path is gone
    broken: list[bytes] = field(default_factory=list)


class Router:
    def __init__(self, me: bytes, now: float, *, lifetime: float, sync_interval: float,
                 max_nodes: int, max_neighbours: int, stats: dict[str, int],
                 max_hops: int = 16, trust: Trust | None = None) -> None:
        self.me = me
        #: a frame crosses at most this many links: a node farther away is
        #: unreachable, not a black hole
        self.max_hops = max_hops
        self.too_far: set[bytes] = set()
        #: with node keys: LSPs are signed, and only correctly signed ones taken
        self.trust = trust
        self.db = Lsdb(me, lifetime, max_nodes)
        self.max_neighbours = max_neighbours
        self.sync_interval = sync_interval
        self.stats = stats
        #: up neighbours: name -> (link key, cost)
        self.adjacent: dict[bytes, tuple[LinkKey, int]] = {}
        #: static routes from Erlang: destination -> neighbour to send through
        self.static: dict[bytes, bytes] = {}
        #: the forwarding table: destination node id -> link key
        self.hops: dict[int, LinkKey] = {}
        self.via: dict[bytes, bytes] = {}  # destination -> neighbour, as used
        #: node id -> name of every node in the tables (rebuilt by settle,
        #: so it is bounded as they are)
        self.names: dict[int, bytes] = {node_id(me): me}
        self.paths = spf.Paths(me)
        self.dirty = True
        self.out: list[tuple[LinkKey, Kind, bytes]] = []
        #: where this node listens, ``host:port``, advertised in its LSP
        self.endpoint = b""
        self.refresh_at = now
        self.sync_at = now + sync_interval

    # ------------------------------------------------------------------
    # adjacencies

    def neighbour_up(self, name: bytes, key: LinkKey, cost: int, now: float) -> None:
        old = self.adjacent.get(name)
        self.adjacent[name] = (key, cost)
        if old is not None and old == (key, cost):
            return
        if old is not None and old[1] == cost:
            self.dirty = True  # same neighbour, another link: only the table moves
        else:
            self._originate(now)
        # a new link: the far end may be a new life of the neighbour, which
        # knows nothing yet
        self.out.append((key, Kind.SUMMARY, lsdb.encode_summary(self.db.summary())))

    def neighbour_down(self, name: bytes, now: float) -> None:
        if self.adjacent.pop(name, None) is not None:
            self._originate(now)

    # ------------------------------------------------------------------
    # link-state frames

    def receive_lsp(self, key: LinkKey, payload: bytes, now: float) -> None:
        trust = self.trust
        try:
            lsp = lsdb.decode(payload, self.max_neighbours, signed=trust is not None)
        except LspError as exc:
            self.stats["lsp_rejected"] += 1
            log.error("bad link-state packet: %s", exc)
            return
        if trust is not None:
            if not trust.verify(lsp.origin, lsdb.signed_part(lsp), lsp.signature):
                self.stats["lsp_forged"] += 1
                log.error("ignored a link-state packet in the name of %s: not signed by "
                          "its key", lsp.origin.decode(errors="replace"))
                return
            if lsp.lifetime > self.db.lifetime:  # the lifetime is not signed
                lsp = replace(lsp, lifetime=self.db.lifetime)
        ident = node_id(lsp.origin)
        if self.names.get(ident, lsp.origin) != lsp.origin:
            self.stats["lsp_rejected"] += 1
            log.error("node names %r and %r share an id; ignoring the second",
                      self.names[ident], lsp.origin)
            return
        old = self.db.get(lsp.origin)
        verdict = self.db.receive(lsp, now)
        self.stats[f"lsp_{verdict.value}"] += 1
        if verdict is Verdict.NEW:
            # a refresh that changes no link changes no path
            if old is None or old.neighbours != lsp.neighbours:
                self.dirty = True
            self._flood(lsp.origin, now, but=key)
        elif verdict is Verdict.STALE:
            self._send_lsp(key, lsp.origin, now)
        elif verdict is Verdict.OURS_NEWER:
            # an earlier life of this node is still remembered: outbid it
            self._originate(now, at_least=lsp.seq)

    def receive_summary(self, key: LinkKey, payload: bytes, now: float) -> None:
        try:
            summary = lsdb.decode_summary(payload, self.db.max_entries)
        except LspError as exc:
            self.stats["lsp_rejected"] += 1
            log.error("bad link-state summary: %s", exc)
            return
        send, behind = self.db.compare(summary)
        for origin in send:
            self._send_lsp(key, origin, now)
        if behind:
            self.out.append((key, Kind.SUMMARY, lsdb.encode_summary(self.db.summary())))

    # ------------------------------------------------------------------
    # static routes

    def advertise(self, endpoint: bytes, now: float) -> None:
        if endpoint != self.endpoint:
            self.endpoint = endpoint
            self._originate(now)

    def add_route(self, dest: bytes, via: bytes) -> None:
        self.static[dest] = via
        self.dirty = True

    def del_route(self, dest: bytes) -> bool:
        self.dirty = True
        return self.static.pop(dest, None) is not None

    # ------------------------------------------------------------------
    # time

    def timer(self, now: float) -> None:
        if now >= self.refresh_at:
            self._originate(now)
        if self.db.expire(now):
            self.dirty = True
        if now >= self.sync_at:
            self.sync_at = now + self.sync_interval
            summary = lsdb.encode_summary(self.db.summary())
            self.out.extend((key, Kind.SUMMARY, summary) for key, _ in self.adjacent.values())

    def deadline(self) -> float:
        return min(self.refresh_at, self.sync_at, self.db.deadline())

    # ------------------------------------------------------------------
    # the forwarding table

    def settle(self) -> Change | None:
        """Recompute paths if anything changed since the last call."""
        if not self.dirty:
            return None
        self.dirty = False
        self.stats["route_computations"] += 1
        old_paths, old_via = self.paths, self.via
        lsps = self.db.lsps()
        self.paths = spf.shortest_paths(self.me, lsps)
        hops = self.paths.hops
        too_far = {dest for dest in self.paths.next_hop if hops[dest] > self.max_hops}
        for dest in sorted(too_far - self.too_far):
            log.warning("%s is %d links away, past max_hops (%d): unreachable",
                        dest.decode(errors="replace"), hops[dest], self.max_hops)
        self.too_far = too_far
        via = {dest: nbr for dest, nbr in self.paths.next_hop.items() if dest not in too_far}
        # a neighbour is reachable from HELLO on, before its LSP arrives
        via.update((nbr, nbr) for nbr in self.adjacent if nbr not in via)
        via.update({dest: nbr for dest, nbr in self.static.items()
                    if nbr in self.adjacent and dest != self.me})
        self.via = via
        self.hops = {node_id(dest): self.adjacent[nbr][0] for dest, nbr in via.items()}
        self.names = {node_id(name): name for name in (*lsps, *self.adjacent, *via)}
        self.names[node_id(self.me)] = self.me
        links = {(u, v) for u, nbrs in spf.edges(lsps).items() for v in nbrs}
        change = Change()
        change.reachable = sorted(set(via) - set(old_via))
        change.unreachable = sorted(set(old_via) - set(via))
        for dest in sorted(set(old_via) & set(via)):
            if not _intact(self._path(old_paths, old_via, dest), links, self.adjacent):
                change.broken.append(dest)
        return change

    def _path(self, paths: spf.Paths, via: dict[bytes, bytes], dest: bytes) -> list[bytes]:
        if paths.next_hop.get(dest) == via[dest]:
            return paths.path(dest)
        return [self.me, via[dest]]  # a static route: we know only its first link

    def next_hop(self, dest: int) -> LinkKey | None:
        return self.hops.get(dest)

    # ------------------------------------------------------------------
    # helpers

    def _originate(self, now: float, at_least: int = 0) -> None:
        neighbours = {name: cost for name, (_, cost) in self.adjacent.items()}
        old = self.db.get(self.me)
        self.db.originate(neighbours, self.endpoint, now, at_least,
                          sign=None if self.trust is None else self.trust.sign)
        self.refresh_at = now + self.db.lifetime / 3
        new = self.db.get(self.me)
        if old is None or new is None or old.neighbours != new.neighbours:
            self.dirty = True
        self._flood(self.me, now)

    def _flood(self, origin: bytes, now: float, but: LinkKey | None = None) -> None:
        for key, _ in self.adjacent.values():
            if key != but:
                self._send_lsp(key, origin, now)

    def _send_lsp(self, key: LinkKey, origin: bytes, now: float) -> None:
        lsp = self.db.get(origin)
        remaining = self.db.remaining(origin, now) if lsp is not None else 0.0
        if lsp is not None and remaining >= 0.001:  # an LSP out of time is not sent
            payload = lsdb.encode(lsp, remaining)
            self.out.append((key, Kind.LSP, payload))

    def topology(self, now: float) -> dict[str, object]:
        """For ``py_dist:topology/0``: the database and the table."""
        return {
            "lsdb": [(lsp.origin, lsp.seq, self.db.remaining(o, now), list(lsp.neighbours),
                      lsp.endpoint)
                     for o, lsp in sorted(self.db.lsps().items())],
            "routes": [(dest, nbr, self.paths.dist.get(dest, -1),
                        dest in self.static and self.static[dest] == nbr)
                       for dest, nbr in sorted(self.via.items())],
        }


def _intact(path: list[bytes], links: set[tuple[bytes, bytes]],
            adjacent: Iterable[bytes]) -> bool:
    if len(path) < 2:
        return False
    if path[1] not in adjacent:
        return False
    return all(edge in links for edge in itertools.pairwise(path[1:]))
