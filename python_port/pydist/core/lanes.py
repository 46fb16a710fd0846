"""The lanes besides the reliable one: messages of ``py_dist:send/3``.

A lane message is not part of an Erlang connection: the BEAM hands over
``term_to_binary({To, Msg})`` and the destination node's name, and the
message travels the overlay as a datagram, with no sequence number to
wait for and no acknowledgement. It is cut into chunks of ``chunk_bytes``
at the source (:func:`pydist.core.chunking.cut`), nodes in between forward
the chunks as they come, and only the destination joins them
(:class:`pydist.core.chunking.Reassembler`) and hands the BEAM the whole
message to deliver with ``!``.

- *unordered*: delivered when whole, in any order; lost only with a link
  (or a node in the middle dropping for a stalled path), and then the
  partial message expires; waits in a bounded queue while its first link
  is congested, and is dropped past ``lane_queue_bytes`` (``overflow``).
- *unreliable*: as unordered, but dropped at once while its link is
  congested (``congested``): the first to go under pressure.
- *realtime*: waits like unordered but first, and is dropped once past its
  deadline (``{deadline, Ms}``, else ``realtime_deadline``) before it left
  this node; the receiver delivers the realtime messages of a sender only
  in order, dropping one older than the last delivered (``late``).

Drops on this node are counted per lane and reason, and reported to the
sender when it asked (``notify``). The deadline is this node's: clocks of
other machines are not compared.
"""

from __future__ import annotations

import logging
import random
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from pydist.core import frame, port_codec
from pydist.core.channels import ChannelTable, Link, LinkKey
from pydist.core.chunking import ChunkError, Reassembler, cut
from pydist.core.config import Config
from pydist.core.etf import Atom
from pydist.core.router import Router
from pydist.core.trust import Trust
from pydist.core.wire import (
    HEADER,
    LANE_NAMES,
    REALTIME,
    UNRELIABLE,
    VERSION,
    Kind,
    node_id,
)

log = logging.getLogger("pydist.lanes")

_LANE = int(Kind.LANE)
#: realtime senders remembered for ordering; the oldest is forgotten first
_REALTIME_SOURCES = 4096
_PARTIAL_MESSAGES = 4096

Out = bytes | memoryview


@dataclass
class Waiting:
    """A lane message waiting for its congested link."""

    lane: int
    deadline: float | None
    notify: bytes
    frames: list[list[Out]]
    size: int


