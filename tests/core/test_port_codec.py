"""The stdio pipe framing: ``{packet, 4}``, the op byte, and runs of frames."""

from __future__ import annotations

import itertools
import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pydist.core import etf, port_codec
from pydist.core.etf import Atom
from pydist.core.port_codec import PortDecoder, PortError
from pydist.core.wire import OP_CTRL, OP_DATA

FAST = settings(max_examples=200, deadline=None)


def _packet4(body: bytes) -> bytes:
    """What the BEAM writes for a ``{packet, 4}`` port: a 32-bit big-endian length."""
    return struct.pack(">I", len(body)) + body


def _cut(stream: bytes, cuts: list[int]) -> list[bytes]:
    bounds = [0, *sorted(cuts), len(stream)]
    return [stream[a:b] for a, b in itertools.pairwise(bounds)]


packets = st.lists(st.binary(max_size=300), max_size=20)


@FAST
@given(packets, st.data())
def test_any_split_of_the_stream_yields_the_packets(pkts: list[bytes], data: Any) -> None:
    stream = b"".join(_packet4(p) for p in pkts)
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=30))
    decoder = PortDecoder(max_packet=1000)
    views: list[memoryview] = []
    for piece in _cut(stream, cuts):
        views.extend(decoder.feed(piece))
    # views taken early must still hold their bytes after later feeds
    assert [bytes(v) for v in views] == pkts
    assert decoder.buffered == 0


@FAST
@given(packets)
def test_byte_by_byte(pkts: list[bytes]) -> None:
    stream = b"".join(_packet4(p) for p in pkts)
    decoder = PortDecoder(max_packet=1000)
    out: list[bytes] = []
    for i in range(len(stream)):
        out.extend(bytes(v) for v in decoder.feed(stream[i : i + 1]))
    assert out == pkts


def test_partial_packet_is_held_back() -> None:
    decoder = PortDecoder(max_packet=100)
    assert decoder.feed(_packet4(b"abc") + _packet4(b"defg")[:5]) == [b"abc"]
    assert decoder.buffered == 5
    assert decoder.feed(b"") == []
    assert [bytes(v) for v in decoder.feed(b"efg" + _packet4(b""))] == [b"defg", b""]
    assert decoder.buffered == 0


@FAST
@given(st.integers(0, 200), st.lists(st.integers(0, 400), max_size=8), st.data())
def test_packets_larger_than_max_packet_are_refused(
        limit: int, sizes: list[int], data: Any) -> None:
    pkts = [bytes(n) for n in sizes]
    stream = b"".join(_packet4(p) for p in pkts)
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=10))
    decoder = PortDecoder(max_packet=limit)
    out: list[bytes] = []
    if all(n <= limit for n in sizes):
        for piece in _cut(stream, cuts):
            out.extend(bytes(v) for v in decoder.feed(piece))
        assert out == pkts
    else:
        with pytest.raises(PortError):
            for piece in _cut(stream, cuts):
                out.extend(bytes(v) for v in decoder.feed(piece))
        # packets before the bad one come out in order (those sharing a feed
        # with it are lost with the exception: the stream is corrupt anyway)
        first_bad = next(i for i, n in enumerate(sizes) if n > limit)
        assert out == pkts[: len(out)]
        assert len(out) <= first_bad


def test_oversized_length_is_refused_before_its_body_arrives() -> None:
    decoder = PortDecoder(max_packet=1 << 20)
    with pytest.raises(PortError):
        decoder.feed(struct.pack(">I", (1 << 20) + 1))
    # exactly the limit is fine
    decoder = PortDecoder(max_packet=4)
    assert [bytes(v) for v in decoder.feed(_packet4(b"1234"))] == [b"1234"]


# --- runs of frames ----------------------------------------------------------

frame_lists = st.lists(st.binary(max_size=200), max_size=10)


@FAST
@given(frame_lists)
def test_encode_split_frames_round_trip(frames: list[bytes]) -> None:
    encoded = port_codec.encode_frames(frames)
    # the layout the Erlang side writes: <<Len:32, Packet/binary>>...
    assert encoded == b"".join(struct.pack(">I", len(f)) + f for f in frames)
    assert port_codec.split_frames(encoded) == frames
    assert port_codec.split_frames(memoryview(encoded)) == frames


@FAST
@given(st.lists(st.binary(max_size=50), min_size=1, max_size=6), st.data())
def test_split_frames_refuses_any_truncation(frames: list[bytes], data: Any) -> None:
    encoded = port_codec.encode_frames(frames)
    cut = data.draw(st.integers(0, len(encoded) - 1))
    boundaries = {}
    pos = 0
    for i, f in enumerate(frames):
        boundaries[pos] = i
        pos += 4 + len(f)
    if cut in boundaries:
        # a cut between two frames is a shorter valid run, not a truncation
        assert port_codec.split_frames(encoded[:cut]) == frames[: boundaries[cut]]
    else:
        with pytest.raises(PortError):
            port_codec.split_frames(encoded[:cut])


