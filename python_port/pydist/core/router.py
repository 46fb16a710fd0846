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

What scales (see :mod:`pydist.core.backoff`): a recomputation and an
origination of our LSP each wait behind a back-off, so a burst of changes
costs a few runs, not one per change, while the first change after a
quiet spell is acted on at once; the shortest paths take our own links
from the adjacencies (not from the LSP we last flooded, which may wait);
refreshes are jittered, so the nodes that started together do not keep
flooding together; a copy of an LSP we hold is known from its bytes.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field, replace

from pydist.core import lsdb, spf
from pydist.core.backoff import Backoff
from pydist.core.channels import LinkKey
from pydist.core.config import Config
from pydist.core.damping import DAMPED_COST, Damping
from pydist.core.lsdb import Lsdb, LspError, Verdict
from pydist.core.trust import Trust
from pydist.core.wire import Kind, node_id

log = logging.getLogger("pydist.router")

_NEVER = float("inf")
#: a refresh (and a summary) comes up to this share of its interval early,
#: drawn each time, so nodes started together drift apart
REFRESH_JITTER = 0.25


def spf_backoff() -> Backoff:
    """A burst of changes is recomputed 20 ms apart, churn 0.5 s apart,
    after a first recomputation at once; a burst costing less than 4,000
    LSP-runs (a few runs over 1,000 LSPs, every run over a small network)
    is recomputed at once throughout."""
    return Backoff(short=0.020, long=0.5, learn=0.5, holddown=1.0, budget=4000)


