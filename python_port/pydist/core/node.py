"""The node: the state machine that composes the core.

Fed port packets from the BEAM, messages from links and the time; the I/O
shell takes what it answers with :meth:`Node.take_output` (bytes for the
BEAM, messages for links, frames in transit and link commands, see
:mod:`pydist.core.output`) and carries it out. It is the only core module
that knows all the others: links and channels are described in
:mod:`pydist.core.channels`, routing in
:mod:`pydist.core.router`; the node inherits its parts that deal with one
link (:mod:`pydist.core.neighbours`), one channel's frames
(:mod:`pydist.core.delivery`) and lane messages (:mod:`pydist.core.lanes`),
and keeps the dispatch, forwarding, time and route changes itself.
"""

from __future__ import annotations

import logging
import random
import secrets
from collections import Counter
from collections.abc import Callable
from typing import Any

from pydist.core import frame, port_codec
from pydist.core.admission import ADMIT_TIMEOUT, Cookies
from pydist.core.channels import Channel, ChannelTable, Link, LinkKey, received_key
from pydist.core.config import Config
from pydist.core.delivery import ORDERLY, Delivery, Out
from pydist.core.etf import Atom, EtfError
from pydist.core.lanes import LanePath
from pydist.core.liveness import Liveness, Verdict
from pydist.core.lsdb import MAX_COST
from pydist.core.neighbours import Neighbours
from pydist.core.outbox import BARRIER
from pydist.core.output import Command, Output
from pydist.core.router import Router
from pydist.core.trust import Trust
from pydist.core.wire import (
    CLOSE_REASONS,
    FLAG_SEALED,
    HOPS_OFFSET,
    OP_CTRL,
    OP_FLOWS,
    OP_LANE,
    Kind,
    node_id,
)

log = logging.getLogger("pydist.node")

_DATA = int(Kind.DATA)
#: kinds that travel end to end (and are forwarded); the rest stay on one link
_ROUTED = frozenset((int(Kind.DATA), int(Kind.OPEN), int(Kind.CLOSE), int(Kind.ACK),
                     int(Kind.LANE)))
#: what a link carries before both ends proved the cookie
_ADMISSION = frozenset((int(Kind.HELLO), int(Kind.PROOF), int(Kind.BYE)))


