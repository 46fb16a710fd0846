"""The frame between py_dist nodes: a fixed header and a payload.

The payload's meaning depends on the kind (for DATA, a run of
length-prefixed distribution packets exactly as the BEAM wrote them, so a
batch crosses the network without being split or joined). A ZeroMQ message
carries one frame, as one part (header and payload joined: one send and
one receive per message, cheaper for small payloads) or as two parts
(header, then the payload untouched, so a large one goes zero-copy).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from pydist.core.wire import DEFAULT_HOPS, HEADER, HEADER_SIZE, VERSION, Kind

#: payloads at least this big travel as a second part, never copied
JOIN_MAX = 64 * 1024

_KINDS = frozenset(int(k) for k in Kind)

#: a payload as the core holds it: bytes, or a view of a buffer not copied
Payload = bytes | memoryview


def size(payload: Payload) -> int:
    """Bytes held: a memoryview's ``len`` counts items, not bytes."""
    return payload.nbytes if isinstance(payload, memoryview) else len(payload)


class FrameError(ValueError):
    """Bytes from the network that are not a frame we accept."""


class Header(NamedTuple):
    kind: int
    src: int
    dst: int
    epoch: int = 0
    seq: int = 0
    flags: int = 0
    hops: int = DEFAULT_HOPS
    lane: int = 0
    chunk_index: int = 0
    chunk_count: int = 1
    version: int = VERSION

    def encode(self) -> bytes:
        return HEADER.pack(
            self.version, self.kind, self.flags, self.hops, self.lane,
            self.epoch, self.src, self.dst, self.seq,
            self.chunk_index, self.chunk_count,
        )


def encode(kind: int, src: int, dst: int, epoch: int = 0, seq: int = 0,
           flags: int = 0, hops: int = DEFAULT_HOPS) -> bytes:
    """Fast path for the header of a frame that is not chunked."""
    return HEADER.pack(VERSION, kind, flags, hops, 0, epoch, src, dst, seq, 0, 1)


_LANE = int(Kind.LANE)


def decode(data: bytes | memoryview) -> Header:
    if len(data) != HEADER_SIZE:
        raise FrameError(f"header of {len(data)} bytes, expected {HEADER_SIZE}")
    (version, kind, flags, hops, lane, epoch, src, dst, seq,
     chunk_index, chunk_count) = HEADER.unpack(data)
    if version != VERSION:
        raise FrameError(f"frame version {version}, expected {VERSION}")
    if kind not in _KINDS:
        raise FrameError(f"unknown frame kind {kind}")
    # only lane messages are chunked (a DATA frame's chunk index says what
    # it comes after: pydist.core.wire.FLAG_BARRIER)
    if kind == _LANE and (chunk_count == 0 or chunk_index >= chunk_count):
        raise FrameError(f"chunk {chunk_index} of {chunk_count}")
    return Header(kind, src, dst, epoch, seq, flags, hops, lane,
                  chunk_index, chunk_count, version)


def join(header: bytes, payload: Any) -> list[Any]:
    """The parts of one ZeroMQ message carrying ``header`` and ``payload``."""
    if len(payload) < JOIN_MAX:
        return [header + payload]
    return [header, payload]


def split(parts: list[Any]) -> tuple[memoryview, memoryview]:
    """Header and payload of a received message (parts are buffers)."""
    if len(parts) == 1:
        whole = memoryview(parts[0])
        if len(whole) < HEADER_SIZE:
            raise FrameError(f"message of {len(whole)} bytes, shorter than a header")
        return whole[:HEADER_SIZE], whole[HEADER_SIZE:]
    if len(parts) == 2:
        return memoryview(parts[0]), memoryview(parts[1])
    raise FrameError(f"message of {len(parts)} parts, expected 1 or 2")
