"""The channel data path: opening, numbering, sending, receiving,
acknowledging, resending and closing the frames of Erlang connections.

:class:`Delivery` owns the channels (:class:`~pydist.core.channels.ChannelTable`)
and deals with one at a time: it opens a channel with the far end (an
OPEN with both ends' names), turns a data packet from the BEAM into a
numbered DATA frame of one flow kept for resending
(:mod:`pydist.core.sequencing`), delivers what arrives in each flow's
order, sends and takes acknowledgements and gap reports (giving up the
frames of processes that accept losses, and telling them), pauses a
channel while its link is congested or its window full, and closes it with
a reason the BEAM can show. The node around it decides which link a
channel uses, and when to resend on a route change; the resend timer and
the receivers' ack and gap timers are this part's own.
"""

from __future__ import annotations

import logging
import random
import struct
from collections import Counter
from collections.abc import Callable, Collection, Mapping
from typing import Any

from pydist.core import frame, port_codec, skips
from pydist.core.budget import Budget
from pydist.core.channels import Channel, ChannelTable, Link, LinkKey, received_key
from pydist.core.config import Config
from pydist.core.etf import Atom
from pydist.core.frame import Payload, size
from pydist.core.framer import Framer
from pydist.core.outbox import TICK, Outbox
from pydist.core.output import Output
from pydist.core.port_codec import Groups
from pydist.core.process_opts import messages_in
from pydist.core.rto import Rto
from pydist.core.sequencing import (
    AFTER_ALL,
    AFTER_NONE,
    MAX_GAP_RANGES,
    Receiver,
    Sender,
    SequenceError,
)
from pydist.core.wire import (
    CLOSE_REASONS,
    FLAG_BARRIER,
    FLAG_GAP,
    FLAG_INITIATOR,
    FLAG_SKIP,
    FRAME_LEN,
    HEADER,
    VERSION,
    Kind,
    node_id,
)

log = logging.getLogger("pydist.node")

_DATA = int(Kind.DATA)
#: a run of one distribution packet of no bytes: what a tick is to erts
_EMPTY_PACKET = FRAME_LEN.pack(0)
#: bytes a flow sends at its turn: an erts fragment is 64 KiB
QUANTUM = 64 * 1024
#: what the outbox's packets are gathered into one DATA frame up to; a
#: packet joins a frame only if the frame stays within twice that
FRAME_BYTES = 256 * 1024
#: closes that lose nothing: the far end closed, or our BEAM did
ORDERLY = frozenset(("peer_closed",))
#: the longest wait between resends of a channel whose acks stopped
_MAX_RESEND_WAIT = 8.0
_NEVER = float("inf")
#: an ACK's payload: one past the highest sequence the far end received
_SEEN = struct.Struct("!Q")
#: a gap report's payload: ranges [start, end) missing
_RANGE = struct.Struct("!QQ")


