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

Lane messages are taken only from peers with a live distribution
connection (see :meth:`Lanes.peer_up`): only a distribution handshake
checks the cookie end to end.
"""

from __future__ import annotations

import logging
import random
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from pydist.core import frame, port_codec
from pydist.core.channels import Channel, ChannelTable, Link, LinkKey
from pydist.core.chunking import ChunkError, Reassembler, cut
from pydist.core.config import Config
from pydist.core.etf import Atom
from pydist.core.framer import Framer
from pydist.core.output import Out, Output
from pydist.core.process_opts import messages_in
from pydist.core.wire import (
    FLAG_DIST,
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
_NEVER = float("inf")


@dataclass
class Waiting:
    """A lane message waiting for its congested link."""

    lane: int
    deadline: float | None
    notify: bytes
    frames: list[list[Out]]
    size: int


class Lanes:
    """Lane messages: sent, waiting for a congested link, reassembled and
    delivered. ``next_hop`` is the node's routing table (the router is
    replaced when the BEAM names the node), ``links`` and ``by_peer`` the
    neighbours' links, ``channels`` the node's distribution connections."""

    def __init__(self, config: Config, framer: Framer, out: Output, stats: Counter[str],
                 rng: random.Random, *, next_hop: Callable[[int], LinkKey | None],
                 links: Mapping[LinkKey, Link], by_peer: Mapping[bytes, Link],
                 channels: ChannelTable) -> None:
        self.config = config
        self.framer = framer
        self.out = out
        self.stats = stats
        self.next_hop = next_hop
        self.links = links
        self.by_peer = by_peer
        self.channels = channels
        #: names this node's life: a restarted sender's message ids start again
        self.epoch = rng.getrandbits(32)
        self.next_id = 0
        # a lane message is one port packet at its source: max_frame at most
        self.parts: Reassembler[tuple[int, int, int, int]] = Reassembler(
            config.max_frame, _PARTIAL_MESSAGES, config.gap_timeout)
        self.realtime_last: OrderedDict[tuple[int, int], int] = OrderedDict()
        #: lane messages waiting for a congested link, realtime first
        self.waiting: dict[LinkKey, tuple[deque[Waiting], deque[Waiting]]] = {}
        self.waiting_bytes: dict[LinkKey, int] = {}
        #: peers (by id) with a live distribution connection: channels the
        #: BEAM said are up, which only a handshake that checked the cookie
        #: end to end makes; lane messages are taken from these alone
        self.live_peers: dict[int, list[Channel]] = {}
        #: whole messages (lane, header flags, message) from peers whose
        #: connection is still in its handshake here (the peer's side may
        #: be up first): delivered at our nodeup, dropped if it fails
        self.early: dict[int, list[tuple[int, int, bytes]]] = {}
        self.early_bytes = 0
        #: no later than the first realtime deadline or reassembly expiry
        #: (exact after :meth:`timer`, earlier when what was due went)
        self._due = _NEVER

    def deadline(self) -> float:
        """When :meth:`timer` may have something to do."""
        return self._due

    # ------------------------------------------------------------------
    # sending

    def send(self, lane: int, deadline_ms: int, dest: bytes, notify: bytes,
             payload: memoryview, now: float, *, dist: bool = False) -> None:
        """A lane message from the BEAM, for the node named ``dest``:
        ``term_to_binary({To, Msg})``, or with ``dist`` a distribution
        packet of a process's own lane (:mod:`pydist.core.process_opts`)
        for the destination's connection with this node."""
        name = LANE_NAMES.get(lane)
        if name is None:
            self.stats["port_errors"] += 1
            log.error("lane message for unknown lane %d", lane)
            return
        self.stats[f"lane_{name}_sent"] += 1
        deadline = None
        if lane == REALTIME:
            deadline = now + (deadline_ms / 1000 if deadline_ms else self.config.realtime_deadline)
        framer = self.framer
        if dest == framer.name:  # py_dist:send/3 to a name on this node
            self._deliver(lane, 0, payload)
            return
        dst = node_id(dest)
        hop = self.next_hop(dst)
        link = self.links.get(hop) if hop is not None else self.by_peer.get(dest)
        trust = framer.trust
        if link is None or not link.up or (trust and dest not in trust.keys):
            self._drop(lane, notify, "no_route")
            return
        chunks = cut(payload, self.config.chunk_bytes)
        msg_id, self.next_id = self.next_id, self.next_id + 1
        hops, epoch, count = self.config.max_hops, self.epoch, len(chunks)
        flags = framer.sealed | (FLAG_DIST if dist else 0)
        frames = [framer.routed(HEADER.pack(VERSION, _LANE, flags, hops, lane, epoch,
                                            framer.id, dst, msg_id, i, count), dst, chunk)
                  for i, chunk in enumerate(chunks)]
        if not link.congested and link.key not in self.waiting:
            self._out(link, frames, now)
        elif lane == UNRELIABLE:
            self._drop(lane, notify, "congested")
        else:
            self._wait(link.key, Waiting(lane, deadline, notify, frames, len(payload)))

    def _wait(self, key: LinkKey, msg: Waiting) -> None:
        held = self.waiting_bytes.get(key, 0)
        if held + msg.size > self.config.lane_queue_bytes:
            self._drop(msg.lane, msg.notify, "overflow")
            return
        realtime, others = self.waiting.setdefault(key, (deque(), deque()))
        (realtime if msg.lane == REALTIME else others).append(msg)
        self.waiting_bytes[key] = held + msg.size
        if msg.deadline is not None:
            self._due = min(self._due, msg.deadline)

    def _out(self, link: Link, frames: list[list[Out]], now: float) -> None:
        link.last_tx = now
        key = link.key
        self.out.links.extend((key, parts) for parts in frames)

    def _take_waiting(self, key: LinkKey) -> Iterator[Waiting]:
        """Every message waiting for the link, realtime first; none wait after."""
        queues = self.waiting.pop(key, ((), ()))
        self.waiting_bytes.pop(key, None)
        for queue in queues:
            yield from queue

    def drained(self, link: Link, now: float) -> None:
        """The link takes messages again: what waited for it goes, realtime
        first, but not what is past its deadline."""
        for msg in self._take_waiting(link.key):
            if msg.deadline is not None and now > msg.deadline:
                self._drop(msg.lane, msg.notify, "deadline")
            else:
                self._out(link, msg.frames, now)

    def timer(self, now: float) -> None:
        """Drop realtime messages past their deadline, and partial messages
        whose other chunks are not coming."""
        due = _NEVER
        for key, (realtime, _) in self.waiting.items():
            # deadlines differ per message: one behind a later one may be due first
            if any(now > msg.deadline for msg in realtime if msg.deadline is not None):
                keep = deque[Waiting]()
                for msg in realtime:
                    if msg.deadline is not None and now > msg.deadline:
                        self.waiting_bytes[key] -= msg.size
                        self._drop(msg.lane, msg.notify, "deadline")
                    else:
                        keep.append(msg)
                realtime.clear()
                realtime.extend(keep)
            due = min([due, *(m.deadline for m in realtime if m.deadline is not None)])
        expired = self.parts.expire(now)
        if expired:
            self.stats["lane_expired"] += len(expired)
        self._due = due
        self._watch_parts()

    def _watch_parts(self) -> None:
        """Wake the timer when the oldest partial message is to expire."""
        due = self.parts.deadline()
        if due is not None:
            self._due = min(self._due, due)

    def link_down(self, key: LinkKey) -> None:
        for msg in self._take_waiting(key):
            self._drop(msg.lane, msg.notify, "no_route")

    def _drop(self, lane: int, notify: bytes, reason: str) -> None:
        self.stats[f"lane_{LANE_NAMES[lane]}_dropped_{reason}"] += 1
        if notify:
            self.out.port.append(port_codec.encode_ctrl((Atom("dropped"), notify, Atom(reason))))

    # ------------------------------------------------------------------
    # receiving

    def receive(self, hdr: frame.Header, payload: Any, now: float) -> None:
        name = LANE_NAMES.get(hdr.lane)
        if name is None:
            self.stats["lane_errors"] += 1
            return
        if not self.channels.has_peer(hdr.src):  # live or on its way
            # A lane message comes after its node's nodeup, as any message
            # of that node does: only a distribution handshake checks the
            # cookie end to end, and py_dist:send/3 makes one first.
            self.stats[f"lane_{name}_dropped_not_connected"] += 1
            return
        try:
            whole = self.parts.add((hdr.src, hdr.epoch, hdr.lane, hdr.seq),
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
        flags = hdr.flags & FLAG_DIST
        if flags and messages_in(whole) != 1:
            # erts takes a process's lane only for whole message sends;
            # anything else would be out of its connection's order
            self.stats["lane_errors"] += 1
            log.warning("a lane packet from %x is not one whole message send", hdr.src)
            return
        if hdr.src in self.live_peers:
            self._deliver(hdr.lane, flags, whole, hdr.src)
        elif self.early_bytes + len(whole) > self.config.lane_queue_bytes:
            self.stats[f"lane_{name}_dropped_overflow"] += 1
        else:
            self.early.setdefault(hdr.src, []).append((hdr.lane, flags, bytes(whole)))
            self.early_bytes += len(whole)

    def peer_up(self, ch: Channel) -> None:
        """The BEAM says the distribution connection over ``ch`` is up: its
        peer's lane messages are taken from now on, and what it sent in the
        moment between its nodeup and ours goes now."""
        if ch.live:
            return
        ch.live = True
        self.live_peers.setdefault(ch.peer_id, []).append(ch)
        for lane, flags, whole in self.early.pop(ch.peer_id, ()):
            self.early_bytes -= len(whole)
            self._deliver(lane, flags, whole, ch.peer_id)

    def channel_gone(self, ch: Channel) -> None:
        """Channel ``ch`` is forgotten; with no connection to its peer left,
        what waited for one never goes."""
        peer_id = ch.peer_id
        if ch.live:
            ch.live = False
            live = self.live_peers[peer_id]
            live.remove(ch)
            if not live:
                del self.live_peers[peer_id]
        if peer_id in self.early and not self.channels.has_peer(peer_id):
            for lane, _, whole in self.early.pop(peer_id):
                self.early_bytes -= len(whole)
                self.stats[f"lane_{LANE_NAMES[lane]}_dropped_not_connected"] += 1

    def _deliver(self, lane: int, flags: int, whole: bytes | memoryview,
                 src: int = 0) -> None:
        self.stats[f"lane_{LANE_NAMES[lane]}_delivered"] += 1
        port = self.out.port
        if flags & FLAG_DIST:
            # a process's own send: to erts, on the connection it came
            # over (the newest, should a reconnect have two up at once)
            ch = self.live_peers[src][-1]
            port.append(port_codec.encode_data_prefix(ch.chan, len(whole)))
            port.append(whole)
        else:
            port.extend(port_codec.encode_deliver(whole))
