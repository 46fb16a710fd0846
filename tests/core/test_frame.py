"""The fixed frame header between py_dist nodes."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pydist.core import frame
from pydist.core.frame import FrameError, Header
from pydist.core.wire import DEFAULT_HOPS, HEADER_SIZE, VERSION, Kind

FAST = settings(max_examples=200, deadline=None)

# The layout written out independently of wire.HEADER: version, kind, flags,
# hops, lane, 3 pad bytes, epoch:32, src:64, dst:64, seq:64, index:32, count:32.
LAYOUT = struct.Struct(">BBBBBxxxIQQQII")
PAD = slice(5, 8)

u8 = st.integers(0, 2**8 - 1)
u32 = st.integers(0, 2**32 - 1)
u64 = st.integers(0, 2**64 - 1)
kinds = st.sampled_from([int(k) for k in Kind])


@st.composite
def headers(draw: st.DrawFn) -> Header:
    count = draw(st.integers(1, 2**32 - 1))
    return Header(
        kind=draw(kinds), src=draw(u64), dst=draw(u64), epoch=draw(u32), seq=draw(u64),
        flags=draw(u8), hops=draw(u8), lane=draw(u8),
        chunk_index=draw(st.integers(0, count - 1)), chunk_count=count,
    )


def test_layout_size() -> None:
    assert HEADER_SIZE == LAYOUT.size == 44


@FAST
@given(headers())
def test_header_round_trip(h: Header) -> None:
    data = h.encode()
    assert len(data) == HEADER_SIZE
    assert LAYOUT.unpack(data) == (
        VERSION, h.kind, h.flags, h.hops, h.lane, h.epoch, h.src, h.dst, h.seq,
        h.chunk_index, h.chunk_count)
    assert data[PAD] == b"\0\0\0"
    assert frame.decode(data) == h
    assert frame.decode(memoryview(data)) == h


@FAST
@given(kinds, u64, u64, u32, u64, u8, u8)
def test_fast_path_equals_header_encode(
        kind: int, src: int, dst: int, epoch: int, seq: int, flags: int, hops: int) -> None:
    fast = frame.encode(kind, src, dst, epoch, seq, flags, hops)
    assert fast == Header(kind, src, dst, epoch, seq, flags, hops).encode()
    got = frame.decode(fast)
    assert (got.kind, got.src, got.dst, got.epoch, got.seq, got.flags, got.hops) == (
        kind, src, dst, epoch, seq, flags, hops)
    assert (got.lane, got.chunk_index, got.chunk_count, got.version) == (0, 0, 1, VERSION)


def test_fast_path_defaults() -> None:
    got = frame.decode(frame.encode(Kind.HEARTBEAT, 1, 2))
    assert (got.epoch, got.seq, got.flags, got.hops) == (0, 0, 0, DEFAULT_HOPS)


def _raw(version: int = VERSION, kind: int = int(Kind.DATA), index: int = 0,
         count: int = 1) -> bytes:
    return LAYOUT.pack(version, kind, 0, DEFAULT_HOPS, 0, 7, 1, 2, 3, index, count)


def test_raw_helper_is_accepted() -> None:
    # the negative tests below change one field of a header that decodes
    assert frame.decode(_raw()) == Header(int(Kind.DATA), 1, 2, 7, 3)


@pytest.mark.parametrize("size", [0, 1, HEADER_SIZE - 1, HEADER_SIZE + 1, 2 * HEADER_SIZE])
def test_wrong_length(size: int) -> None:
    data = (_raw() * 3)[:size]
    with pytest.raises(FrameError):
        frame.decode(data)


@pytest.mark.parametrize("version", [0, VERSION + 1, 255])
def test_wrong_version(version: int) -> None:
    with pytest.raises(FrameError):
        frame.decode(_raw(version=version))


@pytest.mark.parametrize("kind", [k for k in range(256) if k not in {int(x) for x in Kind}])
def test_unknown_kind(kind: int) -> None:
    with pytest.raises(FrameError):
        frame.decode(_raw(kind=kind))


@pytest.mark.parametrize(("index", "count"), [(0, 0), (5, 0), (1, 1), (3, 3), (4, 3),
                                              (2**32 - 1, 2**32 - 1)])
def test_bad_chunk_numbers(index: int, count: int) -> None:
    """Lane messages alone are chunked; in a DATA frame the same fields say
    what the frame comes after, and any value is a header."""
    with pytest.raises(FrameError):
        frame.decode(_raw(kind=Kind.LANE, index=index, count=count))
    assert frame.decode(_raw(kind=Kind.DATA, index=index, count=count)).chunk_index == index


def test_frame_error_is_a_value_error() -> None:
    assert issubclass(FrameError, ValueError)


@FAST
@given(st.one_of(st.binary(max_size=100),
                 st.binary(min_size=HEADER_SIZE, max_size=HEADER_SIZE),
                 st.builds(lambda v, k, rest: bytes([v, k]) + rest,
                           st.sampled_from([VERSION, VERSION + 1]), u8,
                           st.binary(min_size=HEADER_SIZE - 2, max_size=HEADER_SIZE - 2))))
def test_random_bytes_decode_or_frame_error(data: bytes) -> None:
    try:
        h = frame.decode(data)
    except FrameError:
        return
    assert isinstance(h, Header)
    # what was accepted re-encodes to the input, up to the pad bytes
    expected = bytearray(data)
    expected[PAD] = b"\0\0\0"
    assert h.encode() == bytes(expected)
    assert h.version == VERSION
    assert h.kind in {int(k) for k in Kind}
    assert h.kind != Kind.LANE or 0 <= h.chunk_index < h.chunk_count


# --- one part or two ------------------------------------------------------------

@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=frame.JOIN_MAX + 100))
def test_join_then_split_gives_header_and_payload_back(payload: bytes) -> None:
    header = frame.encode(Kind.DATA, 1, 2, 3, 4)
    parts = frame.join(header, payload)
    # small payloads ride in the header's part; large ones stay a part of their own
    assert len(parts) == (1 if len(payload) < frame.JOIN_MAX else 2)
    head, body = frame.split(parts)
    assert bytes(head) == header
    assert bytes(body) == payload


@pytest.mark.parametrize("parts", [[], [b"short"], [b"a", b"b", b"c"]])
def test_split_refuses_what_cannot_be_a_frame(parts: list[bytes]) -> None:
    with pytest.raises(FrameError):
        frame.split(parts)
