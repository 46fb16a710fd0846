"""Every decoder of input from the network or the BEAM, fuzzed: random bytes
and mutations of valid encodings go in, and only the decoder's documented
error comes out.

Each test runs ``PYDIST_FUZZ_EXAMPLES`` cases (10,000 unless set: the CI
profile; set it lower for a quick local run).
"""

from __future__ import annotations

import dataclasses
import os
import struct
from typing import Any

from admit import COOKIE, dial_in, named_node
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pydist.core import etf, frame, lsdb, port_codec, trust
from pydist.core.chunking import ChunkError, Reassembler
from pydist.core.etf import Atom
from pydist.core.node import Node
from pydist.core.wire import FLAG_SEALED, HEADER_SIZE, LANE_REQUEST, Kind, node_id
from pydist.shell import curve

EXAMPLES = int(os.environ.get("PYDIST_FUZZ_EXAMPLES", "10000"))
fuzz = settings(max_examples=EXAMPLES, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def mutated(valid: list[bytes]) -> st.SearchStrategy[bytes]:
    """Random bytes, or one of ``valid`` with bytes flipped, cut or added."""

    def mutate(args: tuple[int, int, list[tuple[int, int]], int, bytes]) -> bytes:
        which, cut, flips, insert_at, extra = args
        data = bytearray(valid[which % len(valid)])
        for pos, value in flips:
            if data:
                data[pos % len(data)] = value
        if data and insert_at % 3 == 0:
            pos = insert_at % len(data)
            data[pos:pos] = extra
        return bytes(data[: len(data) - cut % (len(data) + 1)] if cut % 2 else data)

    return st.one_of(
        st.binary(max_size=300),
        st.tuples(st.integers(0, 1 << 16), st.integers(0, 1 << 16),
                  st.lists(st.tuples(st.integers(0, 1 << 16), st.integers(0, 255)), max_size=4),
                  st.integers(0, 1 << 16), st.binary(max_size=16)).map(mutate),
    )


# --- the pipe from the BEAM ---------------------------------------------------

def _framed(body: bytes) -> bytes:
    return struct.pack("!I", len(body)) + body


_LANE = port_codec.encode_lane(2, 50, b"b@h", b"tag", b"payload")
_PACKETS = [
    port_codec.encode_ctrl((Atom("connect"), 1, b"b@h", b"127.0.0.1", 4242, COOKIE)),
    port_codec.encode_ctrl((Atom("info"), 7)),
    _framed(bytes([1]) + struct.pack("!I", 1) + port_codec.encode_frames([b"x"])),
    _framed(port_codec.encode_groups(3, [(9, port_codec.encode_frames([b"ab"]))])),
    _framed(_LANE),
]


@fuzz
@given(mutated([b"".join(_PACKETS)]))
def test_pipe_stream(data: bytes) -> None:
    decoder = port_codec.PortDecoder(1 << 16, scratch=1 << 12, big=512)
    try:
        packets = decoder.feed(data)
    except port_codec.PortError:
        return
    for packet in packets:
        try:
            port_codec.decode_packet(packet)
        except (port_codec.PortError, etf.EtfError):
            pass


@fuzz
@given(mutated([p[4:] for p in _PACKETS]))
def test_port_packet(data: bytes) -> None:
    try:
        port_codec.decode_packet(data)
    except (port_codec.PortError, etf.EtfError):
        pass


@fuzz
@given(mutated([p[4:] for p in _PACKETS]))
def test_port_packet_into_a_node(data: bytes) -> None:
    """Whatever the BEAM's side writes, the node counts or logs it; no
    exception reaches the shell."""
    node = named_node()
    node.port_packet(data, 0.0)


@fuzz
@given(mutated([etf.encode((Atom("a"), 1, b"x", [1.5, {Atom("k"): -7}], "s"))]))
def test_etf(data: bytes) -> None:
    try:
        etf.decode(data)
    except etf.EtfError:
        pass


# --- frames from links --------------------------------------------------------

_HEADERS = [frame.encode(Kind.DATA, 1, 2, 3, 4), frame.encode(Kind.LANE, 1, 2, seq=5),
            frame.Header(int(Kind.LANE), 1, 2, lane=1, chunk_index=2, chunk_count=3).encode()]


@fuzz
@given(st.lists(mutated([*_HEADERS, _HEADERS[0] + b"payload"]), min_size=1, max_size=3))
def test_frame(parts: list[bytes]) -> None:
    try:
        head, _ = frame.split(parts)
        frame.decode(head)
    except frame.FrameError:
        pass


@fuzz
@given(st.lists(mutated([*_HEADERS, _HEADERS[0] + b"payload", b"a@h\0tcp://h:1"]),
                min_size=1, max_size=2))
def test_link_message_into_a_node(parts: list[bytes]) -> None:
    """Garbage from a link costs at most that link: no exception escapes."""
    node = named_node()
    assert dial_in(node, b"peer", b"b@h")
    node.link_message(b"peer", parts, 0.0)
    node.link_message(b"other", parts, 0.0)
    assert len(node.links) <= 2


@fuzz
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(-1, 6), st.integers(-1, 6),
                          st.binary(max_size=40)), max_size=30))
