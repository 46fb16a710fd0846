"""Which skips took a message's place: the count a process is told is exact.

A sender gives up a lossy frame (``Sender.skip``) when the receiver reports
it missing; but the frame may still be on its way (a resend, a copy on the
old route), and arrive before its skip. Then the message was delivered, and
the skip that follows is a copy, dropped. So the sender does not tell a
process of a loss when it sends the skip, but when the frame is
acknowledged, and only if the receiver says it took the skip: every ack
carries the receiver's record of the skips it took (:class:`TakenSkips`),
and :func:`was_taken` reads it.

The record is exact from a *floor* up: every skip taken at a sequence at
or above it is listed. It forgets what the sender can no longer ask
about: a frame a whole window (``max_frames``) below the receiver's next
expected one has been acknowledged by the sender already (it cannot send
further ahead than its window), so ranges that far back go without the
floor moving. Only past ``MAX_RANGES`` ranges within a window does the
oldest go and the floor rise; a skip below the floor then counts as taken
(told one too many, never one too few). An ack without a record says no
skip was taken.
"""

from __future__ import annotations

import bisect
import struct

#: ranges of skips taken an ack carries at most
MAX_RANGES = 64
_RANGE = struct.Struct("!QQ")
_FLOOR = struct.Struct("!Q")


class RecordError(ValueError):
    pass


class TakenSkips:
    """The receiver's record of the skips it took, as sorted, disjoint
    ranges [start, end)."""

    def __init__(self, window: int) -> None:
        self.window = window
        self.floor = 0
        self.starts: list[int] = []
        self.ends: list[int] = []

    def __bool__(self) -> bool:
        return bool(self.starts) or self.floor > 0

    def took(self, seq: int) -> None:
        starts, ends = self.starts, self.ends
        if seq < self.floor:
            return
        i = bisect.bisect_right(starts, seq)
        if i and ends[i - 1] > seq:
            return  # already recorded
        if i and ends[i - 1] == seq:
            ends[i - 1] = seq + 1
            if i < len(starts) and starts[i] == seq + 1:  # joins the next
                ends[i - 1] = ends.pop(i)
                del starts[i]
        elif i < len(starts) and starts[i] == seq + 1:
            starts[i] = seq
        else:
            starts.insert(i, seq)
            ends.insert(i, seq + 1)
        if len(starts) > MAX_RANGES:
            del starts[0]
            self.floor = max(self.floor, ends.pop(0))

    def forget_below(self, expected: int) -> None:
        """Drop what the sender cannot ask about any more (see the module)."""
        horizon = expected - self.window
        starts, ends = self.starts, self.ends
        while ends and ends[0] <= horizon:
            del starts[0], ends[0]
        if self.floor <= horizon:
            self.floor = 0  # nothing below it can be asked about either

    def encode(self) -> bytes:
        return _FLOOR.pack(self.floor) + b"".join(
            _RANGE.pack(s, e) for s, e in zip(self.starts, self.ends, strict=True))


#: what an ack says of the skips taken: (floor, [(start, end), ...])
Record = tuple[int, list[tuple[int, int]]]


def decode(data: bytes | memoryview) -> Record:
    if len(data) < _FLOOR.size or (len(data) - _FLOOR.size) % _RANGE.size \
            or len(data) > _FLOOR.size + MAX_RANGES * _RANGE.size:
        raise RecordError(f"a record of skips taken of {len(data)} bytes")
    (floor,) = _FLOOR.unpack_from(data)
    ranges = [_RANGE.unpack_from(data, i) for i in range(_FLOOR.size, len(data), _RANGE.size)]
    if any(s >= e for s, e in ranges):
        raise RecordError("an empty range of skips taken")
    return floor, ranges


def was_taken(seq: int, record: Record | None) -> bool:
    """Whether the receiver took the skip at ``seq`` (so its messages were
    lost), by the record of an ack that acknowledged it."""
    if record is None:
        return False
    floor, ranges = record
    return seq < floor or any(s <= seq < e for s, e in ranges)
