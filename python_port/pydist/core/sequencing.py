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

from pydist.core.frame import Payload, size

#: the ``reason`` of every :class:`SequenceError`
REASONS = ("retransmit_overflow", "reorder_overflow", "gap_timeout", "bad_ack")
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
        """The sequence number of a frame about to be sent, kept until
        acknowledged. A frame larger than ``max_bytes`` is taken when nothing
        else is held, so that any frame can go, if alone."""
        n = size(payload)
        held = len(self._held)
        if held and (self.bytes + n > self.max_bytes or held >= self.max_frames):
            raise SequenceError("retransmit_overflow",
                                f"{held} frames of {self.bytes} bytes unacknowledged, {n} more")
        self._held.append(payload)
        self.bytes += n
        self.next_seq += 1
        return self.next_seq - 1

    def ack(self, upto: int) -> int:
        """The far end has every frame below ``upto``: drop them, and say how
        many bytes that freed. Acks are cumulative, so one that is late,
        repeated or overtaken (``upto <= acked``) says nothing new: ignored."""
        if upto > self.next_seq:
            raise SequenceError("bad_ack", f"ack up to {upto}, but only {self.next_seq} sent")
        freed = 0
        while self.acked < upto:
            freed += size(self._held.popleft())
            self.acked += 1
        self.bytes -= freed
        return freed

    def unacked(self) -> list[tuple[int, Payload]]:
        """What to send again, after a route change or when the resend timer
        fires: (sequence, payload), in order."""
        return list(enumerate(self._held, self.acked))


class Receiver:
    """The receiving end of a channel: delivers in sequence order, holds the
    frames that come early, drops copies, and says when to acknowledge.

    Gaps: while frames are held early, the awaited one is missing; it has
    been missing since the oldest of them arrived (the first to overtake
    it), and :meth:`check` fails the channel once that is ``gap_timeout``
    ago. So, with :meth:`check` run at :meth:`deadline`, no frame waits in
    the buffer longer than ``gap_timeout``.

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
                 ack_every: int, ack_delay: float, ack_bytes: int = 1 << 62) -> None:
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
        #: the next sequence to deliver; everything below it was delivered
        self.expected = 0
        self.delivered = 0
        self.duplicates = 0
        self.reordered = 0
        self._ahead: dict[int, Payload] = {}
        self._bytes = 0
        #: (sequence, arrival) of the frames held early, oldest first; may
        #: still name delivered ones, pruned from the front as they come up,
        #: and all at once past 2 * max_frames, which bounds it
        self._arrivals: deque[tuple[int, float]] = deque()
        self._acked = 0  # the value of the last ack taken
        self._unacked_bytes = 0  # delivered since the last ack taken
        self._ack_at: float | None = None  # when the next ack is due

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

    def receive(self, seq: int, payload: Payload, now: float) -> list[Payload]:
        """The payloads deliverable now, in order: this frame's and those of
        the held frames it unblocks; none if it is early or a copy."""
        if seq < self.expected or seq in self._ahead:
            self.duplicates += 1
            self._due(now)
            return []
        if seq > self.expected:
            self._hold(seq, payload, now)
            return []
        out = [payload]
        got = size(payload)
        self.expected += 1
        while self.expected in self._ahead:
            held = self._ahead.pop(self.expected)
            n = size(held)
            self._bytes -= n
            got += n
            out.append(held)
            self.expected += 1
        self.delivered += len(out)
        self._unacked_bytes += got
        if self._ack_at is None:
            self._ack_at = now + self.ack_delay
        if self.expected - self._acked >= self.ack_every or self._unacked_bytes >= self.ack_bytes:
            self._due(now)
        return out

    def check(self, now: float) -> None:
        """Fail the channel if a gap has been open for ``gap_timeout``."""
        opened = self.gap_opened
        if opened is not None and now >= opened + self.gap_timeout:
            raise SequenceError("gap_timeout",
                                f"frame {self.expected} missing for {now - opened:.3f}s")

    def take_ack(self, now: float) -> int | None:
        """The ack to send now, if one is due; it counts as sent."""
        if self._ack_at is None or now < self._ack_at:
            return None
        self._ack_at = None
        self._acked = self.expected
        self._unacked_bytes = 0
        return self.expected

    def deadline(self) -> float | None:
        """The earliest time :meth:`check` or :meth:`take_ack` may act."""
        opened = self.gap_opened
        times = [t for t in (self._ack_at, None if opened is None else opened + self.gap_timeout)
                 if t is not None]
        return min(times, default=None)

    def _hold(self, seq: int, payload: Payload, now: float) -> None:
        n = size(payload)
        if seq - self.expected > MAX_AHEAD:
            raise SequenceError("reorder_overflow",
                                f"frame {seq} while awaiting {self.expected}")
        if len(self._ahead) >= self.max_frames or self._bytes + n > self.max_bytes:
            raise SequenceError("reorder_overflow",
                                f"{len(self._ahead)} frames of {self._bytes} bytes held early, "
                                f"{n} more")
        self._ahead[seq] = payload
        self._bytes += n
        self.reordered += 1
        self._arrivals.append((seq, now))
        if len(self._arrivals) > 2 * self.max_frames:
            self._arrivals = deque(a for a in self._arrivals if a[0] in self._ahead)

    def _due(self, now: float) -> None:
        self._ack_at = now if self._ack_at is None else min(self._ack_at, now)
