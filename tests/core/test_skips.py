"""The receiver's record of the skips it took (pydist.core.skips): exact from
its floor up, never says a skip it took was not taken, bounded on the wire."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pydist.core.skips import MAX_RANGES, RecordError, TakenSkips, decode, was_taken


def record(taken: TakenSkips) -> tuple[int, list[tuple[int, int]]] | None:
    """What an ack carries, through the wire's encoding."""
    return decode(taken.encode()) if taken else None


def test_consecutive_skips_make_one_range() -> None:
    taken = TakenSkips(window=100)
    for seq in (5, 7, 6, 9, 9):
        taken.took(seq)
    assert record(taken) == (0, [(5, 8), (9, 10)])
    assert [was_taken(s, record(taken)) for s in range(4, 11)] == [
        False, True, True, True, False, True, False]


def test_no_record_means_no_skip_taken() -> None:
    taken = TakenSkips(window=100)
    assert not taken and record(taken) is None
    assert not was_taken(3, None)


def test_too_many_ranges_raise_the_floor() -> None:
    taken = TakenSkips(window=10_000)
    for i in range(MAX_RANGES + 3):
        taken.took(2 * i)
    floor, ranges = decode(taken.encode())
    assert len(ranges) == MAX_RANGES and floor == 5
    # below the floor: not known, so counted as taken (one too many at worst)
    assert was_taken(1, (floor, ranges)) and was_taken(4, (floor, ranges))
    assert not was_taken(7, (floor, ranges)) and was_taken(8, (floor, ranges))
    assert len(taken.encode()) == 8 + 16 * MAX_RANGES


def test_what_the_sender_cannot_ask_about_is_forgotten() -> None:
    taken = TakenSkips(window=10)
    taken.took(3)
    taken.took(12)
    taken.forget_below(14)  # 3 is a window back: the sender has its ack
    assert record(taken) == (0, [(12, 13)])
    taken.forget_below(23)
    assert not taken and record(taken) is None


@pytest.mark.parametrize("data", [
    b"", b"\x00" * 7, b"\x00" * 9, b"\x00" * 8 + b"\x00" * 15,
    b"\x00" * (8 + 16 * (MAX_RANGES + 1)),
    b"\x00" * 8 + (5).to_bytes(8, "big") + (5).to_bytes(8, "big"),  # empty range
])
def test_a_bad_record_is_refused(data: bytes) -> None:
    with pytest.raises(RecordError):
        decode(data)


@settings(max_examples=300)
@given(st.lists(st.tuples(st.sampled_from(["took", "forget"]), st.integers(0, 300)),
                max_size=200), st.integers(1, 64))
def test_the_record_never_denies_a_skip_taken(ops: list[tuple[str, int]], window: int) -> None:
    """Against the set of skips taken: any sequence the sender may still
    ask about (within a window of the latest forget) is said taken if it
    was, and not taken if it was not, unless it is below the floor."""
    taken = TakenSkips(window)
    truth: set[int] = set()
    horizon = 0
    for op, seq in ops:
        if op == "took":
            taken.took(seq)
            truth.add(seq)
        else:
            horizon = max(horizon, seq - window)
            taken.forget_below(seq)
        said = record(taken)
        assert said is None or len(said[1]) <= MAX_RANGES
        for s in range(horizon, 320):
            if s in truth:
                assert was_taken(s, said), s
            elif said is None or s >= said[0]:
                assert not was_taken(s, said), s
