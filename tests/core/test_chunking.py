"""Cutting messages into chunks and joining them again: alone, and for many
messages whose chunks arrive in any order, with copies, or malformed."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pydist.core.chunking import ChunkError, Payload, Reassembler, cut, size

FAST = settings(max_examples=150, deadline=None)
Key = tuple[int, int]


def reassembler(max_bytes: int = 100, max_messages: int = 4,
                timeout: float = 1.0) -> Reassembler[Key]:
    return Reassembler(max_bytes, max_messages, timeout)


def state(r: Reassembler[Any]) -> tuple[int, ...]:
    return (r.held_bytes, r.partial_messages, r.completed, r.duplicates, r.expired)


# --- cut ------------------------------------------------------------------------------

def test_cut_slices_without_copying() -> None:
    payload = b"abcdefgh"
    chunks = cut(payload, 3)
    assert [bytes(c) for c in chunks] == [b"abc", b"def", b"gh"]
    assert all(c.obj is payload for c in chunks)


def test_cut_exact_multiple_and_one_chunk() -> None:
    assert [bytes(c) for c in cut(b"abcdef", 3)] == [b"abc", b"def"]
    assert [bytes(c) for c in cut(b"abc", 10)] == [b"abc"]


def test_cut_empty_payload_is_one_empty_chunk() -> None:
    chunks = cut(b"", 5)
    assert len(chunks) == 1 and chunks[0].nbytes == 0


def test_cut_counts_bytes_of_a_typed_memoryview() -> None:
    view = memoryview(bytes(range(8))).cast("I")
    assert [bytes(c) for c in cut(view, 3)] == [bytes([0, 1, 2]), bytes([3, 4, 5]),
                                                 bytes([6, 7])]


@pytest.mark.parametrize("chunk_size", [0, -1])
def test_cut_needs_a_positive_chunk_size(chunk_size: int) -> None:
    with pytest.raises(ChunkError):
        cut(b"abc", chunk_size)


def test_cut_refuses_a_non_contiguous_payload() -> None:
    with pytest.raises(ChunkError):
        cut(memoryview(b"abcdef")[::2], 2)


def test_chunk_error_is_a_value_error() -> None:
    assert issubclass(ChunkError, ValueError)


@FAST
@given(st.binary(max_size=200), st.integers(1, 50), st.booleans())
def test_cut_joins_back(payload: bytes, chunk_size: int, as_view: bool) -> None:
    chunks = cut(memoryview(payload) if as_view else payload, chunk_size)
    assert b"".join(chunks) == payload
    assert len(chunks) == max(1, -(-len(payload) // chunk_size))
    assert all(c.nbytes == chunk_size for c in chunks[:-1])
    assert 0 < chunks[-1].nbytes <= chunk_size or payload == b""


# --- reassembler: the plain cases --------------------------------------------------------

@pytest.mark.parametrize("args", [(0, 1, 1.0), (1, 0, 1.0), (1, 1, 0.0), (1, 1, -1.0)])
def test_reassembler_parameters_are_checked(args: tuple[int, int, float]) -> None:
    with pytest.raises(ValueError):
        Reassembler(*args)


def test_fresh_reassembler() -> None:
    r = reassembler()
    assert state(r) == (0, 0, 0, 0, 0) and r.deadline() is None and r.expire(1e9) == []


def test_one_chunk_message_is_whole_at_once() -> None:
    r = reassembler()
    assert r.add((1, 0), 0, 1, b"abc", 0.0) == b"abc"
    assert r.add((1, 1), 0, 1, memoryview(b""), 0.0) == b""
    assert state(r) == (0, 0, 2, 0, 0) and r.deadline() is None


def test_chunks_in_order_and_out_of_order() -> None:
    r = reassembler()
    assert r.add((1, 0), 0, 3, b"ab", 0.0) is None
    assert r.add((1, 0), 1, 3, memoryview(b"cd"), 0.1) is None
    assert (r.held_bytes, r.partial_messages) == (4, 1)
    assert r.add((1, 0), 2, 3, b"e", 0.2) == b"abcde"
    assert r.add((2, 0), 2, 3, b"e", 0.0) is None
    assert r.add((2, 0), 0, 3, b"ab", 0.0) is None
    assert r.add((2, 0), 1, 3, b"cd", 0.0) == b"abcde"
    assert state(r) == (0, 0, 2, 0, 0)


def test_messages_are_kept_apart_by_key() -> None:
    r = reassembler()
    r.add((1, 0), 0, 2, b"a1", 0.0)
    r.add((2, 0), 0, 2, b"b1", 0.0)
    assert r.add((2, 0), 1, 2, b"b", 0.0) == b"b1b"
    assert r.add((1, 0), 1, 2, b"a", 0.0) == b"a1a"


def test_copies_are_ignored_and_counted() -> None:
    r = reassembler()
    r.add((1, 0), 0, 2, b"ab", 0.0)
    assert r.add((1, 0), 0, 2, b"ab", 0.0) is None
    assert r.add((1, 0), 0, 2, b"xyz", 0.0) is None  # a copy: its content is not looked at
    assert state(r) == (2, 1, 0, 2, 0)
    assert r.add((1, 0), 1, 2, b"c", 0.0) == b"abc"


def test_a_late_copy_after_completion_starts_afresh() -> None:
    """Whole messages are forgotten: the caller's sequence numbers drop these."""
    r = reassembler()
    r.add((1, 0), 0, 2, b"ab", 0.0)
    r.add((1, 0), 1, 2, b"c", 0.0)
    assert r.add((1, 0), 0, 2, b"ab", 5.0) is None
    assert r.partial_messages == 1 and r.expire(6.0) == [(1, 0)]


