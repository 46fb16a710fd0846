"""Framing of the stdio pipe to the BEAM: ``{packet, 4}`` and the op byte.

Reading side: :class:`PortDecoder` takes the byte stream in whatever pieces
the pipe gives and returns whole packets. Writing side: the ``encode_*``
functions return the pieces of one packet, ready for ``writev``: a data
packet's body is never copied to prepend its header.
"""

from __future__ import annotations

from typing import Any

from pydist.core import etf
from pydist.core.wire import (
    DATA_HEADER,
    FRAME_LEN,
    OP_CTRL,
    OP_DATA,
    PORT_DATA_PREFIX,
    PORT_LEN,
)


class PortError(ValueError):
    """The BEAM side wrote something that is not a port packet we know."""


class PortDecoder:
    """Split the ``{packet, 4}`` byte stream from the BEAM into packets.

    Packets that lie whole inside one piece of input are returned as
    zero-copy views of it; only a packet cut by a read boundary is
    collected in a buffer, and joined once, when its last byte arrives.
    """

    def __init__(self, max_packet: int) -> None:
        self._buf = bytearray()
        self._need = 0  # bytes the buffer must hold before it is worth parsing
        self._max = max_packet

    def feed(self, data: bytes) -> list[memoryview]:
        if self._buf:
            self._buf += data
            if len(self._buf) < self._need:
                return []
            data = bytes(self._buf)
            self._buf.clear()
        view = memoryview(data)
        out: list[memoryview] = []
        pos = 0
        end = len(data)
        while end - pos >= 4:
            (size,) = PORT_LEN.unpack_from(data, pos)
            if size > self._max:
                raise PortError(f"port packet of {size} bytes exceeds max_frame")
            if end - pos - 4 < size:
                self._need = 4 + size
                break
            out.append(view[pos + 4 : pos + 4 + size])
            pos += 4 + size
        else:
            self._need = 4
        if pos < end:
            self._buf += view[pos:]
        return out

    @property
    def buffered(self) -> int:
        return len(self._buf)


def encode_ctrl(term: Any) -> bytes:
    body = etf.encode(term)
    return PORT_LEN.pack(len(body) + 1) + bytes((OP_CTRL,)) + body


def encode_data_prefix(chan: int, body_len: int) -> bytes:
    """The 9 bytes that precede a run of frames of ``chan`` on the pipe."""
    return PORT_DATA_PREFIX.pack(body_len + 5, OP_DATA, chan)


def decode_packet(packet: bytes | memoryview) -> tuple[int, int, memoryview] | tuple[int, Any]:
    """``(OP_DATA, chan, frames)`` or ``(OP_CTRL, term)``."""
    if not packet:
        raise PortError("empty port packet")
    op = packet[0]
    if op == OP_DATA:
        if len(packet) < DATA_HEADER.size:
            raise PortError("truncated data packet")
        _, chan = DATA_HEADER.unpack_from(packet)
        return OP_DATA, chan, memoryview(packet)[DATA_HEADER.size :]
    if op == OP_CTRL:
        return OP_CTRL, etf.decode(bytes(packet[1:]))
    raise PortError(f"unknown port op {op}")


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