def origination_backoff() -> Backoff:
    """Our LSP goes out at once after a quiet second, then at most every
    50 ms in a burst (a cold start's neighbours coming up make one LSP, not
    one each), every 0.5 s under churn. No budget: every origination costs
    each node of the network a packet, however small our database is."""
    return Backoff(short=0.050, long=0.5, learn=0.5, holddown=1.0, budget=0)


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
                 max_hops: int = 16, trust: Trust | None = None,
                 spf_delays: Backoff | None = None,
                 origination_delays: Backoff | None = None,
                 damping: Damping | None = None) -> None:
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
        #: up neighbours: name -> (link key, cost), the cost as advertised
        #: and used: a flapping link's (see damping) is raised
        self.adjacent: dict[bytes, tuple[LinkKey, int]] = {}
        #: the cost each up neighbour's link was configured with
        self._configured: dict[bytes, int] = {}
        self.damping = damping or Damping(Config.flap_half_life, Config.flap_suppress_max)
        #: static routes from Erlang: destination -> neighbour to send through
        self.static: dict[bytes, bytes] = {}
        #: the forwarding table: destination node id -> link key
        self.hops: dict[int, LinkKey] = {}
        self.via: dict[bytes, bytes] = {}  # destination -> neighbour, as used
        #: node id -> name of every node in the tables (kept by settle, so
        #: it is bounded as they are), and the other way round
        self.names: dict[int, bytes] = {node_id(me): me}
        self._ids: dict[bytes, int] = {me: node_id(me)}
        self.paths = spf.Paths(me)
        #: the table needs recomputing (the node sets it too)
        self.dirty = True
        self.spf = spf_delays or spf_backoff()
        self.origination = origination_delays or origination_backoff()
        # a node starting is a burst: its endpoint, then its neighbours one
        # by one; one LSP for them all, not a first one (spread through
        # the first summaries) that only says where it listens
        self.origination.busy(now)
        #: an origination waits: the sequence it must outbid
        self._outbid = 0
        #: neighbours gone since the last recomputation
        self._lost_neighbours: set[bytes] = set()
        self.out: list[tuple[LinkKey, Kind, bytes]] = []
        #: where this node listens, ``host:port``, advertised in its LSP
        self.endpoint = b""
        self.refresh_at = now
        self.sync_at = now + sync_interval * (1 - REFRESH_JITTER * _jitter(me, b"sync", 0))

    # ------------------------------------------------------------------
    # adjacencies

    def neighbour_up(self, name: bytes, key: LinkKey, cost: int, now: float) -> None:
        self._configured[name] = cost
        if name in self.damping.suppressed:
            cost = min(cost + DAMPED_COST, lsdb.MAX_COST)
        old = self.adjacent.get(name)
        self.adjacent[name] = (key, cost)
        if old is not None and old == (key, cost):
            return
        self.dirty = True  # our own links come from here, not from our LSP
        if old is None or old[1] != cost:
            self._originate_soon(now)
        if old is None or old[0] != key:
            # a new link: the far end may be a new life of the neighbour,
            # which knows nothing yet (a cost changed on the same link, by
            # configuration or dampening, tells it nothing new)
            self.out.append((key, Kind.SUMMARY, lsdb.encode_summary(self.db.summary())))

    def neighbour_down(self, name: bytes, now: float, failed: bool = True) -> None:
        """``failed``: the link failed, rather than being unlinked on purpose
        (only failures count towards dampening)."""
        if self.adjacent.pop(name, None) is not None:
            self._configured.pop(name, None)
            self._lost_neighbours.add(name)
            self.dirty = True
            self._originate_soon(now)
            if failed and self.damping.failed(name, now):
                self.stats["links_damped"] += 1
                log.warning("link to %s flaps: kept out of the routes while there is "
                            "another way, for %.0f s or more if it goes on",
                            name.decode(errors="replace"), self.damping.reuse_at(name) - now)

    def _undamp(self, now: float) -> None:
        """Suppressed neighbours stable long enough: their links' own cost again."""
        for name in self.damping.release(now):
            if name in self.adjacent:
                log.info("link to %s stable again: back in the routes",
                         name.decode(errors="replace"))
                self.neighbour_up(name, self.adjacent[name][0], self._configured[name], now)

    # ------------------------------------------------------------------
    # link-state frames

    def receive_lsp(self, key: LinkKey, payload: bytes, now: float) -> None:
        if self.db.duplicate(payload):  # most of what comes: no decoding, no checking
            self.stats["lsp_duplicate"] += 1
            return
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
        ident = self._id(lsp.origin)
        if self.names.get(ident, lsp.origin) != lsp.origin:
            self.stats["lsp_rejected"] += 1
            log.error("node names %r and %r share an id; ignoring the second",
                      self.names[ident], lsp.origin)
            return
        old = self.db.get(lsp.origin)
        verdict = self.db.receive(lsp, now, payload)
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
            self._originate_soon(now, outbid=lsp.seq)

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
            self._originate_soon(now)

    def detour(self, neighbour: bytes) -> bool:
        """Whether ``neighbour`` can be reached without the direct link to
        it: from another neighbour, over links the link state lists both
        ways, never through this node."""
        links = self.db.links
        todo = [n for n in self.adjacent if n != neighbour]
        seen = {self.me, neighbour, *todo}
        while todo:
            u = todo.pop()
            for v in links.get(u, ()):
                if u not in links.get(v, ()):
                    continue  # listed one way only
                if v == neighbour:
                    return True
                if v not in seen:
                    seen.add(v)
                    todo.append(v)
        return False

    def add_route(self, dest: bytes, via: bytes) -> None:
        self.static[dest] = via
        self.dirty = True

    def del_route(self, dest: bytes) -> bool:
        self.dirty = True
        return self.static.pop(dest, None) is not None

    # ------------------------------------------------------------------
    # time

    def timer(self, now: float) -> None:
        if self.damping.suppressed:
            self._undamp(now)
        if now >= self.refresh_at:
            self.refresh_at = _NEVER  # until the origination it asks for
            self._originate_soon(now)
        if self.origination.due <= now:
            self._originate(now)
        if self.db.expire(now):
            self.dirty = True
        if now >= self.sync_at:
            early = REFRESH_JITTER * _jitter(self.me, b"sync", self.db.seq)
            self.sync_at = now + self.sync_interval * (1 - early)
            summary = lsdb.encode_summary(self.db.summary())
            self.out.extend((key, Kind.SUMMARY, summary) for key, _ in self.adjacent.values())

    def deadline(self) -> float:
        """The next refresh, sync, expiry, origination or recomputation due."""
        return min(self.refresh_at, self.sync_at, self.db.deadline(), self.origination.due,
                   self.spf.due if self.dirty else _NEVER, self.damping.deadline())

    # ------------------------------------------------------------------
    # the forwarding table

    def settle(self, now: float) -> Change | None:
        """Recompute paths if anything changed since the last run and the
        back-off lets it run now (else :meth:`deadline` says when)."""
        if not self.dirty:
            return None
        if not self.spf.pending:
            self.spf.ask(now)
        if self.spf.due > now:
            return None
        self.dirty = False
        self.spf.done(now, len(self.db))
        self.stats["route_computations"] += 1
        old_paths, old_via = self.paths, self.via
        own = {name: cost for name, (_, cost) in self.adjacent.items()}
        self.paths = paths = spf.search(self.me, self.db.links, own)
        hops = paths.hops
        too_far = {dest for dest, n in hops.items() if n > self.max_hops}
        for dest in sorted(too_far - self.too_far):
            log.warning("%s is %d links away, past max_hops (%d): unreachable",
                        dest.decode(errors="replace"), hops[dest], self.max_hops)
        self.too_far = too_far
        via = ({dest: nbr for dest, nbr in paths.next_hop.items() if dest not in too_far}
               if too_far else dict(paths.next_hop))
        # a neighbour is reachable from HELLO on, before its LSP arrives
        for nbr in self.adjacent.keys() - via.keys():
            via[nbr] = nbr
        via.update({dest: nbr for dest, nbr in self.static.items()
                    if nbr in self.adjacent and dest != self.me})
        self.via = via
        ids, adjacent = self._ids, self.adjacent
        for dest in via.keys() - ids.keys():
            ids[dest] = node_id(dest)
        self.hops = {ids[dest]: adjacent[nbr][0] for dest, nbr in via.items()}
        self._rename()
        change = Change()
        change.reachable = sorted(via.keys() - old_via.keys())
        change.unreachable = sorted(old_via.keys() - via.keys())
        change.broken = self._broken(old_paths, old_via)
        return change

    def _broken(self, old: spf.Paths, old_via: dict[bytes, bytes]) -> list[bytes]:
        """The destinations still reachable whose old path lost a link: only
        a link gone since the last run can break one, so with none gone
        nothing is walked."""
        links, lost = self.db.links, self.db.lost
        cut = {(u, v) for u, v in lost if u not in links.get(v, ()) or v not in links.get(u, ())}
        lost.clear()
        gone, self._lost_neighbours = self._lost_neighbours, set()
        gone = {n for n in gone if n not in self.adjacent}
        if not cut and not gone:
            return []
        return spf.broken(old, old_via, self.via, cut, self.adjacent)

    def _rename(self) -> None:
        """The id -> name table over what the tables hold now; ids are
        hashed once per name, and forgotten when the tables forget it."""
        ids = self._ids
        current = self.db.entries.keys() | self.adjacent.keys() | self.via.keys() | {self.me}
        for name in current - ids.keys():
            ids[name] = node_id(name)
        if len(ids) > 2 * len(current) + 64:
            self._ids = ids = {name: ids[name] for name in current}
        self.names = {ids[name]: name for name in current}

    def _id(self, name: bytes) -> int:
        ident = self._ids.get(name)
        if ident is None:
            ident = node_id(name)
        return ident

    def next_hop(self, dest: int) -> LinkKey | None:
        return self.hops.get(dest)

    # ------------------------------------------------------------------
    # helpers

    def _originate_soon(self, now: float, outbid: int = 0) -> None:
        """Our LSP must change: now, or when the back-off says (the
        origination then takes in every change made until it runs)."""
        self._outbid = max(self._outbid, outbid)
        if self.origination.ask(now) <= now:
            self._originate(now)

    def _originate(self, now: float) -> None:
        neighbours = {name: cost for name, (_, cost) in self.adjacent.items()}
        self.db.originate(neighbours, self.endpoint, now, self._outbid,
                          sign=None if self.trust is None else self.trust.sign)
        self.origination.done(now)
        self._outbid = 0
        # refreshed a little early, by a share drawn from name and sequence
        early = REFRESH_JITTER * _jitter(self.me, b"refresh", self.db.seq)
        self.refresh_at = now + self.db.lifetime / 3 * (1 - early)
        self._flood(self.me, now)

    def _flood(self, origin: bytes, now: float, but: LinkKey | None = None) -> None:
        payload = self._payload(origin, now)
        if payload is not None:
            self.out.extend((key, Kind.LSP, payload) for key, _ in self.adjacent.values()
                            if key != but)

    def _send_lsp(self, key: LinkKey, origin: bytes, now: float) -> None:
        payload = self._payload(origin, now)
        if payload is not None:
            self.out.append((key, Kind.LSP, payload))

    def _payload(self, origin: bytes, now: float) -> bytes | None:
        """The LSP of ``origin`` as held, with the lifetime it has left; an
        LSP out of time is not sent."""
        entry = self.db.entries.get(origin)
        if entry is None:
            return None
        remaining = self.db.remaining(origin, now)
        if remaining < 0.001:
            return None
        return lsdb.with_lifetime(entry.wire, origin, remaining)

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


def _jitter(me: bytes, what: bytes, seq: int) -> float:
    """A number in [0, 1) drawn from the node's name, what it is for and a
    sequence: spread as a random one, and the same in every run (the
    simulator's runs stay reproducible)."""
    digest = hashlib.blake2b(b"%s/%s/%d" % (me, what, seq), digest_size=8).digest()
    return int.from_bytes(digest, "big") / (1 << 64)