# --- reassembler: refusals, each leaving the state unchanged -----------------------------

def refused(r: Reassembler[Key], key: Key, index: int, count: int, chunk: Payload) -> None:
    before = state(r), r.deadline()
    with pytest.raises(ChunkError):
        r.add(key, index, count, chunk, 0.5)
    assert (state(r), r.deadline()) == before


@pytest.mark.parametrize(("index", "count", "chunk"), [
    (0, 0, b"a"), (0, -1, b"a"), (-1, 2, b"a"), (2, 2, b"a"), (5, 2, b"a"),
    (0, 2, b""), (1, 2, b""),  # only a one-chunk message may be empty
    (0, 101, b"a"),  # 101 chunks are at least 101 bytes
    (0, 1, bytes(101)),  # larger than max_bytes
    (0, 3, bytes(60)),  # so at least 121 bytes
    (9, 10, bytes(11)),  # the last chunk is the smallest: at least 110 bytes
])
def test_malformed_chunks_are_refused(index: int, count: int, chunk: bytes) -> None:
    r = reassembler(max_bytes=100)
    r.add((0, 0), 0, 2, b"xy", 0.0)
    refused(r, (1, 0), index, count, chunk)


def test_count_must_agree_with_the_first_chunk() -> None:
    r = reassembler()
    r.add((1, 0), 0, 3, b"ab", 0.0)
    refused(r, (1, 0), 1, 4, b"cd")
    refused(r, (1, 0), 0, 2, b"ab")  # even for a copy


def test_chunks_before_the_last_are_all_one_size() -> None:
    r = reassembler()
    r.add((1, 0), 0, 4, b"abc", 0.0)
    refused(r, (1, 0), 1, 4, b"de")
    refused(r, (1, 0), 2, 4, b"defg")
    refused(r, (1, 0), 3, 4, b"defg")  # the last no larger
    assert r.add((1, 0), 3, 4, b"j", 0.0) is None


def test_the_last_chunk_bounds_the_others_from_below() -> None:
    r = reassembler()
    r.add((1, 0), 2, 3, b"ghi", 0.0)
    refused(r, (1, 0), 0, 3, b"ab")
    r.add((1, 0), 0, 3, b"abcd", 0.0)
    assert r.add((1, 0), 1, 3, b"efgh", 0.0) == b"abcdefghghi"


