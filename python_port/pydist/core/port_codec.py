"""Framing of the stdio pipe to the BEAM: ``{packet, 4}`` and the op byte.

Reading side: :class:`PortDecoder` takes the byte stream in whatever pieces
the pipe gives and returns whole packets. Writing side: the ``encode_*``
functions return the pieces of one packet, ready for ``writev``: a data
packet's body is never copied to prepend its header.
"""

from __future__ import annotations

import struct
from typing import Any

from pydist.core import etf
from pydist.core.wire import (
    DATA_HEADER,
    FLOW_GROUP,
    FRAME_LEN,
    LANE_REQUEST,
    OP_CTRL,
    OP_DATA,
    OP_DELIVER,
    OP_FLOWS,
    OP_LANE,
    PORT_DATA_PREFIX,
    PORT_LEN,
)


class PortError(ValueError):
    """The BEAM side wrote something that is not a port packet we know."""


class PortDecoder:
    """Split the ``{packet, 4}`` byte stream from the BEAM into packets.

    The reader asks :meth:`buffer` where to put the next bytes, reads into
    it, and hands the count to :meth:`commit`. Small packets are read into
    a reused scratch area and copied out once; a large packet gets a buffer
    of its own, filled by the reads directly and handed on without any copy.
    Per-byte copies are what limit large-message throughput in Python.
    """

    def __init__(self, max_packet: int, scratch: int = 1 << 20,
                 big: int = 64 * 1024) -> None:
        self._max = max_packet
        self._scratch = bytearray(scratch)
        self._view = memoryview(self._scratch)
        self._start = 0  # first unparsed byte in scratch
        self._end = 0  # end of the bytes read into scratch
        self._big_min = big
        self._big: bytearray | None = None
        self._big_filled = 0

    def buffer(self) -> memoryview:
        """Where the next read should go (never empty)."""
        if self._big is not None:
            return memoryview(self._big)[self._big_filled :]
        if self._start == self._end:
            self._start = self._end = 0
        elif len(self._scratch) - self._end < self._big_min:
            pending = self._end - self._start
            self._scratch[:pending] = self._view[self._start : self._end]
            self._start, self._end = 0, pending
        return self._view[self._end :]

    def commit(self, count: int) -> list[memoryview]:
        """``count`` bytes were read into :meth:`buffer`; return whole packets."""
        if self._big is not None:
            self._big_filled += count
            if self._big_filled < len(self._big):
                return []
            done = memoryview(self._big)
            self._big = None
            return [done, *self._parse()]
        self._end += count
        return self._parse()

    def _parse(self) -> list[memoryview]:
        out: list[memoryview] = []
        view, start, end = self._view, self._start, self._end
        while end - start >= 4:
            (size,) = PORT_LEN.unpack_from(view, start)
            if size > self._max:
                raise PortError(f"port packet of {size} bytes exceeds max_frame")
            if end - start - 4 >= size:
                out.append(memoryview(bytes(view[start + 4 : start + 4 + size])))
                start += 4 + size
                continue
            if size >= self._big_min or 4 + size > len(self._scratch):
                have = end - start - 4
                self._big = bytearray(size)
                self._big[:have] = view[start + 4 : end]
                self._big_filled = have
                start = end
            break
        self._start, self._end = start, end
        return out

    def feed(self, data: bytes | memoryview) -> list[memoryview]:
        """Copying convenience over :meth:`buffer` and :meth:`commit`."""
        out: list[memoryview] = []
        data = memoryview(data)
        while data:
            target = self.buffer()
            n = min(len(target), len(data))
            target[:n] = data[:n]
            data = data[n:]
            out.extend(self.commit(n))
        return out

    @property
    def buffered(self) -> int:
        return self._end - self._start + self._big_filled * (self._big is not None)


def encode_ctrl(term: Any) -> bytes:
    body = etf.encode(term)
    return PORT_LEN.pack(len(body) + 1) + bytes((OP_CTRL,)) + body


def encode_data_prefix(chan: int, body_len: int) -> bytes:
    """The 9 bytes that precede a run of frames of ``chan`` on the pipe."""
    return PORT_DATA_PREFIX.pack(body_len + 5, OP_DATA, chan)


Groups = list[tuple[int, memoryview]]


