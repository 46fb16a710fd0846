"""The channel data path: numbering, sending, receiving, acknowledging and
resending the frames of Erlang connections.

:class:`Delivery` is the half of :class:`pydist.core.node.Node` that deals
with one channel at a time: it turns a data packet from the BEAM into a
numbered DATA frame kept for resending (:mod:`pydist.core.sequencing`),
delivers what arrives in order, sends and takes acknowledgements, pauses a
channel while its link is congested or its window full, and closes it with
a reason the BEAM can show. The node around it decides which link a
channel uses, and when to resend (a route change, a timeout).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from typing import Any

from pydist.core import frame, port_codec
from pydist.core.channels import Channel, ChannelTable, Link, LinkKey, received_key
from pydist.core.config import Config
from pydist.core.etf import Atom
from pydist.core.outbox import Outbox
from pydist.core.port_codec import Groups
from pydist.core.router import Router
from pydist.core.sequencing import Receiver, Sender, SequenceError
from pydist.core.trust import SealError, Trust
from pydist.core.wire import CLOSE_REASONS, FLAG_INITIATOR, FLAG_SEALED, HEADER, VERSION, Kind

log = logging.getLogger("pydist.node")

Out = bytes | memoryview

_DATA = int(Kind.DATA)
#: bytes a flow sends at its turn: an erts fragment is 64 KiB
QUANTUM = 64 * 1024
#: closes that lose nothing: the far end closed, or our BEAM did
ORDERLY = frozenset(("peer_closed",))


class Delivery:
    # state the node keeps, used here
    config: Config
    id: int
    channels: ChannelTable
    links: dict[LinkKey, Link]
    router: Router
    stats: Counter[str]
    deadline: float
    port_out: list[Out]
    link_out: list[tuple[LinkKey, list[Out]]]
    #: channels whose receiver has an ack or a gap check to come
    seq_due: set[int]
    #: channels with frames not acknowledged: chan -> (when to send them
    #: again if no ack moves by then, the wait after that)
    resend_at: dict[int, tuple[float, float]]
    #: node keys: frames that travel end to end are sealed (None: keys off)
    trust: Trust | None
    #: FLAG_SEALED with node keys, else 0: or-ed into end-to-end headers
    sealed: int
    live_peers: Counter[int]
    _lanes_peer_gone: Callable[[int], None]  # see LanePath

    def _send_data(self, chan: int, groups: Groups, now: float) -> None:
        """Packets from the BEAM, by flow: into the channel's outbox, and
        out as far as its budget of bytes in flight allows."""
        ch = self.channels.get(chan)
        if ch is None:  # closed while the BEAM was still writing
            self.stats["data_after_close"] += 1
            return
        box = ch.outbox
        assert box is not None
        for flow, body in groups:
            box.push(flow, body)
        if box.queued_bytes > 2 * self.config.queue_bytes:  # the BEAM wrote on past a pause
            log.error("channel %d to %s: %d bytes queued past a pause", ch.chan,
                      ch.peer.decode(errors="replace"), box.queued_bytes)
            self._close(ch, "retransmit_overflow", now)
            return
        self._pump(ch, now)

    def _pump(self, ch: Channel, now: float) -> None:
        """Send from the outbox while the bytes in flight (sent, not yet
        acknowledged) are under ``inflight_bytes``: that keeps the queues
        beyond this node (ZeroMQ's, the kernel's, the far end's) short, so
        the flow scheduling done here decides what waits, not a FIFO."""
        box, sender, link = ch.outbox, ch.sender, ch.link
        assert box is not None and sender is not None
        if link.up and ch.opened and not link.congested and len(box):
            limit = self.config.inflight_bytes
            epoch, dst, hops, flags = ch.epoch, ch.peer_id, self.config.max_hops, ch.flags
            flags |= self.sealed
            src = self.id
            out = self.link_out
            sent = False
            while sender.bytes < limit and not sender.full:
                body = box.pop()
                if body is None:
                    break
                seq = sender.push(body)
                header = HEADER.pack(VERSION, _DATA, flags, hops, 0, epoch, src, dst, seq, 0, 1)
                out.append((link.key, self._routed(header, dst, body)))
                sent = True
            if sent:
                link.last_tx = now
                if ch.chan not in self.resend_at:
                    self._resend_later(ch, now, self.config.resend_timeout)
        if box.to_hold or box.to_release:
            self._tell_flows(ch, box)
        self._refresh_pause(ch)

    def _tell_flows(self, ch: Channel, box: Outbox) -> None:
        """Ask the controller to suspend the senders of flows that have too
        much queued, and to resume those that are down to half."""
        for flow in box.to_hold:
            self.port_out.append(port_codec.encode_ctrl((Atom("hold_flow"), ch.chan, flow)))
        for flow in box.to_release:
            self.port_out.append(port_codec.encode_ctrl((Atom("release_flow"), ch.chan, flow)))
        self.stats["flows_held"] += len(box.to_hold)
        box.to_hold.clear()
        box.to_release.clear()

    def _resend_later(self, ch: Channel, now: float, wait: float) -> None:
        at = now + wait
        self.resend_at[ch.chan] = (at, wait)
        self.deadline = min(self.deadline, at)

    def _channel(self, chan: int, peer: bytes, peer_id: int, epoch: int, initiator: bool,
                 link: Link) -> Channel:
        c = self.config
        ch = Channel(chan, peer, peer_id, epoch, initiator, link,
                     sender=Sender(c.window_bytes, c.window_frames),
                     receiver=Receiver(c.window_bytes, c.window_frames, c.gap_timeout,
                                       c.ack_every, c.ack_delay, c.ack_bytes),
                     outbox=Outbox(QUANTUM, c.flow_bytes))
        self.channels.add(ch)
        if link.congested:
            self._refresh_pause(ch)
        return ch

    def _refresh_pause(self, ch: Channel) -> None:
        """Hold the channel's data in the BEAM while its outbox is full, its
        link congested or its retransmit window full; let it flow otherwise.
        The outbox resumes a little below its bound, not at half: while the
        controller is paused, the BEAM's queue fills and suspends every
        sender on the connection (busy_dist_port), the small ones too."""
        assert ch.sender is not None and ch.outbox is not None
        bound = self.config.queue_bytes
        queued = ch.outbox.queued_bytes
        hold = (ch.link.congested or ch.sender.full or queued >= bound
                or (ch.paused and queued > bound - bound // 8))
        if hold != ch.paused:
            ch.paused = hold
            self.port_out.append(port_codec.encode_ctrl((Atom("pause" if hold else "resume"),
                                                         ch.chan)))

    def _receive_data(self, hdr: frame.Header, payload: Any, now: float) -> None:
        ch = self.channels.remote(received_key(hdr.src, hdr.epoch, hdr.flags))
        if ch is None:
            self.stats["data_unknown_channel"] += 1
            self._refuse(hdr, now)
            return
        receiver = ch.receiver
        assert receiver is not None
        duplicates, reordered = receiver.duplicates, receiver.reordered
        try:
            ready = receiver.receive(hdr.seq, payload, now)
        except SequenceError as exc:
            log.error("channel %d to %s: %s", ch.chan, ch.peer.decode(errors="replace"), exc)
            self._close(ch, exc.reason, now)
            return
        for piece in ready:
            self.port_out.append(port_codec.encode_data_prefix(ch.chan, len(piece)))
            self.port_out.append(piece)
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
            self._send(ch.link, Kind.ACK, ch, b"", now, seq=ack)
        due = receiver.deadline()
        if due is None:
            self.seq_due.discard(ch.chan)
        else:
            self.seq_due.add(ch.chan)
            self.deadline = min(self.deadline, due)

    def _ack(self, hdr: frame.Header, now: float) -> None:
        ch = self.channels.remote(received_key(hdr.src, hdr.epoch, hdr.flags))
        if ch is None:
            self.stats["ack_unknown_channel"] += 1
            return
        assert ch.sender is not None
        try:
            freed = ch.sender.ack(hdr.seq)
        except SequenceError as exc:
            log.error("channel %d to %s: %s", ch.chan, ch.peer.decode(errors="replace"), exc)
            self._close(ch, exc.reason, now)
            return
        if freed:  # progress: the resend clock starts again, at its first wait
            if ch.sender.frames:
                self._resend_later(ch, now, self.config.resend_timeout)
            else:
                self.resend_at.pop(ch.chan, None)
            self._pump(ch, now)

    def _refuse(self, hdr: frame.Header, now: float) -> None:
        key = received_key(hdr.src, hdr.epoch, hdr.flags)
        if self.channels.recently_closed(key):
            return
        self.channels.remember_closed(key)
        self._route_close(hdr, b"unknown_channel", None, now)

    def _route_close(self, hdr: frame.Header, reason: bytes, arrived: Link | None,
                     now: float) -> None:
        """CLOSE back to the source of ``hdr``, along the route (or the link it came on)."""
        flags = 0 if hdr.flags & FLAG_INITIATOR else FLAG_INITIATOR
        hop = self.router.next_hop(hdr.src)
        link = self.links.get(hop) if hop is not None else arrived
        if link is not None:
            header = frame.encode(Kind.CLOSE, self.id, hdr.src, hdr.epoch,
                                  flags=flags | self.sealed, hops=self.config.max_hops)
            self.link_out.append((link.key, self._routed(header, hdr.src, reason)))

    def _sequencing_timer(self, ch: Channel, now: float) -> None:
        assert ch.receiver is not None
        try:
            ch.receiver.check(now)
        except SequenceError as exc:
            log.error("channel %d to %s: %s", ch.chan, ch.peer.decode(errors="replace"), exc)
            self.stats["gaps"] += 1
            self._close(ch, exc.reason, now)
            return
        self._sequencing_due(ch, now)

    def _rebind(self, ch: Channel, link: Link) -> None:
        ch.link.channels.discard(ch.chan)
        link.channels.add(ch.chan)
        ch.link = link

    def _resend(self, ch: Channel, now: float) -> None:
        """A link of the channel's path is gone, and frames with it, maybe:
        send again all the far end has not acknowledged, along the new path.
        It drops what it has already."""
        assert ch.sender is not None
        frames = ch.sender.unacked()
        if not frames or not ch.link.up or not ch.opened:
            return
        self.stats["rerouted_channels"] += 1
        self.stats["retransmitted"] += len(frames)
        link = ch.link
        link.last_tx = now
        for seq, body in frames:
            header = HEADER.pack(VERSION, _DATA, ch.flags | self.sealed, self.config.max_hops, 0,
                                 ch.epoch, self.id, ch.peer_id, seq, 0, 1)
            self.link_out.append((link.key, self._routed(header, ch.peer_id, body)))

    def _send(self, link: Link, kind: Kind, ch: Channel | None, payload: bytes, now: float,
              seq: int = 0) -> None:
        """A frame on ``link``: for the far end of channel ``ch`` (sealed, with
        node keys), or for the neighbour itself (``ch`` None). Until the
        link is admitted, only the admission's own frames go."""
        if not link.up and kind not in (Kind.HELLO, Kind.PROOF, Kind.BYE):
            return
        link.last_tx = now
        if ch is None:
            self.link_out.append((link.key, frame.join(frame.encode(kind, self.id, 0), payload)))
        else:
            header = frame.encode(kind, self.id, ch.peer_id, ch.epoch, seq=seq,
                                  flags=ch.flags | self.sealed, hops=self.config.max_hops)
            self.link_out.append((link.key, self._routed(header, ch.peer_id, payload)))

    def _routed(self, header: bytes, dst: int, payload: Out) -> list[Out]:
        """The parts of a frame that travels end to end, to node ``dst``."""
        if self.trust is not None:
            payload = self.trust.seal(dst, header, payload)
        return frame.join(header, payload)

    def _unseal(self, hdr: frame.Header, head: Out, payload: Out) -> Out | None:
        """The payload of an end-to-end frame for us, if it is what it says
        it is; None (the frame dropped and counted) if not. A node in the
        middle may have forged it: the link it came on is not to blame."""
        try:
            if self.trust is None:
                raise SealError("a sealed frame, but this node has no keys")
            if not hdr.flags & FLAG_SEALED:
                raise SealError("a frame not sealed, but this node has keys")
            return self.trust.open(hdr.src, head, payload)
        except SealError as exc:
            self.stats["frames_forged"] += 1
            log.error("dropped a %s frame: %s", Kind(hdr.kind).name, exc)
            return None

    def _close(self, ch: Channel, reason: str, now: float) -> None:
        # not over a link given up, nor for a channel never opened
        told = ch.link.key in self.links and ch.opened
        if told:
            self._send(ch.link, Kind.CLOSE, ch, reason.encode(), now)
        self._tell_closed(ch.chan, reason)
        self._forget(ch, told)

    def _forget(self, ch: Channel, told: bool = True) -> None:
        self.channels.remove(ch, told)
        self.seq_due.discard(ch.chan)
        self.resend_at.pop(ch.chan, None)
        if ch.live:
            ch.live = False
            self.live_peers[ch.peer_id] -= 1
            if self.live_peers[ch.peer_id] <= 0:
                del self.live_peers[ch.peer_id]
        if ch.peer_id not in self.live_peers:
            self._lanes_peer_gone(ch.peer_id)

    def _tell_closed(self, chan: int, reason: str) -> None:
        assert reason in CLOSE_REASONS, reason
        ch = self.channels.get(chan)
        if ch is not None and reason not in ORDERLY:
            self._report_loss(ch, reason)
        self.port_out.append(port_codec.encode_ctrl((Atom("closed"), chan, Atom(reason))))

    def _report_loss(self, ch: Channel, reason: str) -> None:
        """For py_dist:monitor_losses/0; before the close, so that a watcher
        hears of the loss before the nodedown."""
        unacked = ch.sender.frames if ch.sender is not None else 0
        self.port_out.append(port_codec.encode_ctrl((Atom("loss"), ch.peer, Atom(reason),
                                                     unacked)))

    @staticmethod
    def _channel_info(ch: Channel) -> dict[Atom, Any]:
        assert ch.sender is not None and ch.receiver is not None and ch.outbox is not None
        return {Atom("chan"): ch.chan, Atom("peer"): ch.peer, Atom("epoch"): ch.epoch,
                Atom("initiator"): ch.initiator, Atom("paused"): ch.paused,
                Atom("unacked_bytes"): ch.sender.bytes,
                Atom("reorder_bytes"): ch.receiver.buffered_bytes,
                Atom("next_seq"): ch.sender.next_seq, Atom("expected"): ch.receiver.expected,
                Atom("queued_bytes"): ch.outbox.queued_bytes, Atom("flows"): ch.outbox.flows}