def test_chunks(chunks: list[tuple[int, int, int, bytes]]) -> None:
    parts: Reassembler[int] = Reassembler(max_bytes=100, max_messages=2, timeout=1.0)
    for key, index, count, data in chunks:
        try:
            parts.add(key, index, count, data, 0.0)
        except ChunkError:
            pass
        assert parts.held_bytes <= 100 and parts.partial_messages <= 2


_LSP = lsdb.encode(lsdb.Lsp(b"a@h", 3, 30.0, ((b"b@h", 10), (b"c@h", 5)), b"h:1"))
_SUMMARY = lsdb.encode_summary([(b"a@h", 3), (b"b@h", 9)])


@fuzz
@given(mutated([_LSP]))
def test_lsp(data: bytes) -> None:
    try:
        lsdb.decode(data, max_neighbours=8)
    except lsdb.LspError:
        pass


# --- with node keys: sealed frames, signed link state --------------------------

_PAIRS = {n: trust.generate() for n in (b"a@h", b"b@h")}
_AUTHORIZED = {n: public for n, (public, _) in _PAIRS.items()}
_A, _B = (trust.Trust(n, _PAIRS[n][1], _AUTHORIZED) for n in (b"a@h", b"b@h"))
_SIGNED_LSP = lsdb.encode(dataclasses.replace(lsdb.decode(_LSP, 8), signature=_A.sign(
    lsdb.signed_part(lsdb.decode(_LSP, 8)))))


def _sealed(kind: Kind, payload: bytes, seq: int = 0) -> bytes:
    head = frame.encode(kind, node_id(b"b@h"), node_id(b"a@h"), 5, seq=seq, flags=FLAG_SEALED)
    return head + _B.seal(node_id(b"a@h"), head, payload)


def _keyed_node() -> Node:
    """a, with its key, and a link up from b (its key checked, as ZAP does)."""
    node = named_node(trust=_A)
    node.link_authenticated(b"peer", b"b@h")
    assert dial_in(node, b"peer", b"b@h")
    return node


@fuzz
@given(st.lists(mutated([_sealed(Kind.OPEN, b"\x03b@ha@h"), _sealed(Kind.DATA, b"x", 1),
                         _sealed(Kind.LANE, b"y"), _sealed(Kind.ACK, b"", 1)]),
                min_size=1, max_size=2))
def test_sealed_frames_into_a_keyed_node(parts: list[bytes]) -> None:
    """Mutated sealed frames from an authenticated neighbour: dropped and
    counted, or taken; never an exception, never more than that link lost."""
    node = _keyed_node()
    node.link_message(b"peer", parts, 0.0)
    assert len(node.links) <= 1


@fuzz
@given(mutated([_SIGNED_LSP]))
def test_signed_lsp(data: bytes) -> None:
    try:
        lsp = lsdb.decode(data, max_neighbours=8, signed=True)
    except lsdb.LspError:
        return
    assert _B.verify(lsp.origin, lsdb.signed_part(lsp), lsp.signature) in (True, False)


@fuzz
@given(mutated([_SUMMARY]))
def test_summary(data: bytes) -> None:
    try:
        lsdb.decode_summary(data, max_entries=8)
    except lsdb.LspError:
        pass


# --- files and ZeroMQ's authentication requests --------------------------------

@fuzz
@given(st.text(max_size=200))
def test_authorized_keys(text: str) -> None:
    try:
        trust.parse_authorized(text)
    except trust.TrustError:
        pass


@fuzz
@given(st.text(max_size=200))
def test_secret_key_file(text: str) -> None:
    try:
        trust.parse_secret(text)
    except trust.TrustError:
        pass


@fuzz
@given(st.lists(st.binary(max_size=40), max_size=9))
def test_zap_request(request: list[bytes]) -> None:
    reply = curve.zap_reply(request, {})
    assert len(reply) == 6 and reply[2] != b"200"


def test_the_fixtures_are_valid() -> None:
    """The valid encodings mutated above do decode: the fuzzing starts from
    real inputs, not from garbage only."""
    packets = port_codec.PortDecoder(1 << 16).feed(b"".join(_PACKETS))
    assert len(packets) == len(_PACKETS)
    decoded: list[Any] = [port_codec.decode_packet(p) for p in packets]
    assert decoded[-1][1:3] == (2, 50) and len(_LANE) > LANE_REQUEST.size
    assert all(len(h) == HEADER_SIZE for h in _HEADERS)
    assert [frame.decode(h).kind for h in _HEADERS] == [Kind.DATA, Kind.LANE, Kind.LANE]
    assert lsdb.decode(_LSP, max_neighbours=8).origin == b"a@h"
    assert lsdb.decode_summary(_SUMMARY, max_entries=8)[0] == (b"a@h", 3)
    signed = lsdb.decode(_SIGNED_LSP, max_neighbours=8, signed=True)
    assert _B.verify(signed.origin, lsdb.signed_part(signed), signed.signature)
    node = _keyed_node()
    node.link_message(b"peer", [_sealed(Kind.OPEN, b"\x03b@ha@h")], 0.0)
    assert node.stats["frames_forged"] == 0 and len(node.channels) == 1
