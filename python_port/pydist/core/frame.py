"""The frame header between py_dist nodes.

A ZeroMQ message between nodes is two parts: this fixed header, and a
payload whose meaning depends on the kind (for DATA, a run of
length-prefixed distribution packets exactly as the BEAM wrote them, so a
batch crosses the network without being split or joined).
"""

from __future__ import annotations

from typing import NamedTuple

from pydist.core.wire import DEFAULT_HOPS, HEADER, HEADER_SIZE, VERSION, Kind

_KINDS = frozenset(int(k) for k in Kind)


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


def decode(data: bytes | memoryview) -> Header:
    if len(data) != HEADER_SIZE:
        raise FrameError(f"header of {len(data)} bytes, expected {HEADER_SIZE}")
    (version, kind, flags, hops, lane, epoch, src, dst, seq,
     chunk_index, chunk_count) = HEADER.unpack(data)
    if version != VERSION:
        raise FrameError(f"frame version {version}, expected {VERSION}")
    if kind not in _KINDS:
        raise FrameError(f"unknown frame kind {kind}")
    if chunk_count == 0 or chunk_index >= chunk_count:
        raise FrameError(f"chunk {chunk_index} of {chunk_count}")
    return Header(kind, src, dst, epoch, seq, flags, hops, lane,
                  chunk_index, chunk_count, version)
