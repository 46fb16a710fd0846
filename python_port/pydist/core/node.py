"""The node: the state machine that composes the core.

Fed port packets from the BEAM, messages from links and the time; the I/O
shell takes what it answers with :meth:`Node.take_output` (bytes for the
BEAM, messages for links, frames in transit and link commands, see
:mod:`pydist.core.output`) and carries it out. It is the only core module that knows all the
others. It owns its parts as objects, each with its own state, all
writing to the one :class:`~pydist.core.output.Output` it hands them:

- :class:`~pydist.core.framer.Framer`: this node's name and id, and the
  frames it sends (hop limit, sealing);
- :class:`~pydist.core.neighbours.Neighbours`: the links (admission,
  heartbeats, goodbyes), which tell the node when one is admitted or lost;
- :class:`~pydist.core.router.Router`: link state and the forwarding table;
- :class:`~pydist.core.delivery.Delivery`: the channels and their frames
  (opens, numbering, acks, resends, closes);
- :class:`~pydist.core.lanes.Lanes`: messages of ``py_dist:send/3``.

The node keeps the dispatch of what comes in, forwarding, the link a new
connection takes, and acting on route changes (:meth:`Node._settle`); a
part reaches another only through the node or through a reference given
in its constructor. The shell sleeps until :meth:`Node.next_deadline`,
the earliest of the parts' own.
"""

from __future__ import annotations

import logging
import random
import secrets
from collections import Counter
from collections.abc import Callable
from typing import Any

from pydist.core import admission, frame, port_codec, report
from pydist.core.admission import Cookies
from pydist.core.channels import Channel, ChannelTable, Link, LinkKey
from pydist.core.config import Config
from pydist.core.damping import Damping
from pydist.core.delivery import Delivery
from pydist.core.etf import Atom, EtfError
from pydist.core.framer import Framer
from pydist.core.lanes import Lanes
from pydist.core.lsdb import MAX_COST
from pydist.core.neighbours import Neighbours
from pydist.core.outbox import BARRIER
from pydist.core.output import Output
from pydist.core.process_opts import LanePacket, ProcessOpts
from pydist.core.router import Router
from pydist.core.trust import Trust
from pydist.core.wire import FLAG_SEALED, HOPS_OFFSET, OP_CTRL, OP_FLOWS, OP_LANE, Kind, node_id

log = logging.getLogger("pydist.node")

_DATA = int(Kind.DATA)
#: kinds that travel end to end (and are forwarded); the rest stay on one link
_ROUTED = frozenset((int(Kind.DATA), int(Kind.OPEN), int(Kind.CLOSE), int(Kind.ACK),
                     int(Kind.LANE), int(Kind.TICK)))
_NEVER = float("inf")


