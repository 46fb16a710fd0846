"""Cutting large messages into chunks, and joining them again at the far end.

Only lane messages (:mod:`pydist.core.lanes`) are cut. DATA frames are
not: the BEAM already hands a large Erlang message over in fragments of
64 KiB, and the channel's outbox (:mod:`pydist.core.outbox`) sends those of
different processes in turn. A lane message comes whole, as one port
packet; it is cut at its source into chunks of ``chunk_bytes`` that travel,
and are forwarded, one by one, so that a node on the way passes each on as
it comes, never holding a whole message, and frames from its other links
can go between two chunks. Only the destination joins them.

:func:`cut` copies nothing: chunks are memoryview slices of the payload.

:class:`Reassembler` holds the chunks of the messages not yet whole. Chunks
come in any order (a route change reorders them), copies are ignored, and
what it holds is bounded by its constructor limits at every step: a chunk
that would take it past them is refused with :class:`ChunkError` and
nothing changes. What it accepts, besides the plain index and count checks,
is what :func:`cut` can produce, and no more:

- every chunk but the last of a message has the same size (the message's
  chunk size, at least 1), and the last is no larger and not empty; a
  message of one chunk may be empty;
- so a message is at least ``(count - 1) * chunk_size + 1`` bytes, and one
  that cannot fit in ``max_bytes`` by what has arrived of it is refused at
  once, rather than after filling the buffer (in particular ``count`` may
  not exceed ``max_bytes``). ``max_bytes`` is thus also the largest message
  re-joined.

The rule on sizes also bounds the bookkeeping: every chunk held is at least
one byte, so never more than ``max_bytes`` chunks are held, whatever counts
a broken peer declares.

A chunk that completes its message is never refused for room (the whole
message then leaves the buffer), so that a full buffer can always drain.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from pydist.core.frame import Payload, size

K = TypeVar("K", bound=Hashable)


class ChunkError(ValueError):
    """A chunk that is malformed, inconsistent with the others of its
    message, or that there is no room for."""



def cut(payload: Payload, chunk_size: int) -> list[memoryview]:
    """``payload`` in chunks of ``chunk_size`` bytes (the last one shorter),
    as slices of it, not copies; an empty payload is one empty chunk, so
    that every message is at least one frame."""
    if chunk_size < 1:
        raise ChunkError(f"chunk size {chunk_size}, need >= 1")
    view = memoryview(payload)
    if not view.c_contiguous:
        raise ChunkError("payload is not contiguous")
    view = view.cast("B")
    if not view:
        return [view]
    return [view[i:i + chunk_size] for i in range(0, len(view), chunk_size)]


class _Partial:
    """The chunks of one message so far, and what they say of its size."""

    __slots__ = ("chunk_size", "chunks", "count", "first", "held", "last")

    def __init__(self, count: int, first: float) -> None:
        self.count = count
        self.first = first  # when its first chunk arrived
        self.chunks: dict[int, Payload] = {}
        self.held = 0
        self.chunk_size: int | None = None  # the size of every chunk but the last
        self.last: int | None = None  # the size of the last chunk


class Reassembler(Generic[K]):
    """Joins the chunks of each message, named by a key (for lanes: source
    node, its lane epoch, lane and message id), and returns the message when
    its last missing chunk arrives.

    It knows only messages still in pieces: once one is returned it is
    forgotten, and a late copy of one of its chunks would start it afresh
    (to expire in time). Lanes need nothing more: no node sends a lane
    chunk twice, so no such copy comes. Times are those of a
    monotonic clock: partial messages are expired oldest first, in the
    order of their first chunks' arrival.
    """

    def __init__(self, max_bytes: int, max_messages: int, timeout: float) -> None:
        if max_bytes < 1 or max_messages < 1:
            raise ValueError("need max_bytes >= 1 and max_messages >= 1")
        if timeout <= 0:
            raise ValueError("need timeout > 0")
        self.max_bytes = max_bytes
        self.max_messages = max_messages
        self.timeout = timeout
        self.completed = 0
        self.duplicates = 0
        self.expired = 0
        self._held = 0
        #: in the order their first chunks arrived, which is oldest first
        self._partial: dict[K, _Partial] = {}

    @property
    def held_bytes(self) -> int:
        return self._held

    @property
    def partial_messages(self) -> int:
        return len(self._partial)

    def add(self, key: K, index: int, count: int, chunk: Payload, now: float) -> bytes | None:
        """Chunk ``index`` of ``count`` of message ``key``: the whole message
        if this was the last one missing, else None (also for a copy)."""
        n = size(chunk)
        if count < 1 or not 0 <= index < count:
            raise ChunkError(f"chunk {index} of {count}")
        if n == 0 and count > 1:
            raise ChunkError(f"empty chunk {index} of {count}")
        part = self._partial.get(key)
        if part is not None:
            if count != part.count:
                raise ChunkError(f"chunk {index} of {count}, but of {part.count} before")
            if index in part.chunks:
                self.duplicates += 1
                return None
        chunk_size, last = self._sizes(part, index, count, n)
        if part is not None and len(part.chunks) + 1 == count:
            return self._complete(key, part, index, chunk)
        if part is None and count == 1:
            self.completed += 1
            return bytes(chunk)
        self._check_room(part, n)
        if part is None:
            part = self._partial[key] = _Partial(count, now)
        part.chunks[index] = chunk
        part.held += n
        part.chunk_size, part.last = chunk_size, last
        self._held += n
        return None

    def expire(self, now: float) -> list[K]:
        """Drop the messages whose first chunk came ``timeout`` ago or more:
        the rest of them is not coming (a loss, or a sender that went away)."""
        gone: list[K] = []
        for key, part in self._partial.items():
            if now < part.first + self.timeout:
                break
            gone.append(key)
        self._drop(gone)
        self.expired += len(gone)
        return gone

    def drop_if(self, predicate: Callable[[K], bool]) -> list[K]:
        """Drop the partial messages whose key satisfies ``predicate`` (say,
        those of a channel that closed); not counted as expired."""
        gone = [key for key in self._partial if predicate(key)]
        self._drop(gone)
        return gone

    def deadline(self) -> float | None:
        """When :meth:`expire` has something to do next."""
        oldest = next(iter(self._partial.values()), None)
        return None if oldest is None else oldest.first + self.timeout

    def _sizes(self, part: _Partial | None, index: int, count: int,
               n: int) -> tuple[int | None, int | None]:
        """The message's chunk size and last chunk's size, with this chunk;
        refuses sizes :func:`cut` would not give, or that make the message
        larger than ``max_bytes``."""
        chunk_size = None if part is None else part.chunk_size
        last = None if part is None else part.last
        if index < count - 1:
            if chunk_size is not None and n != chunk_size:
                raise ChunkError(f"chunk {index} of {count} is {n} bytes, others {chunk_size}")
            chunk_size = n
        else:
            last = n
        if chunk_size is not None and last is not None and last > chunk_size:
            raise ChunkError(f"last chunk of {last} bytes, others {chunk_size}")
        # the least the message can be: every chunk at least as big as the
        # last (when known), and those before it exactly chunk_size
        least_chunk = chunk_size if chunk_size is not None else last or 1
        least = (count - 1) * least_chunk + (last if last is not None else 1)
        if least > self.max_bytes:
            raise ChunkError(f"a message of {count} chunks is at least {least} bytes, "
                             f"more than {self.max_bytes}")
        return chunk_size, last

    def _check_room(self, part: _Partial | None, n: int) -> None:
        if part is None and len(self._partial) >= self.max_messages:
            raise ChunkError(f"{len(self._partial)} messages in pieces already")
        if self._held + n > self.max_bytes:
            raise ChunkError(f"{self._held} bytes held in pieces, {n} more")

    def _complete(self, key: K, part: _Partial, index: int, chunk: Payload) -> bytes:
        del self._partial[key]
        self._held -= part.held
        part.chunks[index] = chunk
        self.completed += 1
        return b"".join(part.chunks[i] for i in range(part.count))

    def _drop(self, keys: list[K]) -> None:
        for key in keys:
            self._held -= self._partial.pop(key).held
