"""Per-channel sequencing: what lets a channel outlive a change of route.

Links are TCP, so a frame is lost or overtaken only when the path under a
channel changes (frames in flight on a link that dies are gone, and frames
sent along the new path may arrive before those still on the old one), or
when a node in the middle drops it (its link does not drain:
``shell/transit.py``; it has no route yet). Rather than close the
connection then, the sender keeps every DATA frame until the far end
acknowledges it and sends again whatever is unacknowledged; the receiver
delivers in sequence order, holds frames that come early, and drops copies
of what it already has.

The node resends at two moments. After a route change (which it hears of:
:class:`pydist.core.router.Change`) it resends at once, over the new path.
And when no ack has moved for the channel's retransmission timeout (its
measured round trip: :mod:`pydist.core.rto`; ``resend_at``, set by
``Delivery._resend_later``), since a drop in the middle tells the sender
nothing; that timer also repairs a lost last frame, which leaves the
receiver no gap to see. Each resend that brings no ack doubles the wait, up
to 8 s, so a far end that is merely slow is not flooded. A loss the resends
do not repair in time shows as a gap that stays open; after
``gap_timeout`` the receiver gives up and the connection goes down, as stock
distribution does when its TCP connection breaks.

Order is kept per flow, not per channel (README, "Delivery semantics").
Each frame names what it must wait for at the receiver (``after``): the
last frame of its own flow that the far end has not acknowledged, or the
last barrier if that came later (:data:`AFTER_NONE` when there is
neither), or, for a barrier itself, every earlier frame
(:data:`AFTER_ALL`). The receiver delivers a frame once that one is
delivered, so a frame missing holds back only its own flow's later frames
(and barriers and what follows them). Erlang orders signals per pair of
processes, and a flow is one sending process, so nothing Erlang promises
is lost.

A frame whose loss its sender accepts (a *lossy* frame: its process asked
to be told of losses, ``py_dist:loss_mode(notify)``, and every packet in
it is a message) may be given up: when a gap stays open ``report_after``
the receiver reports what it misses (:meth:`Receiver.take_gap`), and a
sender that finds only lossy frames there turns them into *skips*
(:meth:`Sender.skip`), frames that stand in the flow's place and deliver
nothing. A process is told of its losses when the sender learns, from
the ack that acknowledges a skip, that the receiver took it (the frame
itself may have come first: :mod:`pydist.core.skips`). A gap with any
other frame in it is left alone, and closes the connection at
``gap_timeout`` as before.

Memory is bounded by the constructor limits at every step. The sender
refuses to hold more (``retransmit_overflow``; the node pauses the channel
while :attr:`Sender.full`, well before that), and so does the receiver
(``reorder_overflow``). With the receiver's limits at least the sender's,
an honest sender never overflows the receiver: every frame the receiver
holds early is one the sender still holds, besides the one awaited.
Sequence numbers are 64 bits on the wire and never wrap.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from pydist.core.frame import Payload, size
from pydist.core.skips import Record, TakenSkips, was_taken

#: the ``reason`` of every :class:`SequenceError`
REASONS = ("retransmit_overflow", "reorder_overflow", "gap_timeout", "bad_ack")
#: ``after`` of a barrier: it waits for every earlier frame
AFTER_ALL = -2
#: ``after`` of a frame that waits for none
AFTER_NONE = -1
#: the flow of barriers (what the BEAM's controller could not attribute,
#: handshake packets), as the outbox numbers flows; flows above TICK_FLOW
#: are sending processes
BARRIER_FLOW = 0
TICK_FLOW = 1
#: missing ranges a gap report names at most (a report is one frame)
MAX_GAP_RANGES = 64
#: a frame further ahead of the awaited one than this is not reordering
#: but a broken peer, refused however large the buffers
MAX_AHEAD = 1 << 31


class SequenceError(Exception):
    """The channel cannot go on in order and without loss; ``reason`` (one
    of :data:`REASONS`) is for the close reason the node reports."""

    def __init__(self, reason: str, detail: str) -> None:
        if reason not in REASONS:
            raise ValueError(f"unknown sequencing error {reason!r}")
        super().__init__(f"{reason}: {detail}")
        self.reason = reason



class Sender:
    """The sending end of a channel: numbers its DATA frames and keeps each
    one until the far end acknowledges it, to send again after a route change
    or when no ack comes in time.

    Payloads are kept as given, not copied: a memoryview must stay unchanged
    until acknowledged.
    """

    def __init__(self, max_bytes: int, max_frames: int) -> None:
        if max_bytes < 1 or max_frames < 1:
            raise ValueError("need max_bytes >= 1 and max_frames >= 1")
        self.max_bytes = max_bytes
        self.max_frames = max_frames
        self.next_seq = 0
        #: the lowest sequence not acknowledged: frames acked..next_seq-1 are held
        self.acked = 0
        self.bytes = 0
        self._held: deque[Payload] = deque()
        #: beside each held frame: its flow, ``after``, the messages in it
        #: if its loss may be accepted (0: it may not), and whether it is
        #: a skip now
        self._meta: deque[list[int]] = deque()
        #: each flow's last frame, while unacknowledged (pruned in sequence
        #: order through ``_lasts``)
        self._last: dict[int, int] = {}
        self._lasts: deque[tuple[int, int]] = deque()
        self._barrier = -1
        #: messages lost per flow, learnt from acks, not yet told
        self._lost: dict[int, int] = {}

    @property
    def frames(self) -> int:
        return len(self._held)

    @property
    def full(self) -> bool:
        """Half of either limit is used: the node pauses the channel now, and
        the other half is room for what the BEAM had already handed over when
        the pause takes effect. Never true when nothing is held, so a paused
        channel always has an ack on its way to resume it."""
        return 2 * self.bytes >= self.max_bytes or 2 * len(self._held) >= self.max_frames

    def push(self, payload: Payload) -> int:
        """The sequence number of a barrier frame about to be sent, kept
        until acknowledged (see :meth:`push_frame`)."""
        return self.push_frame(payload, BARRIER_FLOW)[0]

    def push_frame(self, payload: Payload, flow: int, lossy: int = 0) -> tuple[int, int]:
        """The sequence number of a frame of ``flow`` about to be sent, and
        what it waits for at the receiver (``after``); kept until
        acknowledged. ``lossy``: the messages in it, if its loss may be
        accepted. A frame larger than ``max_bytes`` is taken when nothing
        else is held, so that any frame can go, if alone."""
        n = size(payload)
        held = len(self._held)
        if held and (self.bytes + n > self.max_bytes or held >= self.max_frames):
            raise SequenceError("retransmit_overflow",
                                f"{held} frames of {self.bytes} bytes unacknowledged, {n} more")
        seq = self.next_seq
        if flow <= TICK_FLOW:
            after = AFTER_ALL
            self._barrier = seq
            lossy = 0
        else:
            last = max(self._last.get(flow, -1), self._barrier)
            after = last if last >= self.acked else AFTER_NONE
            self._last[flow] = seq
            self._lasts.append((seq, flow))
        self._held.append(payload)
        self._meta.append([flow, after, lossy, 0])
        self.bytes += n
        self.next_seq = seq + 1
        return seq, after

    def ack(self, upto: int, taken: Record | None = None) -> int:
        """The far end has every frame below ``upto``: drop them, and say how
        many bytes that freed; ``taken``, the ack's record of the skips the
        far end took, says which skips among them lost their messages
        (:meth:`take_lost`). Acks are cumulative, so one that is late,
        repeated or overtaken (``upto <= acked``) says nothing new: ignored."""
        if upto > self.next_seq:
            raise SequenceError("bad_ack", f"ack up to {upto}, but only {self.next_seq} sent")
        freed = 0
        held, meta = self._held, self._meta
        while self.acked < upto:
            freed += size(held.popleft())
            flow, _after, messages, skip = meta.popleft()
            if skip and was_taken(self.acked, taken):
                self._lost[flow] = self._lost.get(flow, 0) + messages
            self.acked += 1
        self.bytes -= freed
        lasts, last = self._lasts, self._last
        while lasts and lasts[0][0] < upto:
            seq, flow = lasts.popleft()
            if last.get(flow) == seq:
                del last[flow]
        return freed

    def take_lost(self) -> dict[int, int]:
        """The messages each flow lost, learnt since the last call."""
        lost, self._lost = self._lost, {}
        return lost

    def unacked(self) -> list[tuple[int, Payload]]:
        """What is held: (sequence, payload), in order; a skip's payload is
        empty."""
        return list(enumerate(self._held, self.acked))

    def resends(self) -> list[tuple[int, Payload, int, bool]]:
        """What to send again, after a route change or when the resend timer
        fires: (sequence, payload, after, whether it is a skip), in order."""
        return [(seq, payload, meta[1], bool(meta[3]))
                for seq, (payload, meta) in enumerate(zip(self._held, self._meta, strict=True),
                                                        self.acked)]

    def skip(self, missing: list[tuple[int, int]]) -> dict[int, int] | None:
        """The far end misses the frames in the ``missing`` ranges ([start,
        end)) for long: if every one held is lossy, turn them into skips
        (held, empty, to send again until acknowledged) and say how many
        messages of each flow they held (lost, unless a frame arrives
        before its skip: :meth:`take_lost` says); None, and nothing
        changed, if any is not lossy."""
        # the ranges clipped to what is held and merged: each frame looked
        # at once, however the report overlaps itself
        acked, metas = self.acked, list(self._meta)
        spans = sorted((max(start, acked), min(end, self.next_seq)) for start, end in missing)
        picked: list[int] = []
        reach = acked
        for start, end in spans:
            for seq in range(max(start, reach), end):
                meta = metas[seq - acked]
                if meta[3]:
                    continue  # a skip already: a report that crossed it
                if not meta[2]:
                    return None
                picked.append(seq)
            reach = max(reach, end)
        lost: dict[int, int] = {}
        for seq in picked:
            i = seq - acked
            meta = metas[i]
            lost[meta[0]] = lost.get(meta[0], 0) + meta[2]
            meta[3] = 1
            self.bytes -= size(self._held[i])
            self._held[i] = b""
        return lost


class Receiver:
    """The receiving end of a channel: delivers each frame once what it
    comes after is delivered (so in sequence order within each flow),
    holds the frames that come before that, drops copies, reports gaps and
    says when to acknowledge.

    Gaps: while frames past the awaited one (``expected``) have arrived,
    held or delivered by their flow, it is missing; it has been missing
    since the oldest of them arrived (the first to overtake it). Once that
    is ``report_after`` ago :meth:`take_gap` says what is missing, for the
    sender to give up what it may, and :meth:`check` fails the channel once
    it is ``gap_timeout`` ago. So, with both run at :meth:`deadline`, no
    frame waits in the buffer longer than ``gap_timeout``.

    Acks are cumulative (the value is :attr:`expected`) and due when
    ``ack_every`` frames or ``ack_bytes`` bytes were delivered since the
    last one (the sender keeps a small budget of bytes in flight, which
    only acks replenish); or ``ack_delay``
    after the first delivery since the last one; or at once when a copy
    arrives, since then the sender is sending again (a route change, or its
    resend timer fired: a frame or our last ack was lost, or the ack was
    slow) and should learn where we are. However many frames
    made it due, :meth:`take_ack` gives one ack, so the node calls it once
    per batch of input rather than per frame.
    """

    def __init__(self, max_bytes: int, max_frames: int, gap_timeout: float,
                 ack_every: int, ack_delay: float, ack_bytes: int = 1 << 62,
                 report_after: float | None = None) -> None:
        if max_bytes < 1 or max_frames < 1 or ack_every < 1:
            raise ValueError("need max_bytes, max_frames and ack_every >= 1")
        if gap_timeout <= 0 or ack_delay < 0:
            raise ValueError("need gap_timeout > 0 and ack_delay >= 0")
        self.max_bytes = max_bytes
        self.max_frames = max_frames
        self.gap_timeout = gap_timeout
        self.ack_every = ack_every
        self.ack_delay = ack_delay
        self.ack_bytes = ack_bytes
        self.report_after = report_after
        #: the next sequence to deliver; everything below it was delivered
        self.expected = 0
        #: one past the highest sequence received
        self.seen = 0
        self.delivered = 0
        self.duplicates = 0
        self.reordered = 0
        #: beyond ``expected``: frames delivered (_DONE) and frames held,
        #: waiting for the one they come after
        self._ahead: dict[int, _Held | None] = {}
        #: held frames by the frame they wait for (a barrier's: AFTER_ALL)
        self._waiting: dict[int, list[int]] = {}
        self._reported_at: float | None = None
        self._bytes = 0
        #: (sequence, arrival) of the frames held early, oldest first; may
        #: still name delivered ones, pruned from the front as they come up,
        #: and all at once past 2 * max_frames, which bounds it
        self._arrivals: deque[tuple[int, float]] = deque()
        self._acked = 0  # the value of the last ack taken
        self._unacked_bytes = 0  # delivered since the last ack taken
        self._ack_at: float | None = None  # when the next ack is due
        #: the skips that took a frame's place, for the sender (every ack)
        self.taken = TakenSkips(max_frames)

    @property
    def buffered_bytes(self) -> int:
        return self._bytes

    @property
    def buffered_frames(self) -> int:
        return len(self._ahead)

    @property
    def gap_opened(self) -> float | None:
        """When the awaited frame was first overtaken; None if it was not."""
        arrivals = self._arrivals
        while arrivals and arrivals[0][0] < self.expected:
            arrivals.popleft()
        return arrivals[0][1] if arrivals else None

    def receive(self, seq: int, payload: Payload, now: float, after: int = AFTER_ALL,
                skip: bool = False) -> list[Payload]:
        """The payloads deliverable now, in an order that keeps every
        flow's: this frame's, if what it comes ``after`` was delivered, and
        those of the held frames that waited for it; none if it waits or is
        a copy. A ``skip`` delivers nothing itself."""
        if seq < self.expected or seq in self._ahead:
            self.duplicates += 1
            self._due(now)
            return []
        if seq >= self.seen:
            self.seen = seq + 1
        if skip:
            self.taken.took(seq)
        if seq > self.expected:
            if after == AFTER_ALL or (after >= self.expected
                                      and self._ahead.get(after, _MISSING) is not None):
                self._hold(seq, payload, after, skip, now)
                return []
            self._arrived(seq, now)
        out: list[Payload] = []
        got = self._deliver(seq, payload, skip, out)
        self.delivered += len(out)
        self._unacked_bytes += got
        if self._ack_at is None:
            self._ack_at = now + self.ack_delay
        if self.expected - self._acked >= self.ack_every or self._unacked_bytes >= self.ack_bytes:
            self._due(now)
        return out

    def _deliver(self, seq: int, payload: Payload, skip: bool, out: list[Payload]) -> int:
        """Deliver ``seq`` and every held frame it frees, each after what
        it waits for; the bytes delivered."""
        got = 0
        ahead, waiting = self._ahead, self._waiting
        ready: list[tuple[int, Payload, bool]] = [(seq, payload, skip)]
        while ready:
            seq, payload, skip = ready.pop()
            if not skip:
                out.append(payload)
                got += size(payload)
            if seq == self.expected:
                nxt = seq + 1
                while nxt in ahead:
                    if ahead[nxt] is not None:
                        # held, and everything before it delivered: free to go
                        held = self._take(nxt)
                        ready.append((nxt, held.payload, held.skip))
                        break
                    del ahead[nxt]
                    nxt += 1
                self.expected = nxt
            else:
                ahead[seq] = None
            for later in waiting.pop(seq, ()):
                if ahead.get(later) is not None:
                    held = self._take(later)
                    ready.append((later, held.payload, held.skip))
        return got

    def _take(self, seq: int) -> _Held:
        """A held frame out of the buffer, to deliver."""
        held = self._ahead.pop(seq)
        assert held is not None
        self._bytes -= size(held.payload)
        others = self._waiting.get(held.after)
        if others is not None and seq in others:
            others.remove(seq)
            if not others:
                del self._waiting[held.after]
        return held

    def check(self, now: float) -> None:
        """Fail the channel if a gap has been open for ``gap_timeout``."""
        opened = self.gap_opened
        if opened is not None and now >= opened + self.gap_timeout:
            raise SequenceError("gap_timeout",
                                f"frame {self.expected} missing for {now - opened:.3f}s")

    def take_gap(self, now: float) -> list[tuple[int, int]] | None:
        """The frames missing, as ranges [start, end), once a gap has been
        open ``report_after`` (and again every ``report_after`` while it
        stays): for the sender to give up what it may (see
        :meth:`Sender.skip`). It counts as sent."""
        due = self._report_due()
        if due is None or now < due:
            return None
        self._reported_at = now
        ranges: list[tuple[int, int]] = []
        start = self.expected
        for seq in sorted(self._ahead):
            if seq > start:
                ranges.append((start, seq))
                if len(ranges) == MAX_GAP_RANGES:
                    return ranges
            start = seq + 1
        if start < self.seen:
            ranges.append((start, self.seen))
        return ranges

    def _report_due(self) -> float | None:
        opened = self.gap_opened
        if self.report_after is None or opened is None:
            return None
        due = opened + self.report_after
        if self._reported_at is not None and self._reported_at >= opened:
            due = max(due, self._reported_at + self.report_after)
        return due

    def take_ack(self, now: float) -> int | None:
        """The ack to send now, if one is due; it counts as sent."""
        if self._ack_at is None or now < self._ack_at:
            return None
        self._ack_at = None
        self._acked = self.expected
        self._unacked_bytes = 0
        self.taken.forget_below(self.expected)
        return self.expected

    def deadline(self) -> float | None:
        """The earliest time :meth:`check`, :meth:`take_gap` or
        :meth:`take_ack` may act."""
        opened = self.gap_opened
        times = [t for t in (self._ack_at, None if opened is None else opened + self.gap_timeout,
                             self._report_due())
                 if t is not None]
        return min(times, default=None)

    def _hold(self, seq: int, payload: Payload, after: int, skip: bool, now: float) -> None:
        n = size(payload)
        if seq - self.expected > MAX_AHEAD:
            raise SequenceError("reorder_overflow",
                                f"frame {seq} while awaiting {self.expected}")
        if len(self._ahead) >= self.max_frames or self._bytes + n > self.max_bytes:
            raise SequenceError("reorder_overflow",
                                f"{len(self._ahead)} frames of {self._bytes} bytes held early, "
                                f"{n} more")
        self._ahead[seq] = _Held(payload, after, skip)
        self._bytes += n
        self.reordered += 1
        if after != AFTER_ALL:
            self._waiting.setdefault(after, []).append(seq)
        self._arrived(seq, now)

    def _arrived(self, seq: int, now: float) -> None:
        """A frame overtook the awaited one (held, or delivered by its flow)."""
        self._arrivals.append((seq, now))
        if len(self._arrivals) > 2 * self.max_frames:
            self._arrivals = deque(a for a in self._arrivals if a[0] in self._ahead)

    def _due(self, now: float) -> None:
        self._ack_at = now if self._ack_at is None else min(self._ack_at, now)


@dataclass(slots=True)
class _Held:
    """A frame that came before the one it waits for."""

    payload: Payload
    after: int
    skip: bool


#: not in the buffer (distinct from None: delivered)
_MISSING = object()