class Node:
    """One port program's protocol state: one way in per input, one way
    out (:meth:`take_output`), one deadline (:meth:`next_deadline`)."""

    def __init__(self, config: Config, now: float, rng: random.Random | None = None,
                 trust: Trust | None = None,
                 entropy: Callable[[int], bytes] = secrets.token_bytes) -> None:
        self.config = config
        self.rng = rng or random.Random()
        self.stats: Counter[str] = Counter()
        #: the one way out, shared by every part (see take_output)
        self.out = Output()
        #: the BEAM's cookies: its own, and those it uses with a few peers
        self.cookies = Cookies()
        self.framer = Framer(config.max_hops, trust, self.out, self.stats)
        self.router = self._new_router(b"", now)
        self.neighbours = Neighbours(config, self.framer, self.out, self.stats, self.cookies,
                                     entropy, owner=self, now=now)
        links = self.neighbours.links
        #: what processes asked of their own sends: a lane (py_dist:set_lane/1),
        #: to be told of losses (py_dist:loss_mode/1)
        self.process_opts = ProcessOpts()
        self.delivery = Delivery(config, self.framer, self.out, self.stats, self.rng,
                                 next_hop=self._next_hop, links=links, gone=self._channel_gone,
                                 notify=self.process_opts.notify)
        self.lanes = Lanes(config, self.framer, self.out, self.stats, self.rng,
                           next_hop=self._next_hop, links=links,
                           by_peer=self.neighbours.by_peer, channels=self.delivery.channels)
        #: the BEAM's port owner asked us to stop reading links for a while
        self.beam_holds = False
        #: the link and size of the frame the last link message was
        #: forwarded as, if it was (see :meth:`forwarded`)
        self._forwarded: tuple[LinkKey, int] | None = None
        #: the node looks at its links and its router at least on every
        #: heartbeat beat (see :mod:`pydist.core.liveness`), with the links'
        #: heartbeats, not in a wake-up of its own: what the router learns
        #: between two looks (an LSP that expires soon) waits for the next
        #: one at most that long
        self._look_at = self.neighbours.liveness.next_beat(now)
        #: when the router said, at the last look, it has something to do
        self._router_due = _NEVER

    def _new_router(self, name: bytes, now: float) -> Router:
        c = self.config
        return Router(name, now, lifetime=c.lsp_lifetime, sync_interval=c.lsdb_sync_interval,
                      max_nodes=c.max_nodes, max_neighbours=c.max_links, stats=self.stats,
                      max_hops=c.max_hops, trust=self.framer.trust,
                      damping=Damping(c.flap_half_life, c.flap_suppress_max))

    def _next_hop(self, dst: int) -> LinkKey | None:
        """The routing table, for the parts: the router is replaced when
        the BEAM names the node."""
        return self.router.next_hop(dst)

    # ------------------------------------------------------------------
    # what the shell reads

    @property
    def name(self) -> bytes | None:
        return self.framer.name

    @property
    def id(self) -> int:
        return self.framer.id

    @property
    def links(self) -> dict[LinkKey, Link]:
        return self.neighbours.links

    @property
    def authenticated(self) -> dict[LinkKey, bytes]:
        return self.neighbours.authenticated

    @property
    def channels(self) -> ChannelTable:
        return self.delivery.channels

    @property
    def deadline(self) -> float:
        """When to call :meth:`timer` next: see :meth:`next_deadline`."""
        return self.next_deadline()

    def next_deadline(self) -> float:
        """The earliest time a part has something to do: the next look at
        links and router, a link's heartbeat, silence or admission bound,
        the router's refresh, sync or expiry, a realtime lane message's
        deadline or a partial one's expiry, an ack, a gap's timeout, a
        resend. Each part keeps its own, exact after its timer ran and
        earlier, never later, when what was due went since; so the timer
        never sleeps past a due time, and never spins on one in the past
        (a timer run recomputes them all)."""
        return min(self._look_at, self._router_due, self.neighbours.deadline(),
                   self.lanes.deadline(), self.delivery.deadline())

    def take_output(self) -> Output:
        """What the node asked for since the last call, for the shell to
        carry out (see :mod:`pydist.core.output`); the parts go on writing
        to new lists, so nothing is copied."""
        out = self.out
        taken = Output(out.port, out.links, out.transit, out.commands)
        out.port, out.links, out.transit, out.commands = [], [], [], []
        return taken

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
            if self.process_opts.by_flow:
                groups, lane_packets = self.process_opts.split(groups)
                if lane_packets:
                    self._send_on_lanes(chan, lane_packets, now)
                if not groups:
                    return
            self.delivery.send_data(chan, groups, now)
        elif op == OP_LANE:
            _, lane, deadline_ms, dest, notify, payload = decoded
            self.lanes.send(lane, deadline_ms, dest, notify, payload, now)
        elif op == OP_CTRL:
            self._control(decoded[1], now)
            self._settle(now)
        else:  # a handshake packet: in order with everything
            _, chan, body = decoded
            self.delivery.send_data(chan, [(BARRIER, body)], now)

    def _send_on_lanes(self, chan: int, packets: list[LanePacket], now: float) -> None:
        """Message sends of processes with a lane of their own, from a
        connection's packets: to its peer, as lane messages."""
        ch = self.channels.get(chan)
        if ch is None:  # closed while the BEAM was still writing
            self.stats["data_after_close"] += 1
            return
        for lane, deadline_ms, packet in packets:
            self.lanes.send(lane, deadline_ms, ch.peer, b"", packet, now, dist=True)

    def _control(self, term: Any, now: float) -> None:
        match term:
            case (Atom("set_node"), bytes(name)):
                self.framer.named(name)
                self.router = self._new_router(name, now)
            case (Atom("cookie"), bytes(cookie)):
                self.cookies.set_own(cookie)
            case (Atom("cookie_for"), bytes(peer), bytes(cookie)):
                self.neighbours.cookie_for(peer, cookie, now)
            case (Atom("connect"), int(chan), bytes(peer), bytes(host), int(port),
                  bytes(cookie)) if not host or _endpoint(host, port):
                self.cookies.use_with(peer, cookie)
                self._connect(chan, peer, _endpoint(host, port) if host else None, now)
            case (Atom("up"), int(chan)):
                ch = self.channels.get(chan)
                if ch is not None:
                    self.lanes.peer_up(ch)
            case (Atom("set_lane"), int(flow), int(lane), int(deadline_ms)):
                if not self.process_opts.set(flow, lane, deadline_ms):
                    self.stats["port_errors"] += 1
            case (Atom("loss_mode"), int(flow), int(notify)):
                if not self.process_opts.set_notify(flow, bool(notify)):
                    self.stats["port_errors"] += 1
            case (Atom("input"), Atom("hold") | Atom("release") as what):
                self.beam_holds = what == "hold"
                self.stats["beam_holds" if self.beam_holds else "beam_releases"] += 1
            case (Atom("info"), int(ref)):
                reply = (Atom("info"), ref, self.info())
                self.out.port.append(port_codec.encode_ctrl(reply))
            case (Atom("query"), int(ref), Atom("topology")):
                reply = (Atom("reply"), ref, self.topology(now))
                self.out.port.append(port_codec.encode_ctrl(reply))
            case (Atom("close"), int(chan), reason):
                self.delivery.closed_by_beam(chan, str(reason).encode(), now)
            case (Atom("link"), bytes(peer), bytes(host), int(port), int(cost),
                  bytes(cookie)) if _endpoint(host, port) and 0 < cost <= MAX_COST:
                self.cookies.use_with(peer, cookie)
                self.neighbours.keep(peer, _endpoint(host, port), cost, now)
            case (Atom("unlink"), bytes(peer)):
                self.neighbours.unlink(peer, now)
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

    # ------------------------------------------------------------------
    # connections the BEAM makes

    def _connect(self, chan: int, peer: bytes, endpoint: str | None, now: float) -> None:
        """Open a channel to ``peer``: along the route to it, or over the
        link we have or make to ``endpoint``. Without an endpoint (the BEAM
        knew the node reachable and skipped epmd) a node that is no longer
        reachable refuses the channel."""
        delivery = self.delivery
        if self.name is None or chan in self.channels:
            delivery.tell_closed(chan, "not_ready" if self.name is None else "duplicate_channel")
            return
        peer_id = node_id(peer)
        trust = self.framer.trust
        if trust is not None and peer not in trust.keys:
            log.error("not connecting to %s: it has no key in the authorized keys",
                      peer.decode(errors="replace"))
            delivery.tell_closed(chan, "no_route")
            return
        key = self.router.next_hop(peer_id)
        link = self.links.get(key) if key is not None else self.neighbours.by_peer.get(peer)
        if link is None:
            if endpoint is None:
                delivery.tell_closed(chan, "no_route")
                return
            link = self.neighbours.dial(peer, endpoint, now)
        ch = delivery.open(chan, peer, peer_id, self.channels.new_epoch(peer_id), True, link)
        delivery.send_open(ch, now)

    # ------------------------------------------------------------------
    # what the neighbours and the channels tell the node

    def link_admitted(self, link: Link, now: float) -> None:
        """Channels made over a link on its way: open them now."""
        for chan in sorted(link.channels):
            ch = self.channels[chan]
            self.delivery.send_open(ch, now)
            self.delivery.pump(ch, now)

    def link_lost(self, link: Link, reason: str, now: float) -> None:
        """Lane messages waiting for the link are dropped. A channel over a
        link that never came up, or to a neighbour whose node said goodbye,
        is done; the others follow the route (see _settle), if one is left."""
        self.lanes.link_down(link.key)
        for chan in sorted(link.channels):
            ch = self.channels[chan]
            if not link.up or (reason == "peer_exit" and ch.peer == link.peer):
                self.delivery.tell_closed(chan, reason)
                self.delivery.forget(ch, told=False)
        if link.channels:
            self.router.dirty = True  # _settle moves them, or closes them

    def _channel_gone(self, ch: Channel) -> None:
        """A channel is forgotten: the lanes count live connections."""
        self.lanes.channel_gone(ch)

    # ------------------------------------------------------------------
    # input from links

    def link_message(self, key: LinkKey, parts: list[Any], now: float) -> None:
        """One ZeroMQ message from a link: see :func:`frame.split`."""
        self._forwarded = None
        self._link_message(key, parts, now)
        if self.router.dirty or self.router.out:
            self._settle(now)

    def _link_message(self, key: LinkKey, parts: list[Any], now: float) -> None:
        neighbours = self.neighbours
        link = neighbours.links.get(key)
        payload: Any  # a view of the message, or the opened bytes of a sealed one
        try:
            head, payload = frame.split(parts)
            hdr = frame.decode(head)
        except frame.FrameError as exc:
            neighbours.bad_frame(link, key, str(exc), now)
            return
        if link is None:
            neighbours.unknown(key, hdr, bytes(payload), now)
            return
        kind = hdr.kind
        if not link.up and kind not in admission.KINDS:
            neighbours.early(link, kind)
            return
        # the longest gap lately stretches the link's silence bound (see
        # pydist.core.liveness)
        gap = now - link.last_rx
        if gap > link.gap:
            link.gap = gap
        link.suspected = False
        link.last_rx = now
        if kind in _ROUTED:
            framer = self.framer
            if hdr.dst != framer.id:
                self._forward(hdr, head, payload, parts, now)
            elif (framer.sealed or hdr.flags & FLAG_SEALED) and (
                    payload := framer.unseal(hdr, head, payload)) is None:
                return
            elif kind == _DATA:
                self.delivery.receive_data(hdr, payload, now)
            elif kind == Kind.ACK:
                self.delivery.ack(hdr, payload, now)
            elif kind == Kind.TICK:
                self.delivery.receive_tick(hdr)
            elif kind == Kind.LANE:
                self.lanes.receive(hdr, payload, now)
            elif kind == Kind.OPEN:
                self.delivery.accept(link, hdr, bytes(payload), now)
            else:
                self.delivery.closed_by_peer(hdr, bytes(payload))
        elif kind == Kind.HEARTBEAT:
            pass
        elif kind == Kind.HELLO:
            neighbours.hello(link, bytes(payload), now)
        elif kind == Kind.PROOF:
            neighbours.proof(link, bytes(payload), now)
        elif kind == Kind.BYE:  # our neighbour's node exits, or just drops this link
            neighbours.bye(link, bytes(payload), now)
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
        link = self.neighbours.links.get(key) if key is not None else None
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
        self.out.transit.append((link.key, out))
        self._forwarded = (link.key, sum(len(p) for p in out))

    # ------------------------------------------------------------------
    # time

    def timer(self, now: float) -> None:
        """Whatever a part has due by ``now`` (see :meth:`next_deadline`),
        then what the router wants sent or changed."""
        if now < self.next_deadline():
            return
        self._look_at = self.neighbours.liveness.next_beat(now)
        self.neighbours.timer(now)
        if self.name is not None:
            self.router.timer(now)
            self._router_due = self.router.deadline()
        self.lanes.timer(now)
        self.delivery.timer(now)
        self._settle(now)

    # ------------------------------------------------------------------
    # what the shell tells the node

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
            self.delivery.pump(self.channels[chan], now)
        if not congested:
            self.lanes.drained(link, now)

    def link_authenticated(self, key: LinkKey, name: bytes) -> None:
        """With encrypted links: the key of link ``key`` (one a neighbour
        dialled) is registered for node ``name``, as ZeroMQ's ZAP handler
        found; the link's HELLO must claim that name."""
        self.neighbours.authenticated[key] = name

    def set_receiving(self, on: bool) -> None:
        """The shell stops (or resumes) reading every link: while it does
        not, silence is ours, not the neighbours', and kills no link."""
        self.neighbours.receiving = on

    def hold_rx(self, key: LinkKey | None, held: bool) -> None:
        """The shell stops (or resumes) reading a link socket to hold back
        frames in transit: silence there is ours, not the neighbour's."""
        self.neighbours.hold_rx(key, held)

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
        self.neighbours.goodbye(now)

    def link_failed(self, key: LinkKey, why: str, now: float) -> None:
        """The shell could not handle a message from this link (a bug, not
        bad input, which :meth:`link_message` handles): drop only the link."""
        self.neighbours.bad_frame(self.links.get(key), key, why, now)
        self._settle(now)

    # ------------------------------------------------------------------
    # routing

    def _settle(self, now: float) -> None:
        """Send what the router wants sent, and act on a new table: tell the
        BEAM which nodes it can reach, move channels to their new next hop
        (opening there those not yet opened), and send again what may have
        been lost on a path that lost a link; only a channel to a node no
        path reaches any more is closed. The router may put a recomputation
        off (see :mod:`pydist.core.backoff`): the node's deadline then
        includes it."""
        router, links, delivery = self.router, self.neighbours.links, self.delivery
        for key, kind, payload in router.out:
            link = links.get(key)
            if link is not None and link.up:
                self.framer.send(link, kind, None, payload, now)
        router.out.clear()
        change = router.settle(now)
        if self.name is not None:
            # a recomputation the back-off put off is due then: wake for it
            self._router_due = router.deadline()
        if change is None:
            return
        if change.reachable or change.unreachable or change.broken:
            log.info("routes changed: reachable %s, unreachable %s, broken %s",
                     change.reachable, change.unreachable, change.broken)
        for name in change.reachable:
            self.out.port.append(port_codec.encode_ctrl((Atom("reachable"), name)))
        for name in change.unreachable:
            self.out.port.append(port_codec.encode_ctrl((Atom("unreachable"), name)))
        unreachable, broken = set(change.unreachable), set(change.broken)
        for ch in list(self.channels.values()):
            hop = router.next_hop(ch.peer_id)
            link = links.get(hop) if hop is not None else None
            dead = ch.link.key not in links
            if ch.peer in unreachable or (link is None and dead):
                # the neighbour itself gone: its link's reason says more
                gone = ch.link.down_reason if dead and ch.link.peer == ch.peer else None
                delivery.close(ch, gone or "no_route", now)
                continue
            if link is None:
                continue  # a link dialled for it, not up yet
            if link is not ch.link:
                self.stats["channels_moved"] += 1
                delivery.rebind(ch, link)
                delivery.send_open(ch, now)
            if dead or ch.peer in broken:
                delivery.resend(ch, now)
            delivery.pump(ch, now)

    # ------------------------------------------------------------------
    # reports

    def info(self) -> dict[Atom, Any]:
        """The port program's view, as an Erlang map for ``py_dist:info/0``."""
        return report.info(self.links.values(), self.channels.values(), self.stats,
                           len(self.process_opts))

    def topology(self, now: float) -> dict[Atom, Any]:
        """``py_dist:topology/0``: the link-state database and the routes."""
        return report.topology(self.name, self.router, now)

def _endpoint(host: bytes, port: int) -> str:
    """The ZeroMQ endpoint of ``host:port``; empty if that is no address
    (the BEAM's side sends what inet:ntoa/1 wrote: ASCII)."""
    if not host or not host.isascii() or not 0 < port < 65536 or (any(
            c in host for c in b" /:\0") and not host.startswith(b"[")):
        return ""
    return f"tcp://{host.decode()}:{port}"