class Node(Neighbours, Delivery, LanePath):
    def __init__(self, config: Config, now: float, rng: random.Random | None = None,
                 trust: Trust | None = None,
                 entropy: Callable[[int], bytes] = secrets.token_bytes) -> None:
        self.config = config
        self.trust = trust
        #: the nonces of link admission: unpredictable, unlike ``rng``
        self.entropy = entropy
        self.cookies = Cookies()
        self.sealed = 0 if trust is None else FLAG_SEALED
        self.liveness = Liveness(config.heartbeat_interval, config.heartbeat_timeout)
        self.rng = rng or random.Random()
        self.name: bytes | None = None
        self.id = 0
        self.links: dict[LinkKey, Link] = {}
        self.by_peer: dict[bytes, Link] = {}
        self.channels = ChannelTable(self.rng)
        self.next_dial = 1
        self.stats: Counter[str] = Counter()
        #: False while the shell is not reading links (the BEAM is behind):
        #: silence then is ours, not the neighbours', and kills no link
        #: (see :meth:`set_receiving`)
        self.receiving = True
        #: the BEAM's port owner asked us to stop reading links for a while
        self.beam_holds = False
        #: links the shell does not read for a while (a link it dialled, by
        #: key; None: the listener, which carries every link dialled to us)
        self.rx_held: set[LinkKey | None] = set()
        self.deadline = now + config.heartbeat_interval
        self.router = self._new_router(b"", now)
        #: neighbours the BEAM asked to keep a link to: name -> cost
        self.wanted: dict[bytes, int] = {}
        self.seq_due: set[int] = set()  # see Delivery
        self.resend_at: dict[int, tuple[float, float]] = {}
        # outputs, handed to the shell by take_output (see Output)
        self.port_out: list[Out] = []
        self.link_out: list[tuple[LinkKey, list[Out]]] = []
        self.transit_out: list[tuple[LinkKey, list[Out]]] = []
        self.commands: list[Command] = []
        #: the link and size of the frame the last link message was
        #: forwarded as, if it was (see :meth:`forwarded`)
        self._forwarded: tuple[LinkKey, int] | None = None
        #: with encrypted links, the node name each accepted link's key is
        #: registered for (see :meth:`link_authenticated`); its HELLO must
        #: claim it
        self.authenticated: dict[LinkKey, bytes] = {}
        #: peers (by id) with a live distribution connection: channels the
        #: BEAM said are up, which only a handshake that checked the cookie
        #: end to end makes; lane messages are taken from these alone
        self.live_peers: Counter[int] = Counter()
        self._init_lanes(self.rng)

    def _new_router(self, name: bytes, now: float) -> Router:
        c = self.config
        return Router(name, now, lifetime=c.lsp_lifetime, sync_interval=c.lsdb_sync_interval,
                      max_nodes=c.max_nodes, max_neighbours=c.max_links, stats=self.stats,
                      trust=self.trust)

    # ------------------------------------------------------------------
    # output

    def take_output(self) -> Output:
        """What the node asked for since the last call, for the shell to
        carry out (see :mod:`pydist.core.output`); the node starts new
        lists, so nothing is copied."""
        out = Output(self.port_out, self.link_out, self.transit_out, self.commands)
        self.port_out, self.link_out, self.transit_out, self.commands = [], [], [], []
        return out

    def forwarded(self) -> tuple[LinkKey, int] | None:
        """The link, and the size in bytes, of the frame in transit that
        the last :meth:`link_message` sent on, if it forwarded one: the
        shell holds back the link it came from while that link congests
        (see :mod:`pydist.shell.transit`)."""
        return self._forwarded

    # ------------------------------------------------------------------
    # input from the BEAM

    def port_packet(self, packet: bytes | memoryview, now: float) -> None:
        try:
            decoded = port_codec.decode_packet(packet)
        except (port_codec.PortError, EtfError) as exc:
            self.stats["port_errors"] += 1
            log.error("bad packet from the BEAM: %s", exc)
            return
        op = decoded[0]
        if op == OP_FLOWS:
            _, chan, groups = decoded
            self._send_data(chan, groups, now)
        elif op == OP_LANE:
            _, lane, deadline_ms, dest, notify, payload = decoded
            self._lane_send(lane, deadline_ms, dest, notify, payload, now)
        elif op == OP_CTRL:
            self._control(decoded[1], now)
            self._settle(now)
        else:  # a handshake packet: in order with everything
            _, chan, body = decoded
            self._send_data(chan, [(BARRIER, body)], now)

    def _control(self, term: Any, now: float) -> None:
        match term:
            case (Atom("set_node"), bytes(name)):
                self.name = name
                self.id = node_id(name)
                self.router = self._new_router(name, now)
                self._check_key(name)
            case (Atom("cookie"), bytes(cookie)):
                self.cookies.set_own(cookie)
            case (Atom("connect"), int(chan), bytes(peer), bytes(host), int(port),
                  bytes(cookie)) if not host or _endpoint(host, port):
                self.cookies.use_with(peer, cookie)
                self._connect(chan, peer, _endpoint(host, port) if host else None, now)
            case (Atom("up"), int(chan)):
                ch = self.channels.get(chan)
                if ch is not None and not ch.live:
                    ch.live = True
                    self.live_peers[ch.peer_id] += 1
                    self._lanes_peer_up(ch.peer_id)
            case (Atom("input"), Atom("hold") | Atom("release") as what):
                self.beam_holds = what == "hold"
                self.stats["beam_holds" if self.beam_holds else "beam_releases"] += 1
            case (Atom("info"), int(ref)):
                reply = (Atom("info"), ref, self.info())
                self.port_out.append(port_codec.encode_ctrl(reply))
            case (Atom("query"), int(ref), Atom("topology")):
                reply = (Atom("reply"), ref, self.topology(now))
                self.port_out.append(port_codec.encode_ctrl(reply))
            case (Atom("close"), int(chan), reason):
                ch = self.channels.get(chan)
                if ch is not None:
                    self._send(ch.link, Kind.CLOSE, ch, str(reason).encode(), now)
                    self._forget(ch)
            case (Atom("link"), bytes(peer), bytes(host), int(port), int(cost),
                  bytes(cookie)) if _endpoint(host, port) and 0 < cost <= MAX_COST:
                self.cookies.use_with(peer, cookie)
                self._keep_link(peer, _endpoint(host, port), cost, now)
            case (Atom("unlink"), bytes(peer)):
                self.wanted.pop(peer, None)
                for link in [ln for ln in self.links.values() if ln.peer == peer]:
                    # the neighbour drops the link now, and reroutes what used it
                    self._send(link, Kind.BYE, None, b"unlinked", now)
                    self._link_down(link, "unlinked", now)
            case (Atom("advertise"), bytes(endpoint)) if len(endpoint) <= 255:
                self.router.advertise(endpoint, now)
            case (Atom("add_route"), bytes(dest), bytes(via)):
                self.router.add_route(dest, via)
            case (Atom("del_route"), bytes(dest)):
                self.router.del_route(dest)
            case _:
                # only its tag: a malformed term may hold a cookie
                self.stats["port_errors"] += 1
                tag = term[0] if isinstance(term, tuple) and term else type(term).__name__
                log.error("unknown control message from the BEAM: %.40r", tag)

    def _connect(self, chan: int, peer: bytes, endpoint: str | None, now: float) -> None:
        """Open a channel to ``peer``: along the route to it, or over the
        link we have or make to ``endpoint``. Without an endpoint (the BEAM
        knew the node reachable and skipped epmd) a node that is no longer
        reachable refuses the channel."""
        if self.name is None or chan in self.channels:
            self._tell_closed(chan, "not_ready" if self.name is None else "duplicate_channel")
            return
        peer_id = node_id(peer)
        if self.trust is not None and peer not in self.trust.keys:
            log.error("not connecting to %s: it has no key in the authorized keys",
                      peer.decode(errors="replace"))
            self._tell_closed(chan, "no_route")
            return
        key = self.router.next_hop(peer_id)
        link = self.links.get(key) if key is not None else self.by_peer.get(peer)
        if link is None:
            if endpoint is None:
                self._tell_closed(chan, "no_route")
                return
            link = self._dial(peer, endpoint, now)
        ch = self._channel(chan, peer, peer_id, self.channels.new_epoch(peer_id), True, link)
        ch.opened = False
        self._open(ch, now)

    def _open(self, ch: Channel, now: float) -> None:
        """Send a channel's OPEN once its link is admitted; until then the
        channel waits (see _link_admitted, and _settle, which may move it
        to another link that is admitted first)."""
        if not ch.opened and ch.link.up:
            assert self.name is not None
            ch.opened = True
            self._send(ch.link, Kind.OPEN, ch, _names(self.name, ch.peer), now)

    def _link_admitted(self, link: Link, now: float) -> None:
        """Channels made over a link on its way: open them now."""
        for chan in sorted(link.channels):
            ch = self.channels[chan]
            self._open(ch, now)
            self._pump(ch, now)

    # ------------------------------------------------------------------
    # input from links

    def link_message(self, key: LinkKey, parts: list[Any], now: float) -> None:
        """One ZeroMQ message from a link: see :func:`frame.split`."""
        self._forwarded = None
        self._link_message(key, parts, now)
        if self.router.dirty or self.router.out:
            self._settle(now)

    def _link_message(self, key: LinkKey, parts: list[Any], now: float) -> None:
        link = self.links.get(key)
        payload: Any  # a view of the message, or the opened bytes of a sealed one
        try:
            head, payload = frame.split(parts)
            hdr = frame.decode(head)
        except frame.FrameError as exc:
            self._bad_frame(link, key, str(exc), now)
            return
        if link is None:
            self._unknown_link(key, hdr, bytes(payload), now)
            return
        kind = hdr.kind
        if not link.up and kind not in _ADMISSION:
            self._early(link, kind)
            return
        link.last_rx = now
        if kind in _ROUTED:
            if hdr.dst != self.id:
                self._forward(hdr, head, payload, parts, now)
            elif (self.sealed or hdr.flags & FLAG_SEALED) and (
                    payload := self._unseal(hdr, head, payload)) is None:
                return
            elif kind == _DATA:
                self._receive_data(hdr, payload, now)
            elif kind == Kind.ACK:
                self._ack(hdr, now)
            elif kind == Kind.LANE:
                self._receive_lane(hdr, payload, now)
            elif kind == Kind.OPEN:
                self._opened(link, hdr, bytes(payload), now)
            else:
                self._remote_close(hdr, bytes(payload))
        elif kind == Kind.HEARTBEAT:
            pass
        elif kind == Kind.HELLO:
            self._hello(link, bytes(payload), now)
        elif kind == Kind.PROOF:
            self._proof(link, bytes(payload), now)
        elif kind == Kind.BYE:  # our neighbour's node exits, or just drops this link
            self._bye(link, bytes(payload), now)
        elif kind == Kind.LSP:
            self.router.receive_lsp(key, bytes(payload), now)
        elif kind == Kind.SUMMARY:
            self.router.receive_summary(key, bytes(payload), now)

    def _forward(self, hdr: frame.Header, head: memoryview, payload: Any, parts: list[Any],
                 now: float) -> None:
        """A frame for another node: on along the table, one hop less. A
        payload that came as a part of its own goes on as that very part (a
        ZeroMQ message shares it by reference count; no copy, no Python
        buffer to keep alive)."""
        if hdr.hops <= 1:
            self.stats["hop_limit_exceeded"] += 1
            return
        key = self.router.next_hop(hdr.dst)
        link = self.links.get(key) if key is not None else None
        if link is None:
            self.stats["no_route"] += 1
            return
        stats = self.stats
        stats["forwarded"] += 1
        stats["forwarded_bytes"] += len(payload)
        header = bytearray(head)
        header[HOPS_OFFSET] = hdr.hops - 1
        link.last_tx = now
        out = [bytes(header), parts[1]] if len(parts) == 2 else frame.join(bytes(header), payload)
        self.transit_out.append((link.key, out))
        self._forwarded = (link.key, sum(len(p) for p in out))

    def _opened(self, link: Link, hdr: frame.Header, payload: bytes, now: float) -> None:
        """The far end opens a channel to this node."""
        key = (hdr.src, hdr.epoch, False)
        if self.channels.remote(key) is not None:
            self.stats["duplicate_open"] += 1
            return
        source, target = _split_names(payload)
        reason = None
        if target != self.name:
            reason = "wrong_node"
        elif source is None or node_id(source) != hdr.src:
            reason = "wrong_source"
        elif len(self.channels) >= self.config.max_channels:
            reason = "max_channels"
        if reason is not None or source is None:
            log.error("refusing channel from %s: %s", (link.peer or b"?").decode(errors="replace"),
                      reason)
            self._route_close(hdr, (reason or "wrong_source").encode(), link, now)
            return
        hop = self.router.next_hop(hdr.src)
        back = self.links.get(hop) if hop is not None else None
        chan = self.channels.new_py_chan()
        self.port_out.append(port_codec.encode_ctrl((Atom("accepted"), chan, source)))
        self._channel(chan, source, hdr.src, hdr.epoch, False, back or link)

    def _remote_close(self, hdr: frame.Header, reason: bytes) -> None:
        ch = self.channels.remote(received_key(hdr.src, hdr.epoch, hdr.flags))
        if ch is not None:
            why = reason.decode(errors="replace")
            log.info("channel %d closed by %s: %s", ch.chan, ch.peer.decode(errors="replace"), why)
            if why in CLOSE_REASONS and why not in ORDERLY:  # the far carrier lost frames
                self._report_loss(ch, why)
            self._tell_closed(ch.chan, "peer_closed")
            self._forget(ch)

    # ------------------------------------------------------------------
    # time

    def timer(self, now: float) -> None:
        if now < self.deadline:
            return
        deadline = now + self.liveness.interval
        held = self.rx_held
        for link in list(self.links.values()):
            if not self.receiving or (held and (link.key in held
                                                or (None in held and not link.dialled))):
                link.last_rx = now
            if not link.up:
                # On its way: a proof must follow the HELLO as any frame
                # follows another, and the whole admission has a bound.
                due = min(link.last_rx + self.liveness.timeout, link.born + ADMIT_TIMEOUT)
                if now >= due:
                    self._link_down(link, "connect_timeout", now)
                else:
                    deadline = min(deadline, due)
                continue
            verdict = self.liveness.verdict(now, link.last_rx, link.last_tx)
            if verdict is Verdict.DEAD:
                self._link_down(link, "heartbeat_timeout" if link.up else "connect_timeout", now)
                continue
            if verdict is Verdict.SEND_HEARTBEAT:
                self._send(link, Kind.HEARTBEAT, None, b"", now)
            deadline = min(deadline, self.liveness.deadline(link.last_rx, link.last_tx))
        if self.name is not None:
            self.router.timer(now)
            deadline = min(deadline, self.router.deadline())
        self.deadline = deadline
        self._lanes_timer(now)
        for chan in sorted(self.seq_due):
            self._sequencing_timer(self.channels[chan], now)
        for chan, (at, wait) in list(self.resend_at.items()):
            if at <= now:
                # No ack for a while: a frame or its ack was lost without a
                # route change (a node in the middle gave up on a stalled
                # link). Send again, waiting twice as long each time, so a
                # far end that is merely slow is not flooded.
                self.stats["resend_timeouts"] += 1
                self._resend(self.channels[chan], now)
                self._resend_later(self.channels[chan], now, min(wait * 2, 8.0))
            else:
                self.deadline = min(self.deadline, at)
        self._settle(now)

    def congestion(self, key: LinkKey, congested: bool, now: float) -> None:
        """The shell found a link's queue full, or drained again: pause or
        resume the connections over it, so the BEAM keeps their data (and
        suspends their senders, as a busy distribution port does) while
        every other connection flows."""
        link = self.links.get(key)
        if link is None or link.congested == congested:
            return
        link.congested = congested
        self.stats["link_congested" if congested else "link_drained"] += 1
        for chan in sorted(link.channels):
            self._pump(self.channels[chan], now)
        if not congested:
            self._lanes_drained(link, now)

    def link_authenticated(self, key: LinkKey, name: bytes) -> None:
        """With encrypted links: the key of link ``key`` (one a neighbour
        dialled) is registered for node ``name``, as ZeroMQ's ZAP handler
        found; the link's HELLO must claim that name."""
        self.authenticated[key] = name

    def set_receiving(self, on: bool) -> None:
        """The shell stops (or resumes) reading every link: while it does
        not, silence is ours, not the neighbours', and kills no link."""
        self.receiving = on

    def hold_rx(self, key: LinkKey | None, held: bool) -> None:
        """The shell stops (or resumes) reading a link socket to hold back
        frames in transit: silence there is ours, not the neighbour's."""
        if held:
            self.rx_held.add(key)
        else:
            self.rx_held.discard(key)

    def transit_dropped(self, key: LinkKey) -> None:
        """The shell dropped a forwarded frame: its link's backlog is full."""
        self.stats["transit_dropped"] += 1
        if self.stats["transit_dropped"] & (self.stats["transit_dropped"] - 1) == 0:
            link = self.links.get(key)
            log.warning("link to %s congested: %d frames in transit dropped so far",
                        (link.peer or b"?").decode(errors="replace") if link else key,
                        self.stats["transit_dropped"])

    def port_closed(self, now: float) -> None:
        """The BEAM is gone: say goodbye so neighbours need not time out."""
        for link in self.links.values():
            self._send(link, Kind.BYE, None, b"", now)

    # ------------------------------------------------------------------
    # routing

    def _settle(self, now: float) -> None:
        """Send what the router wants sent, and act on a new table: tell the
        BEAM which nodes it can reach, move channels to their new next hop
        (opening there those not yet opened), and send again what may have
        been lost on a path that lost a link; only a channel to a node no
        path reaches any more is closed."""
        router = self.router
        for key, kind, payload in router.out:
            link = self.links.get(key)
            if link is not None and link.up:
                self._send(link, kind, None, payload, now)
        router.out.clear()
        change = router.settle()
        if change is None:
            return
        if change.reachable or change.unreachable or change.broken:
            log.info("routes changed: reachable %s, unreachable %s, broken %s",
                     change.reachable, change.unreachable, change.broken)
        for name in change.reachable:
            self.port_out.append(port_codec.encode_ctrl((Atom("reachable"), name)))
        for name in change.unreachable:
            self.port_out.append(port_codec.encode_ctrl((Atom("unreachable"), name)))
        unreachable, broken = set(change.unreachable), set(change.broken)
        for ch in list(self.channels.values()):
            hop = router.next_hop(ch.peer_id)
            link = self.links.get(hop) if hop is not None else None
            dead = ch.link.key not in self.links
            if ch.peer in unreachable or (link is None and dead):
                # the neighbour itself gone: its link's reason says more
                gone = ch.link.down_reason if dead and ch.link.peer == ch.peer else None
                self._close(ch, gone or "no_route", now)
                continue
            if link is None:
                continue  # a link dialled for it, not up yet
            if link is not ch.link:
                self.stats["channels_moved"] += 1
                self._rebind(ch, link)
                self._open(ch, now)
            if dead or ch.peer in broken:
                self._resend(ch, now)
            self._pump(ch, now)

    # ------------------------------------------------------------------
    # helpers

    def info(self) -> dict[Atom, Any]:
        """The port program's view, as an Erlang map for ``py_dist:info/0``.

        Structure keys are atoms the Erlang side names; counter names stay
        binaries, so no new atom is ever made from them.
        """
        return {
            Atom("links"): [
                {Atom("peer"): ln.peer or b"", Atom("up"): ln.up,
                 Atom("dialled"): ln.dialled, Atom("channels"): len(ln.channels)}
                for ln in self.links.values()
            ],
            Atom("channels"): [self._channel_info(ch) for ch in self.channels.values()],
            Atom("stats"): {k.encode(): v for k, v in sorted(self.stats.items())},
        }

    def topology(self, now: float) -> dict[Atom, Any]:
        """``py_dist:topology/0``: the link-state database and the routes."""
        topo = self.router.topology(now)
        return {
            Atom("node"): self.name or b"",
            Atom("lsdb"): [
                {Atom("origin"): origin, Atom("seq"): seq, Atom("age_left"): int(left * 1000),
                 Atom("neighbours"): [(n, c) for n, c in nbrs], Atom("endpoint"): endpoint}
                for origin, seq, left, nbrs, endpoint in topo["lsdb"]  # type: ignore[attr-defined]
            ],
            Atom("routes"): [
                {Atom("dest"): dest, Atom("via"): via, Atom("cost"): cost, Atom("static"): static}
                for dest, via, cost, static in topo["routes"]  # type: ignore[attr-defined]
            ],
        }


def _endpoint(host: bytes, port: int) -> str:
    """The ZeroMQ endpoint of ``host:port``; empty if that is no address
    (the BEAM's side sends what inet:ntoa/1 wrote: ASCII)."""
    if not host or not host.isascii() or not 0 < port < 65536 or (any(
            c in host for c in b" /:\0") and not host.startswith(b"[")):
        return ""
    return f"tcp://{host.decode()}:{port}"


def _names(source: bytes, target: bytes) -> bytes:
    """OPEN's payload: both ends' names, so every node on the path knows them."""
    return bytes((len(source),)) + source + target


def _split_names(payload: bytes) -> tuple[bytes | None, bytes]:
    if not payload or payload[0] == 0 or payload[0] >= len(payload):
        return None, payload
    size = payload[0]
    return payload[1:1 + size], payload[1 + size:]