def decode_packet(packet: bytes | memoryview) -> tuple[Any, ...]:
    """``(OP_DATA, chan, frames)``, ``(OP_FLOWS, chan, [(flow, frames), ...])``
    or ``(OP_CTRL, term)``."""
    if not packet:
        raise PortError("empty port packet")
    op = packet[0]
    if op == OP_FLOWS:
        if len(packet) < DATA_HEADER.size:
            raise PortError("truncated flows packet")
        _, chan = DATA_HEADER.unpack_from(packet)
        return OP_FLOWS, chan, split_groups(memoryview(packet)[DATA_HEADER.size :])
    if op == OP_LANE:
        return (OP_LANE, *decode_lane(memoryview(packet)))
    if op == OP_DATA:
        if len(packet) < DATA_HEADER.size:
            raise PortError("truncated data packet")
        _, chan = DATA_HEADER.unpack_from(packet)
        return OP_DATA, chan, memoryview(packet)[DATA_HEADER.size :]
    if op == OP_CTRL:
        return OP_CTRL, etf.decode(bytes(packet[1:]))
    raise PortError(f"unknown port op {op}")


def decode_lane(packet: memoryview) -> tuple[int, int, bytes, bytes, memoryview]:
    """A lane request: ``(lane, deadline_ms, node, notify, payload)``."""
    head = LANE_REQUEST.size
    if len(packet) < head:
        raise PortError("truncated lane packet")
    _, lane, deadline, node_len = LANE_REQUEST.unpack_from(packet)
    end = head + node_len
    if len(packet) < end + 2:
        raise PortError("truncated lane packet")
    (notify_len,) = struct.unpack_from("!H", packet, end)
    start = end + 2 + notify_len
    if len(packet) < start:
        raise PortError("truncated lane packet")
    return lane, deadline, bytes(packet[head:end]), bytes(packet[end + 2 : start]), packet[start:]


def encode_lane(lane: int, deadline: int, node: bytes, notify: bytes, payload: bytes) -> bytes:
    """A lane request as py_dist:send/3 writes it (tests use this)."""
    return (LANE_REQUEST.pack(OP_LANE, lane, deadline, len(node)) + node
            + struct.pack("!H", len(notify)) + notify + payload)


def encode_deliver(payload: bytes | memoryview) -> list[bytes | memoryview]:
    """The pieces of a packet that hands the BEAM a lane message to deliver."""
    return [PORT_LEN.pack(len(payload) + 1) + bytes((OP_DELIVER,)), payload]


def split_groups(body: memoryview) -> Groups:
    """The groups of a flows packet, as slices of it: ``(flow, frames)``."""
    groups: Groups = []
    pos, end, head = 0, len(body), FLOW_GROUP.size
    while pos < end:
        if end - pos < head:
            raise PortError("truncated flow group header")
        flow, length = FLOW_GROUP.unpack_from(body, pos)
        pos += head
        if end - pos < length:
            raise PortError(f"flow group of {length} bytes, {end - pos} left")
        groups.append((flow, body[pos : pos + length]))
        pos += length
    if not groups:
        raise PortError("flows packet without a group")
    return groups


def encode_groups(chan: int, groups: list[tuple[int, bytes]]) -> bytes:
    """A flows packet as the controller writes it (tests use this)."""
    body = b"".join(FLOW_GROUP.pack(flow, len(frames)) + frames for flow, frames in groups)
    return DATA_HEADER.pack(OP_FLOWS, chan) + body


def encode_frames(packets: list[bytes]) -> bytes:
    """Length-prefix distribution packets as the Erlang side does."""
    return b"".join(FRAME_LEN.pack(len(p)) + p for p in packets)


def split_frames(frames: bytes | memoryview) -> list[bytes]:
    """Inverse of :func:`encode_frames`; raises :class:`PortError` if truncated."""
    out = []
    pos = 0
    view = memoryview(frames)
    while pos < len(view):
        if len(view) - pos < 4:
            raise PortError("truncated frame length")
        (size,) = FRAME_LEN.unpack_from(view, pos)
        if len(view) - pos - 4 < size:
            raise PortError("truncated frame")
        out.append(bytes(view[pos + 4 : pos + 4 + size]))
        pos += 4 + size
    return out