class LanePath:
    # state the node keeps, used here
    config: Config
    id: int
    name: bytes | None
    links: dict[LinkKey, Link]
    by_peer: dict[bytes, Link]
    router: Router
    stats: Counter[str]
    deadline: float
    port_out: list[Out]
    link_out: list[tuple[LinkKey, list[Out]]]
    trust: Trust | None
    sealed: int
    channels: ChannelTable
    live_peers: Counter[int]
    _routed: Callable[[bytes, int, Out], list[Out]]  # see Delivery

    def _init_lanes(self, rng: random.Random) -> None:
        c = self.config
        #: names this node's life: a restarted sender's message ids start again
        self.lane_epoch = rng.getrandbits(32)
        self.lane_next_id = 0
        # a lane message is one port packet at its source: max_frame at most
        self.lane_parts: Reassembler[tuple[int, int, int, int]] = Reassembler(
            c.max_frame, _PARTIAL_MESSAGES, c.gap_timeout)
        self.realtime_last: OrderedDict[tuple[int, int], int] = OrderedDict()
        #: lane messages waiting for a congested link, realtime first
        self.lane_waiting: dict[LinkKey, tuple[deque[Waiting], deque[Waiting]]] = {}
        self.lane_waiting_bytes: dict[LinkKey, int] = {}
        #: whole messages from peers whose connection is still in its
        #: handshake here (the peer's side may be up first): delivered
        #: at our nodeup, dropped if the connection fails
        self.lane_early: dict[int, list[tuple[int, bytes]]] = {}
        self.lane_early_bytes = 0

    # ------------------------------------------------------------------
    # sending

    def _lane_send(self, lane: int, deadline_ms: int, dest: bytes, notify: bytes,
                   payload: memoryview, now: float) -> None:
        name = LANE_NAMES.get(lane)
        if name is None:
            self.stats["port_errors"] += 1
            log.error("lane message for unknown lane %d", lane)
            return
        self.stats[f"lane_{name}_sent"] += 1
        deadline = None
        if lane == REALTIME:
            deadline = now + (deadline_ms / 1000 if deadline_ms else self.config.realtime_deadline)
        if dest == self.name:
            self._lane_deliver(lane, payload)
            return
        dst = node_id(dest)
        hop = self.router.next_hop(dst)
        link = self.links.get(hop) if hop is not None else self.by_peer.get(dest)
        if link is None or not link.up or (self.trust and dest not in self.trust.keys):
            self._lane_drop(lane, notify, "no_route")
            return
        chunks = cut(payload, self.config.chunk_bytes)
        msg_id, self.lane_next_id = self.lane_next_id, self.lane_next_id + 1
        hops, epoch, count = self.config.max_hops, self.lane_epoch, len(chunks)
        frames = [self._routed(HEADER.pack(VERSION, _LANE, self.sealed, hops, lane, epoch,
                                           self.id, dst, msg_id, i, count), dst, chunk)
                  for i, chunk in enumerate(chunks)]
        if not link.congested and link.key not in self.lane_waiting:
            self._lane_out(link, frames, now)
        elif lane == UNRELIABLE:
            self._lane_drop(lane, notify, "congested")
        else:
            self._lane_wait(link.key, Waiting(lane, deadline, notify, frames, len(payload)))

    def _lane_wait(self, key: LinkKey, msg: Waiting) -> None:
        held = self.lane_waiting_bytes.get(key, 0)
        if held + msg.size > self.config.lane_queue_bytes:
            self._lane_drop(msg.lane, msg.notify, "overflow")
            return
        realtime, others = self.lane_waiting.setdefault(key, (deque(), deque()))
        (realtime if msg.lane == REALTIME else others).append(msg)
        self.lane_waiting_bytes[key] = held + msg.size
        if msg.deadline is not None:
            self.deadline = min(self.deadline, msg.deadline)

    def _lane_out(self, link: Link, frames: list[list[Out]], now: float) -> None:
        link.last_tx = now
        key = link.key
        self.link_out.extend((key, parts) for parts in frames)

    def _take_waiting(self, key: LinkKey) -> Iterator[Waiting]:
        """Every message waiting for the link, realtime first; none wait after."""
        queues = self.lane_waiting.pop(key, ((), ()))
        self.lane_waiting_bytes.pop(key, None)
        for queue in queues:
            yield from queue

    def _lanes_drained(self, link: Link, now: float) -> None:
        """The link takes messages again: what waited for it goes, realtime
        first, but not what is past its deadline."""
        for msg in self._take_waiting(link.key):
            if msg.deadline is not None and now > msg.deadline:
                self._lane_drop(msg.lane, msg.notify, "deadline")
            else:
                self._lane_out(link, msg.frames, now)

    def _lanes_timer(self, now: float) -> None:
        """Drop realtime messages past their deadline, and partial messages
        whose other chunks are not coming."""
        for key, (realtime, _) in self.lane_waiting.items():
            # deadlines differ per message: one behind a later one may be due first
            if any(now > msg.deadline for msg in realtime if msg.deadline is not None):
                keep = deque[Waiting]()
                for msg in realtime:
                    if msg.deadline is not None and now > msg.deadline:
                        self.lane_waiting_bytes[key] -= msg.size
                        self._lane_drop(msg.lane, msg.notify, "deadline")
                    else:
                        keep.append(msg)
                realtime.clear()
                realtime.extend(keep)
            due = min((m.deadline for m in realtime if m.deadline is not None), default=None)
            if due is not None:
                self.deadline = min(self.deadline, due)
        expired = self.lane_parts.expire(now)
        if expired:
            self.stats["lane_expired"] += len(expired)
        self._watch_parts()

    def _watch_parts(self) -> None:
        """Wake the timer when the oldest partial message is to expire."""
        due = self.lane_parts.deadline()
        if due is not None:
            self.deadline = min(self.deadline, due)

    def _lanes_link_down(self, key: LinkKey) -> None:
        for msg in self._take_waiting(key):
            self._lane_drop(msg.lane, msg.notify, "no_route")

    def _lane_drop(self, lane: int, notify: bytes, reason: str) -> None:
        self.stats[f"lane_{LANE_NAMES[lane]}_dropped_{reason}"] += 1
        if notify:
            self.port_out.append(port_codec.encode_ctrl((Atom("dropped"), notify, Atom(reason))))

    # ------------------------------------------------------------------
    # receiving

    def _receive_lane(self, hdr: frame.Header, payload: Any, now: float) -> None:
        name = LANE_NAMES.get(hdr.lane)
        if name is None:
            self.stats["lane_errors"] += 1
            return
        if hdr.src not in self.live_peers and not self.channels.has_peer(hdr.src):
            # A lane message comes after its node's nodeup, as any message
            # of that node does: only a distribution handshake checks the
            # cookie end to end, and py_dist:send/3 makes one first.
            self.stats[f"lane_{name}_dropped_not_connected"] += 1
            return
        try:
            whole = self.lane_parts.add((hdr.src, hdr.epoch, hdr.lane, hdr.seq),
                                        hdr.chunk_index, hdr.chunk_count, payload, now)
        except ChunkError as exc:
            self.stats["lane_errors"] += 1
            log.warning("lane chunk refused: %s", exc)
            return
        if whole is None:
            self._watch_parts()
            return
        if hdr.lane == REALTIME:
            source = (hdr.src, hdr.epoch)
            if self.realtime_last.get(source, -1) >= hdr.seq:
                self.stats["lane_realtime_dropped_late"] += 1
                return
            self.realtime_last[source] = hdr.seq
            self.realtime_last.move_to_end(source)
            if len(self.realtime_last) > _REALTIME_SOURCES:
                self.realtime_last.popitem(last=False)
        if hdr.src in self.live_peers:
            self._lane_deliver(hdr.lane, whole)
        elif self.lane_early_bytes + len(whole) > self.config.lane_queue_bytes:
            self.stats[f"lane_{name}_dropped_overflow"] += 1
        else:
            self.lane_early.setdefault(hdr.src, []).append((hdr.lane, bytes(whole)))
            self.lane_early_bytes += len(whole)

    def _lanes_peer_up(self, peer_id: int) -> None:
        """Our side of a connection to the peer is up: what it sent on
        lanes in the moment between its nodeup and ours goes now."""
        for lane, whole in self.lane_early.pop(peer_id, ()):
            self.lane_early_bytes -= len(whole)
            self._lane_deliver(lane, whole)

    def _lanes_peer_gone(self, peer_id: int) -> None:
        """No connection to the peer is left: what waited for one never goes."""
        if peer_id in self.lane_early and not self.channels.has_peer(peer_id):
            for lane, whole in self.lane_early.pop(peer_id):
                self.lane_early_bytes -= len(whole)
                self.stats[f"lane_{LANE_NAMES[lane]}_dropped_not_connected"] += 1

    def _lane_deliver(self, lane: int, whole: bytes | memoryview) -> None:
        self.stats[f"lane_{LANE_NAMES[lane]}_delivered"] += 1
        self.port_out.extend(port_codec.encode_deliver(whole))