def test_a_message_too_large_is_refused_at_its_first_chunk_that_tells() -> None:
    r = reassembler(max_bytes=100)
    r.add((1, 0), 9, 10, b"a", 0.0)  # at least 10 bytes: fine
    refused(r, (1, 0), 0, 10, bytes(12))  # 9 * 12 + 1 > 100
    assert r.add((1, 0), 0, 10, bytes(11), 0.0) is None  # 9 * 11 + 1 = 100


def test_too_many_messages_in_pieces() -> None:
    r = reassembler(max_messages=2)
    r.add((1, 0), 0, 2, b"a", 0.0)
    r.add((2, 0), 0, 2, b"a", 0.0)
    refused(r, (3, 0), 0, 2, b"a")
    assert r.add((3, 0), 0, 1, b"abc", 0.0) == b"abc"  # holds nothing: fine
    assert r.add((1, 0), 1, 2, b"b", 0.0) == b"ab"
    assert r.add((3, 0), 0, 2, b"a", 0.0) is None


def test_too_many_bytes_in_pieces() -> None:
    r = reassembler(max_bytes=10)
    r.add((1, 0), 0, 3, bytes(4), 0.0)
    r.add((2, 0), 0, 2, bytes(4), 0.0)
    refused(r, (1, 0), 1, 3, bytes(4))  # 12 held
    refused(r, (3, 0), 0, 2, bytes(3))


def test_the_chunk_that_completes_a_message_is_never_refused_for_room() -> None:
    """So that a full buffer can always drain."""
    r = reassembler(max_bytes=10, max_messages=2)
    r.add((1, 0), 0, 2, bytes(5), 0.0)
    r.add((2, 0), 0, 2, bytes(5), 0.0)
    assert r.add((1, 0), 1, 2, bytes(5), 0.0) == bytes(10)
    assert state(r) == (5, 1, 1, 0, 0)


# --- reassembler: expiry ---------------------------------------------------------------

def test_expire_drops_messages_by_their_first_chunk() -> None:
    r = reassembler(timeout=1.0)
    r.add((1, 0), 0, 2, b"a", 0.0)
    r.add((2, 0), 0, 2, b"ab", 0.5)
    r.add((1, 0), 0, 2, b"a", 0.9)  # a copy does not make it younger
    assert r.deadline() == 1.0
    assert r.expire(0.999) == []
    assert r.expire(1.0) == [(1, 0)]
    assert state(r) == (2, 1, 0, 1, 1) and r.deadline() == 1.5
    assert r.expire(10.0) == [(2, 0)]
    assert state(r) == (0, 0, 0, 1, 2) and r.deadline() is None


def test_a_completed_message_does_not_expire() -> None:
    r = reassembler(timeout=1.0)
    r.add((1, 0), 0, 2, b"a", 0.0)
    r.add((2, 0), 0, 2, b"a", 0.2)
    r.add((1, 0), 1, 2, b"b", 0.5)
    assert r.deadline() == pytest.approx(1.2)
    assert r.expire(5.0) == [(2, 0)] and r.completed == 1


def test_drop_if_forgets_partial_messages_by_key() -> None:
    r = reassembler()
    for chan in (1, 2, 1):
        r.add((chan, r.partial_messages), 0, 2, b"ab", 0.0)
    assert r.drop_if(lambda key: key[0] == 1) == [(1, 0), (1, 2)]
    assert state(r) == (2, 1, 0, 0, 0)
    assert r.drop_if(lambda key: False) == []


# --- many messages, any order, any copies -------------------------------------------------