class Delivery:
    """The channels and their frames. ``next_hop`` is the node's routing
    table (the router is replaced when the BEAM names the node), ``links``
    the neighbours' links, and ``gone`` is told of every channel forgotten
    (the lanes take messages only from peers with a live connection)."""

    def __init__(self, config: Config, framer: Framer, out: Output, stats: Counter[str],
                 rng: random.Random, *, next_hop: Callable[[int], LinkKey | None],
                 links: Mapping[LinkKey, Link], gone: Callable[[Channel], None],
                 notify: Collection[int] = ()) -> None:
        self.config = config
        #: the flows whose processes accept losses, told to them, rather
        #: than a connection down (py_dist:loss_mode(notify))
        self.notify = notify
        self.framer = framer
        self.out = out
        self.stats = stats
        self.next_hop = next_hop
        self.links = links
        self.gone = gone
        self.channels = ChannelTable(rng)
        #: channels whose receiver has an ack or a gap check to come
        self.seq_due: set[int] = set()
        #: channels with frames not acknowledged: chan -> (when to send them
        #: again if no ack moves by then, the wait after that)
        self.resend_at: dict[int, tuple[float, float]] = {}
        #: no later than the first of those (exact after :meth:`timer`,
        #: earlier when what was due went)
        self._due = _NEVER

    def deadline(self) -> float:
        """When :meth:`timer` may have something to do."""
        return self._due

    # ------------------------------------------------------------------
    # channels

    def open(self, chan: int, peer: bytes, peer_id: int, epoch: int, initiator: bool,
             link: Link) -> Channel:
        """A new channel over ``link``: its sender, receiver and outbox."""
        c = self.config
        # one the far end opened is open; ours, once its OPEN goes (send_open)
        ch = Channel(chan, peer, peer_id, epoch, initiator, link, opened=not initiator,
                     sender=Sender(c.window_bytes, c.window_frames),
                     # a gap is reported at half the gap timeout: the
                     # sender gives up what it may before the far end would
                     # close the connection for it
                     receiver=Receiver(c.window_bytes, c.window_frames, c.gap_timeout,
                                       c.ack_every, c.ack_delay, c.ack_bytes,
                                       report_after=c.gap_timeout / 2),
                     outbox=Outbox(QUANTUM, c.flow_bytes),
                     # past half the gap timeout a loss would close the
                     # connection at the far end before it is sent again
                     rto=Rto(c.resend_timeout, max(c.resend_timeout, c.gap_timeout / 2)),
                     # up to where the sender pauses the channel anyway
                     budget=Budget(c.inflight_bytes, c.window_bytes // 2))
        self.channels.add(ch)
        if link.congested:
            self._refresh_pause(ch)
        return ch

    def send_open(self, ch: Channel, now: float) -> None:
        """Send a channel's OPEN once its link is admitted; until then the
        channel waits (the node calls again when the link is admitted, or
        when a route change moves the channel to another link)."""
        if not ch.opened and ch.link.up:
            name = self.framer.name
            assert name is not None
            ch.opened = True
            self.framer.send(ch.link, Kind.OPEN, ch, _names(name, ch.peer), now)

    def accept(self, link: Link, hdr: frame.Header, payload: bytes, now: float) -> None:
        """The far end opens a channel to this node (an OPEN came on ``link``)."""
        key = (hdr.src, hdr.epoch, False)
        if self.channels.remote(key) is not None:
            self.stats["duplicate_open"] += 1
            return
        source, target = _split_names(payload)
        reason = None
        if target != self.framer.name:
            reason = "wrong_node"
        elif source is None or node_id(source) != hdr.src:
            reason = "wrong_source"
        elif len(self.channels) >= self.config.max_channels:
            reason = "max_channels"
        if reason is not None or source is None:
            log.error("refusing channel from %s: %s", (link.peer or b"?").decode(errors="replace"),
                      reason)
            self.route_close(hdr, (reason or "wrong_source").encode(), link, now)
            return
        hop = self.next_hop(hdr.src)
        back = self.links.get(hop) if hop is not None else None
        chan = self.channels.new_py_chan()
        self.out.port.append(port_codec.encode_ctrl((Atom("accepted"), chan, source)))
        self.open(chan, source, hdr.src, hdr.epoch, False, back or link)

    def rebind(self, ch: Channel, link: Link) -> None:
        ch.link.channels.discard(ch.chan)
        link.channels.add(ch.chan)
        ch.link = link

    # ------------------------------------------------------------------
    # sending

    def send_data(self, chan: int, groups: Groups, now: float) -> None:
        """Packets from the BEAM, by flow: into the channel's outbox, and
        out as far as its budget of bytes in flight allows."""
        ch = self.channels.get(chan)
        if ch is None:  # closed while the BEAM was still writing
            self.stats["data_after_close"] += 1
            return
        box = ch.outbox
        assert box is not None
        for flow, body in groups:
            if flow == TICK:
                self._tick(ch, now)
            else:
                box.push(flow, body)
        if box.queued_bytes > 2 * self.config.queue_bytes:  # the BEAM wrote on past a pause
            log.error("channel %d to %s: %d bytes queued past a pause", ch.chan,
                      ch.peer.decode(errors="replace"), box.queued_bytes)
            self.close(ch, "retransmit_overflow", now)
            return
        self.pump(ch, now)

    def pump(self, ch: Channel, now: float) -> None:
        """Send from the outbox while the bytes in flight (sent, not yet
        acknowledged) are under the channel's budget (``inflight_bytes``,
        more on a long fast path: :mod:`pydist.core.budget`): that keeps
        the queues beyond this node (ZeroMQ's, the kernel's, the far
        end's) short, so the flow scheduling done here decides what waits,
        not a FIFO."""
        box, sender, link, rto = ch.outbox, ch.sender, ch.link, ch.rto
        assert box is not None and sender is not None and rto is not None
        assert ch.budget is not None
        if ch.tick_pending:
            self._tick(ch, now)
        if link.up and ch.opened and not link.congested and len(box):
            framer = self.framer
            limit = ch.budget.limit
            epoch, dst, hops, flags = ch.epoch, ch.peer_id, self.config.max_hops, ch.flags
            flags |= framer.sealed
            src = framer.id
            out = self.out.links
            sent = False
            notify = self.notify
            while sender.bytes < limit and not sender.full:
                body = _gather(box, limit - sender.bytes)
                if body is None:
                    break
                flow = box.last_flow
                seq, after = sender.push_frame(body, flow,
                                               messages_in(body) if flow in notify else 0)
                rto.sent(seq, now)
                out.append((link.key, framer.routed(_data_header(flags, hops, epoch, src, dst,
                                                                 seq, after, False), dst, body)))
                sent = True
            if sent:
                link.last_tx = now
                if ch.chan not in self.resend_at:
                    self._resend_later(ch, now, rto.timeout)
        if box.to_hold or box.to_release:
            self._tell_flows(ch, box)
        self._refresh_pause(ch)

    def _tick(self, ch: Channel, now: float) -> None:
        """The controller's tick (``net_ticktime``): only proof that the
        connection lives, so it goes at once, outside the sequence, and
        nobody acknowledges it or sends it again. An idle connection then
        costs one frame per tick, not two (a tick and its ack), along
        every hop of its path. A tick lost costs nothing: erts sends the
        next one a quarter of ``net_ticktime`` later, and only four missed
        in a row end the connection. One that cannot go yet (the link
        congested, the channel not opened) waits for the next pump, as
        stock's would wait in the socket's buffer; ticks do not pile up."""
        link = ch.link
        if not (link.up and ch.opened and not link.congested):
            ch.tick_pending = True
            return
        ch.tick_pending = False
        self.framer.send(link, Kind.TICK, ch, b"", now)

    def receive_tick(self, hdr: frame.Header) -> None:
        """The far end's tick: an empty packet for the controller, which
        only bumps the connection's input counter, as erts does for a
        tick. It passes the data queued before it; that orders nothing."""
        ch = self.channels.remote(received_key(hdr.src, hdr.epoch, hdr.flags))
        if ch is None:
            self.stats["ticks_unknown_channel"] += 1
            return
        self.out.port.append(port_codec.encode_data_prefix(ch.chan, len(_EMPTY_PACKET)))
        self.out.port.append(_EMPTY_PACKET)

    def _tell_flows(self, ch: Channel, box: Outbox) -> None:
        """Ask the controller to suspend the senders of flows that have too
        much queued, and to resume those that are down to half."""
        port = self.out.port
        for flow in box.to_hold:
            port.append(port_codec.encode_ctrl((Atom("hold_flow"), ch.chan, flow)))
        for flow in box.to_release:
            port.append(port_codec.encode_ctrl((Atom("release_flow"), ch.chan, flow)))
        self.stats["flows_held"] += len(box.to_hold)
        box.to_hold.clear()
        box.to_release.clear()

    def _resend_later(self, ch: Channel, now: float, wait: float) -> None:
        at = now + wait
        self.resend_at[ch.chan] = (at, wait)
        self._due = min(self._due, at)

    def _stall(self, ch: Channel) -> None:
        """The channel stopped moving: pause it whole, and let its held
        senders go. Erts then keeps what they send, and as with stock
        distribution over a stuck socket it suspends them, and answers a
        ``nosuspend`` send with ``nosuspend``, once its buffer passes
        ``dist_buf_busy_limit``. The first ack ends it."""
        assert ch.outbox is not None
        ch.stalled = True
        self.stats["channels_stalled"] += 1
        ch.outbox.stop_holding()
        self._tell_flows(ch, ch.outbox)
        self._refresh_pause(ch)

    def _refresh_pause(self, ch: Channel) -> None:
        """Hold the channel's data in the BEAM while its outbox is full, its
        link congested or its retransmit window full; let it flow otherwise.
        The outbox resumes a little below its bound, not at half: while the
        controller is paused, the BEAM's queue fills and suspends every
        sender on the connection (busy_dist_port), the small ones too."""
        assert ch.sender is not None and ch.outbox is not None
        bound = self.config.queue_bytes
        queued = ch.outbox.queued_bytes
        hold = (ch.stalled or ch.link.congested or ch.sender.full or queued >= bound
                or (ch.paused and queued > bound - bound // 8))
        if hold != ch.paused:
            ch.paused = hold
            self.out.port.append(port_codec.encode_ctrl((Atom("pause" if hold else "resume"),
                                                         ch.chan)))

    def resend(self, ch: Channel, now: float) -> None:
        """A link of the channel's path is gone, and frames with it, maybe:
        send again all the far end has not acknowledged, along the new path.
        It drops what it has already."""
        assert ch.sender is not None
        frames = ch.sender.resends()
        if not frames or not ch.link.up or not ch.opened:
            return
        self.stats["rerouted_channels"] += 1
        self.stats["retransmitted"] += len(frames)
        assert ch.rto is not None and ch.budget is not None
        ch.rto.resent()
        ch.budget.reset()  # a new path, or one that lost frames
        self._send_held(ch, frames, now)

    def _send_held(self, ch: Channel, frames: list[tuple[int, Payload, int, bool]],
                   now: float) -> None:
        """Frames the sender holds, again, as :meth:`Sender.resends` gives them."""
        framer, link = self.framer, ch.link
        link.last_tx = now
        flags, hops, epoch, src, dst = (ch.flags | framer.sealed, self.config.max_hops,
                                        ch.epoch, framer.id, ch.peer_id)
        for seq, body, after, skip in frames:
            header = _data_header(flags, hops, epoch, src, dst, seq, after, skip)
            self.out.links.append((link.key, framer.routed(header, dst, body)))

    # ------------------------------------------------------------------
    # receiving

    def receive_data(self, hdr: frame.Header, payload: Any, now: float) -> None:
        ch = self.channels.remote(received_key(hdr.src, hdr.epoch, hdr.flags))
        if ch is None:
            self.stats["data_unknown_channel"] += 1
            self._refuse(hdr, now)
            return
        receiver = ch.receiver
        assert receiver is not None
        duplicates, reordered = receiver.duplicates, receiver.reordered
        flags = hdr.flags
        after = (AFTER_ALL if flags & FLAG_BARRIER
                 else hdr.seq - hdr.chunk_index if hdr.chunk_index else AFTER_NONE)
        try:
            ready = receiver.receive(hdr.seq, payload, now, after, bool(flags & FLAG_SKIP))
        except SequenceError as exc:
            log.error("channel %d to %s: %s", ch.chan, ch.peer.decode(errors="replace"), exc)
            self.close(ch, exc.reason, now)
            return
        port = self.out.port
        for piece in ready:
            port.append(port_codec.encode_data_prefix(ch.chan, len(piece)))
            port.append(piece)
        if receiver.duplicates != duplicates:
            self.stats["duplicates_dropped"] += receiver.duplicates - duplicates
        if receiver.reordered != reordered:
            self.stats["reordered"] += receiver.reordered - reordered
        self._sequencing_due(ch, now)

    def _sequencing_due(self, ch: Channel, now: float) -> None:
        """Send the ack the receiver wants now, and remember the channel
        if it wants one later (or watches a gap)."""
        receiver = ch.receiver
        assert receiver is not None
        ack = receiver.take_ack(now)
        if ack is not None:
            # and how far it received, past a gap: the far end then knows
            # the channel moves (it is not stalled) while one flow waits;
            # and which skips it took, once it took any (pydist.core.skips)
            taken = receiver.taken
            payload = b""
            if taken:
                payload = _SEEN.pack(receiver.seen) + taken.encode()
            elif receiver.seen > ack:
                payload = _SEEN.pack(receiver.seen)
            self.framer.send(ch.link, Kind.ACK, ch, payload, now, seq=ack)
        missing = receiver.take_gap(now)
        if missing is not None:
            self.stats["gaps_reported"] += 1
            self.framer.send(ch.link, Kind.ACK, ch,
                             b"".join(_RANGE.pack(*r) for r in missing), now,
                             seq=receiver.expected, flags=FLAG_GAP)
        due = receiver.deadline()
        if due is None:
            self.seq_due.discard(ch.chan)
        else:
            self.seq_due.add(ch.chan)
            self._due = min(self._due, due)

    def ack(self, hdr: frame.Header, payload: bytes | memoryview, now: float) -> None:
        ch = self.channels.remote(received_key(hdr.src, hdr.epoch, hdr.flags))
        if ch is None:
            self.stats["ack_unknown_channel"] += 1
            return
        assert ch.sender is not None
        if hdr.flags & FLAG_GAP:
            self._gap_reported(ch, payload, now)
            return
        taken = None
        if len(payload) >= _SEEN.size:
            (seen,) = _SEEN.unpack_from(payload)
            if len(payload) > _SEEN.size:
                try:
                    taken = skips.decode(payload[_SEEN.size:])
                except skips.RecordError as exc:
                    self.stats["ack_errors"] += 1
                    log.warning("channel %d to %s: ack refused: %s",
                                ch.chan, ch.peer.decode(errors="replace"), exc)
                    return
            if seen > ch.peer_seen:
                ch.peer_seen, ch.moving = seen, True
                if ch.stalled:
                    self._unstall(ch)
        try:
            freed = ch.sender.ack(hdr.seq, taken)
        except SequenceError as exc:
            log.error("channel %d to %s: %s", ch.chan, ch.peer.decode(errors="replace"), exc)
            self.close(ch, exc.reason, now)
            return
        lost = ch.sender.take_lost()
        if lost:
            self._tell_lost(ch, lost)
        if freed:  # progress: the resend clock starts again, at its first wait
            assert ch.rto is not None and ch.budget is not None
            sample = ch.rto.acked(hdr.seq, now)
            if sample is not None:
                ch.budget.rtt(sample)
            ch.budget.acked(freed, now)
            if ch.stalled:
                self._unstall(ch)
            if ch.sender.frames:
                self._resend_later(ch, now, ch.rto.timeout)
            else:
                self.resend_at.pop(ch.chan, None)
            self.pump(ch, now)

    def _unstall(self, ch: Channel) -> None:
        assert ch.outbox is not None
        ch.stalled = False
        ch.outbox.start_holding()
        self._refresh_pause(ch)

    def _gap_reported(self, ch: Channel, payload: bytes | memoryview, now: float) -> None:
        """The far end misses frames for long (a gap report): if all of them
        are lossy, send skips in their place (their processes are told when
        the acks say the skips were taken: _tell_lost); else leave the gap
        to close the connection at the far end."""
        if len(payload) % _RANGE.size or len(payload) > MAX_GAP_RANGES * _RANGE.size:
            self.stats["ack_errors"] += 1
            return
        missing = [_RANGE.unpack_from(payload, i) for i in range(0, len(payload), _RANGE.size)]
        sender = ch.sender
        assert sender is not None
        skipped = sender.skip(missing)
        if not skipped:
            return
        log.warning("channel %d to %s: giving up %d messages of %d processes after a gap",
                    ch.chan, ch.peer.decode(errors="replace"), sum(skipped.values()),
                    len(skipped))
        if ch.link.up and ch.opened:  # else they go with the next resend
            self._send_held(ch, [held for held in sender.resends() if held[3]], now)

    def _tell_lost(self, ch: Channel, lost: dict[int, int]) -> None:
        """The far end took skips for these flows' messages: tell each
        process how many it lost."""
        port = self.out.port
        for flow, messages in lost.items():
            self.stats["messages_given_up"] += messages
            port.append(port_codec.encode_ctrl((Atom("lost"), ch.peer, flow, messages)))

    def _refuse(self, hdr: frame.Header, now: float) -> None:
        key = received_key(hdr.src, hdr.epoch, hdr.flags)
        if self.channels.recently_closed(key):
            return
        self.channels.remember_closed(key)
        self.route_close(hdr, b"unknown_channel", None, now)

    def route_close(self, hdr: frame.Header, reason: bytes, arrived: Link | None,
                    now: float) -> None:
        """CLOSE back to the source of ``hdr``, along the route (or the link it came on)."""
        flags = 0 if hdr.flags & FLAG_INITIATOR else FLAG_INITIATOR
        hop = self.next_hop(hdr.src)
        link = self.links.get(hop) if hop is not None else arrived
        if link is not None:
            framer = self.framer
            header = frame.encode(Kind.CLOSE, framer.id, hdr.src, hdr.epoch,
                                  flags=flags | framer.sealed, hops=self.config.max_hops)
            self.out.links.append((link.key, framer.routed(header, hdr.src, reason)))

    def closed_by_beam(self, chan: int, reason: bytes, now: float) -> None:
        """Our BEAM closed the channel: the far end is told, the BEAM is not
        told again."""
        ch = self.channels.get(chan)
        if ch is not None:
            self.framer.send(ch.link, Kind.CLOSE, ch, reason, now)
            self.forget(ch)

    def closed_by_peer(self, hdr: frame.Header, reason: bytes) -> None:
        """The far end closed a channel (a CLOSE came)."""
        ch = self.channels.remote(received_key(hdr.src, hdr.epoch, hdr.flags))
        if ch is not None:
            why = reason.decode(errors="replace")
            log.info("channel %d closed by %s: %s", ch.chan, ch.peer.decode(errors="replace"), why)
            if why in CLOSE_REASONS and why not in ORDERLY:  # the far carrier lost frames
                self._report_loss(ch, why)
            self.tell_closed(ch.chan, "peer_closed")
            self.forget(ch)

    # ------------------------------------------------------------------
    # time

    def timer(self, now: float) -> None:
        """Acks due and gaps that did not fill in time; and frames whose
        ack is overdue, sent again."""
        for chan in sorted(self.seq_due):
            self._sequencing_timer(self.channels[chan], now)
        for chan, (at, wait) in list(self.resend_at.items()):
            if at <= now:
                # No ack for a while: a frame or its ack was lost without a
                # route change (a node in the middle gave up on a stalled
                # link). Send again, waiting twice as long each time, so a
                # far end that is merely slow is not flooded.
                self.stats["resend_timeouts"] += 1
                ch = self.channels[chan]
                assert ch.rto is not None
                ch.rto.expired()
                self.resend(ch, now)
                self._resend_later(ch, now, min(wait * 2, _MAX_RESEND_WAIT))
                if ch.moving:  # a flow waits on a gap, the others get through
                    ch.moving = False
                elif not ch.stalled:
                    self._stall(ch)
        self._due = self._next_due()

    def _next_due(self) -> float:
        due = min((at for at, _ in self.resend_at.values()), default=_NEVER)
        for chan in self.seq_due:
            receiver = self.channels[chan].receiver
            assert receiver is not None
            at = receiver.deadline()
            if at is not None and at < due:
                due = at
        return due

    def _sequencing_timer(self, ch: Channel, now: float) -> None:
        assert ch.receiver is not None
        try:
            ch.receiver.check(now)
        except SequenceError as exc:
            log.error("channel %d to %s: %s", ch.chan, ch.peer.decode(errors="replace"), exc)
            self.stats["gaps"] += 1
            self.close(ch, exc.reason, now)
            return
        self._sequencing_due(ch, now)

    # ------------------------------------------------------------------
    # closing

    def close(self, ch: Channel, reason: str, now: float) -> None:
        # not over a link given up, nor for a channel never opened
        told = ch.link.key in self.links and ch.opened
        if told:
            self.framer.send(ch.link, Kind.CLOSE, ch, reason.encode(), now)
        self.tell_closed(ch.chan, reason)
        self.forget(ch, told)

    def forget(self, ch: Channel, told: bool = True) -> None:
        self.channels.remove(ch, told)
        self.seq_due.discard(ch.chan)
        self.resend_at.pop(ch.chan, None)
        self.gone(ch)

    def tell_closed(self, chan: int, reason: str) -> None:
        assert reason in CLOSE_REASONS, reason
        ch = self.channels.get(chan)
        if ch is not None and reason not in ORDERLY:
            self._report_loss(ch, reason)
        self.out.port.append(port_codec.encode_ctrl((Atom("closed"), chan, Atom(reason))))

    def _report_loss(self, ch: Channel, reason: str) -> None:
        """For py_dist:monitor_losses/0; before the close, so that a watcher
        hears of the loss before the nodedown."""
        unacked = ch.sender.frames if ch.sender is not None else 0
        self.out.port.append(port_codec.encode_ctrl((Atom("loss"), ch.peer, Atom(reason),
                                                     unacked)))


def _names(source: bytes, target: bytes) -> bytes:
    """OPEN's payload: both ends' names, so every node on the path knows them."""
    return bytes((len(source),)) + source + target


def _split_names(payload: bytes) -> tuple[bytes | None, bytes]:
    if not payload or payload[0] == 0 or payload[0] >= len(payload):
        return None, payload
    n = payload[0]
    return payload[1:1 + n], payload[1 + n:]


def _gather(box: Outbox, room: int) -> Payload | None:
    """The next DATA frame's payload: the outbox's next packets of one
    flow (:attr:`Outbox.last_flow`), in the order it gives them, joined up
    to :data:`FRAME_BYTES` (or ``room``, what the in-flight budget has
    left). One flow per frame, since the far end orders frames per flow.
    Per frame, Python pays for framing, the sequence window,
    acknowledgement and a ZeroMQ message at either end: far more than one
    copy of 64 KiB, which is what an erts fragment is and so what most
    packets are while large messages stream."""
    body = box.pop()
    if body is None:
        return None
    n = size(body)
    limit = min(FRAME_BYTES, room)
    if n >= limit or not len(box):
        return body
    flow = box.last_flow
    parts = [body]
    while n < limit:
        # never past 2 * FRAME_BYTES: a large run (a packet erts did not
        # cut, or a batch of one flow) goes in a frame of its own
        more = box.pop(2 * FRAME_BYTES - n, flow)
        if more is None:
            break
        parts.append(more)
        n += size(more)
    return body if len(parts) == 1 else b"".join(parts)


def _data_header(flags: int, hops: int, epoch: int, src: int, dst: int, seq: int, after: int,
                 skip: bool) -> bytes:
    """A DATA frame's header: what it comes after goes in the chunk index,
    as a distance back (see :data:`pydist.core.wire.FLAG_BARRIER`)."""
    if after == AFTER_ALL:
        flags |= FLAG_BARRIER
    if skip:
        flags |= FLAG_SKIP
    back = seq - after if after >= 0 else 0
    return HEADER.pack(VERSION, _DATA, flags, hops, 0, epoch, src, dst, seq, back, 1)