def test_split_frames_refuses_a_length_past_the_end() -> None:
    with pytest.raises(PortError):
        port_codec.split_frames(b"\x00\x00\x00\x05abcd")
    with pytest.raises(PortError):
        port_codec.split_frames(b"\x00\x00\x00")
    assert port_codec.split_frames(b"") == []


# --- port packets ------------------------------------------------------------

@FAST
@given(st.integers(0, 2**32 - 1), frame_lists)
def test_decode_data_packet(chan: int, frames: list[bytes]) -> None:
    body = port_codec.encode_frames(frames)
    packet = bytes([OP_DATA]) + struct.pack(">I", chan) + body
    for form in (packet, memoryview(packet)):
        op, got_chan, got_frames = port_codec.decode_packet(form)  # type: ignore[misc]
        assert (op, got_chan) == (OP_DATA, chan)
        assert bytes(got_frames) == body
        assert port_codec.split_frames(got_frames) == frames


@pytest.mark.parametrize("n", [0, 1, 2, 3])
def test_truncated_data_packet(n: int) -> None:
    with pytest.raises(PortError):
        port_codec.decode_packet(bytes([OP_DATA]) + b"\x00" * n)


# Written by OTP 25: term_to_binary({set_node, <<"a@h">>}) and
# term_to_binary({connect, 5, <<"b@h">>, <<"127.0.0.1">>, 4242}).
ERL_SET_NODE = bytes([131, 104, 2, 100, 0, 8, 115, 101, 116, 95, 110, 111, 100, 101, 109,
                      0, 0, 0, 3, 97, 64, 104])
ERL_CONNECT = bytes([131, 104, 5, 100, 0, 7, 99, 111, 110, 110, 101, 99, 116, 97, 5, 109,
                     0, 0, 0, 3, 98, 64, 104, 109, 0, 0, 0, 9, 49, 50, 55, 46, 48, 46, 48,
                     46, 49, 98, 0, 0, 16, 146])


def test_decode_control_packets_from_erlang() -> None:
    op, term = port_codec.decode_packet(bytes([OP_CTRL]) + ERL_SET_NODE)  # type: ignore[misc]
    assert op == OP_CTRL
    assert term == (Atom("set_node"), b"a@h")
    assert type(term[0]) is Atom and type(term[1]) is bytes
    op, term = port_codec.decode_packet(  # type: ignore[misc]
        memoryview(bytes([OP_CTRL]) + ERL_CONNECT))
    assert op == OP_CTRL
    assert term == (Atom("connect"), 5, b"b@h", b"127.0.0.1", 4242)


atoms = st.text(st.characters(min_codepoint=ord("a"), max_codepoint=ord("z")),
                min_size=1, max_size=20).filter(
                    lambda s: s not in ("true", "false", "undefined")).map(Atom)
ints = st.integers(-(2**70), 2**70)
leaves = st.one_of(atoms, st.binary(max_size=40), ints)
terms = st.recursive(
    leaves,
    lambda inner: st.one_of(st.tuples(inner, inner), st.tuples(inner, inner, inner),
                            st.lists(inner, max_size=4)),
    max_leaves=12,
)


@FAST
@given(terms)
def test_encode_ctrl_decodes_back(term: Any) -> None:
    wire_bytes = port_codec.encode_ctrl(term)
    (length,) = struct.unpack_from(">I", wire_bytes)
    assert length == len(wire_bytes) - 4
    pkts = PortDecoder(max_packet=1 << 16).feed(wire_bytes)
    assert len(pkts) == 1
    op, got = port_codec.decode_packet(pkts[0])  # type: ignore[misc]
    assert op == OP_CTRL
    assert got == term


def test_encode_ctrl_body_is_external_term_format() -> None:
    # the body after the op byte is what binary_to_term on the Erlang side reads
    body = port_codec.encode_ctrl((Atom("closed"), 7, Atom("peer_exit")))[5:]
    assert body[0] == 131
    assert etf.decode(body) == (Atom("closed"), 7, Atom("peer_exit"))


@FAST
@given(st.integers(0, 2**32 - 1), st.binary(max_size=100))
def test_data_prefix_frames_a_packet(chan: int, body: bytes) -> None:
    stream = port_codec.encode_data_prefix(chan, len(body)) + body
    (pkt,) = PortDecoder(max_packet=1 << 16).feed(stream)
    op, got_chan, got_body = port_codec.decode_packet(pkt)  # type: ignore[misc]
    assert (op, got_chan, bytes(got_body)) == (OP_DATA, chan, body)


@pytest.mark.parametrize("op", [op for op in range(256) if op not in (OP_CTRL, OP_DATA)])
def test_unknown_op_is_refused(op: int) -> None:
    with pytest.raises(PortError):
        port_codec.decode_packet(bytes([op]) + b"\x00\x00\x00\x01")


def test_empty_packet_is_refused() -> None:
    with pytest.raises(PortError):
        port_codec.decode_packet(b"")
    with pytest.raises(PortError):
        port_codec.decode_packet(memoryview(b""))


def test_garbage_control_term_is_an_etf_error() -> None:
    with pytest.raises(etf.EtfError):
        port_codec.decode_packet(bytes([OP_CTRL]) + b"\x83\xff")