@st.composite
def interleaved(draw: st.DrawFn) -> tuple[int, list[bytes], list[tuple[int, int]]]:
    """Messages cut at one chunk size, and the order their chunks (with
    copies) arrive in: (message, chunk index)."""
    chunk_size = draw(st.integers(1, 8))
    messages = draw(st.lists(st.binary(max_size=40), min_size=1, max_size=5))
    pieces = [(m, i) for m, msg in enumerate(messages)
              for i in range(len(cut(msg, chunk_size)))]
    copies = draw(st.lists(st.sampled_from(pieces), max_size=10))
    return chunk_size, messages, draw(st.permutations(pieces + copies))


@FAST
@given(interleaved())
def test_any_order_with_copies_joins_each_message_once(
        case: tuple[int, list[bytes], list[tuple[int, int]]]) -> None:
    """Limits just big enough for all the messages in pieces at once."""
    chunk_size, messages, order = case
    total = sum(len(m) for m in messages)
    r: Reassembler[int] = Reassembler(max(1, total), len(messages), timeout=1.0)
    chunks = [cut(m, chunk_size) for m in messages]
    got: dict[int, bytes] = {}
    seen: set[tuple[int, int]] = set()
    for t, (m, i) in enumerate(order):
        if m in got:
            continue  # the caller's sequence numbers drop what was delivered
        whole = r.add(m, i, len(chunks[m]), chunks[m][i], t / 1000)
        seen.add((m, i))
        if whole is not None:
            assert all((m, j) in seen for j in range(len(chunks[m])))
            got[m] = whole
    assert got == dict(enumerate(messages))
    assert (r.held_bytes, r.partial_messages, r.deadline()) == (0, 0, None)
    dropped = sum(1 for t, (m, _) in enumerate(order) if t > last_needed(order, m))
    assert (r.completed, r.duplicates) == (len(messages), len(order) - len(seen) - dropped)


def last_needed(order: list[tuple[int, int]], m: int) -> int:
    """When the last missing chunk of message ``m`` arrives."""
    firsts: dict[tuple[int, int], int] = {}
    for t, piece in enumerate(order):
        firsts.setdefault(piece, t)
    return max(t for (n, _), t in firsts.items() if n == m)


@st.composite
def chunk_args(draw: st.DrawFn) -> tuple[int, int, int, bytes, float]:
    """Mostly chunks that could be right: each key has its count and a
    chunk size; and now and then anything."""
    key = draw(st.integers(0, 4))
    count, chunk = key % 3 + 2, b"abc"
    if draw(st.integers(0, 4)) == 0:
        count = draw(st.integers(-1, 5))
    index = draw(st.integers(-1, 5) if draw(st.integers(0, 4)) == 0
                 else st.integers(0, max(0, count - 1)))
    if index == count - 1 or draw(st.integers(0, 3)) == 0:
        chunk = draw(st.sampled_from([b"", b"a", b"ab", b"abcd", bytes(12)]))
    return key, index, count, chunk, draw(st.sampled_from([0.0, 0.0, 0.1, 0.5]))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(chunk_args(), chunk_args(), chunk_args(), st.floats(0, 3)),
                max_size=60))
def test_any_input_raises_only_chunk_errors_and_stays_bounded(
        ops: list[tuple[int, int, int, bytes, float] | float]) -> None:
    """Random chunk metadata and sizes, and expiry: a refusal changes nothing,
    and the limits hold after every step."""
    max_bytes, max_messages = 10, 3
    r: Reassembler[int] = Reassembler(max_bytes, max_messages, timeout=1.0)
    now = 0.0
    for op in ops:
        before = state(r)
        if isinstance(op, float):
            gone = r.expire(now + op)
            assert len(gone) == before[1] - r.partial_messages
            continue
        key, index, count, chunk, dt = op
        now += dt
        try:
            whole = r.add(key, index, count, chunk, now)
        except ChunkError:
            assert state(r) == before
            continue
        assert whole is None or len(whole) <= max_bytes
        assert r.held_bytes <= max_bytes and r.partial_messages <= max_messages
        held = sum(size(c) for p in r._partial.values() for c in p.chunks.values())
        assert held == r.held_bytes
        deadline = r.deadline()
        assert deadline is None or deadline <= now + r.timeout
