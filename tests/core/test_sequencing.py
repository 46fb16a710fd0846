"""Per-channel sequencing: sender and receiver alone, and together over a lossy,
reordering, duplicating network with route changes."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from pydist.core import skips
from pydist.core.sequencing import (
    MAX_AHEAD,
    REASONS,
    Payload,
    Receiver,
    Sender,
    SequenceError,
    size,
)

FAST = settings(max_examples=150, deadline=None)


def receiver(max_bytes: int = 100, max_frames: int = 10, gap_timeout: float = 1.0,
             ack_every: int = 100, ack_delay: float = 10.0) -> Receiver:
    """By default acks are due only after duplicates: tests name what they need."""
    return Receiver(max_bytes, max_frames, gap_timeout, ack_every, ack_delay)


def reason(err: pytest.ExceptionInfo[SequenceError]) -> str:
    return err.value.reason


# --- errors ------------------------------------------------------------------------

def test_error_reasons() -> None:
    assert REASONS == ("retransmit_overflow", "reorder_overflow", "gap_timeout", "bad_ack")
    err = SequenceError("gap_timeout", "frame 3")
    assert err.reason == "gap_timeout" and str(err) == "gap_timeout: frame 3"
    with pytest.raises(ValueError):
        SequenceError("timeout", "not a reason")


@pytest.mark.parametrize("args", [(0, 1), (1, 0), (-5, 3)])
def test_sender_limits_must_be_positive(args: tuple[int, int]) -> None:
    with pytest.raises(ValueError):
        Sender(*args)


@pytest.mark.parametrize("args", [
    (0, 1, 1.0, 1, 0.0), (1, 0, 1.0, 1, 0.0), (1, 1, 0.0, 1, 0.0),
    (1, 1, 1.0, 0, 0.0), (1, 1, 1.0, 1, -0.1),
])
def test_receiver_parameters_are_checked(args: tuple[int, int, float, int, float]) -> None:
    with pytest.raises(ValueError):
        Receiver(*args)


def test_size_counts_bytes_not_items() -> None:
    assert size(b"abc") == 3 and size(memoryview(b"abc")) == 3
    assert size(memoryview(bytes(8)).cast("I")) == 8


# --- sender ------------------------------------------------------------------------

def test_push_numbers_frames_and_keeps_them() -> None:
    s = Sender(max_bytes=100, max_frames=10)
    assert (s.next_seq, s.acked, s.bytes, s.frames, s.unacked()) == (0, 0, 0, 0, [])
    view = memoryview(bytes(8)).cast("I")
    assert [s.push(b"ab"), s.push(view), s.push(b"")] == [0, 1, 2]
    assert (s.next_seq, s.acked, s.bytes, s.frames) == (3, 0, 10, 3)
    held = s.unacked()
    assert held == [(0, b"ab"), (1, view), (2, b"")]
    assert held[1][1] is view  # kept as given, not copied


def test_ack_is_cumulative_and_frees_bytes() -> None:
    s = Sender(max_bytes=100, max_frames=10)
    for n in (1, 2, 3, 4):
        s.push(bytes(n))
    assert s.ack(2) == 3
    assert (s.acked, s.bytes, s.frames) == (2, 7, 2)
    assert s.unacked() == [(2, bytes(3)), (3, bytes(4))]
    assert s.ack(4) == 7
    assert (s.acked, s.bytes, s.frames, s.unacked()) == (4, 0, 0, [])


@pytest.mark.parametrize("stale", [0, 1, 2, -1])
def test_stale_and_repeated_acks_are_ignored(stale: int) -> None:
    s = Sender(max_bytes=100, max_frames=10)
    for n in (1, 2, 3):
        s.push(bytes(n))
    s.ack(2)
    assert s.ack(stale) == 0
    assert (s.acked, s.bytes, s.unacked()) == (2, 3, [(2, bytes(3))])


@pytest.mark.parametrize("upto", [4, 5, 2**64])
def test_ack_beyond_what_was_sent_is_bad(upto: int) -> None:
    s = Sender(max_bytes=100, max_frames=10)
    for n in (1, 2, 3):
        s.push(bytes(n))
    with pytest.raises(SequenceError) as err:
        s.ack(upto)
    assert reason(err) == "bad_ack"
    assert (s.acked, s.bytes, s.frames) == (0, 6, 3)
    assert s.ack(3) == 6  # exactly everything sent is fine


def test_retransmit_overflow_by_frames() -> None:
    s = Sender(max_bytes=100, max_frames=3)
    for _ in range(3):
        s.push(b"x")
    with pytest.raises(SequenceError) as err:
        s.push(b"")
    assert reason(err) == "retransmit_overflow"
    assert (s.next_seq, s.bytes, s.frames) == (3, 3, 3)
    s.ack(1)
    assert s.push(b"y") == 3


def test_retransmit_overflow_by_bytes() -> None:
    s = Sender(max_bytes=10, max_frames=100)
    s.push(bytes(6))
    s.push(bytes(4))  # exactly at the limit
    with pytest.raises(SequenceError) as err:
        s.push(b"z")
    assert reason(err) == "retransmit_overflow"
    assert (s.next_seq, s.bytes) == (2, 10)


def test_a_big_frame_goes_alone() -> None:
    s = Sender(max_bytes=10, max_frames=100)
    s.push(b"a")
    with pytest.raises(SequenceError):
        s.push(bytes(11))  # not beside another
    s.ack(1)
    assert s.push(bytes(1000)) == 1  # but into an empty buffer
    assert s.full and s.bytes == 1000
    with pytest.raises(SequenceError) as err:
        s.push(b"")  # and nothing beside it
    assert reason(err) == "retransmit_overflow"
    assert s.ack(2) == 1000 and not s.full
    assert s.push(bytes(10)) == 2


@pytest.mark.parametrize(("max_bytes", "max_frames", "sizes", "full"), [
    (10, 10, [], False),
    (10, 10, [4], False),
    (10, 10, [5], True),  # half the bytes
    (11, 10, [5], False),
    (11, 10, [6], True),
    (100, 4, [0], False),
    (100, 4, [0, 0], True),  # half the frames
    (100, 5, [0, 0], False),
    (100, 5, [0, 0, 0], True),
    (1, 1, [], False),  # never full when empty, whatever the limits
    (1, 1, [0], True),
])
def test_full_at_half_of_either_limit(max_bytes: int, max_frames: int, sizes: list[int],
                                      full: bool) -> None:
    s = Sender(max_bytes, max_frames)
    for n in sizes:
        s.push(bytes(n))
    assert s.full is full


@FAST
@given(st.integers(1, 200), st.integers(1, 20), st.lists(st.integers(0, 300), max_size=40))
def test_not_full_means_a_frame_of_half_the_limit_fits(max_bytes: int, max_frames: int,
                                                        sizes: list[int]) -> None:
    """The promise the node relies on: while not full, a frame of up to half
    ``max_bytes`` is taken; full or not, the limits hold (but for one big frame)."""
    s = Sender(max_bytes, max_frames)
    for n in sizes:
        if not s.full:
            s.push(bytes(min(n, max_bytes // 2)))
        else:
            try:
                s.push(bytes(n))
            except SequenceError:
                s.ack(s.next_seq - s.frames // 2)
        assert s.frames <= max_frames and (s.bytes <= max_bytes or s.frames == 1)


# --- receiver: delivery ------------------------------------------------------------

def test_in_order_frames_are_delivered_at_once() -> None:
    r = receiver()
    assert r.receive(0, b"a", 0.0) == [b"a"]
    assert r.receive(1, b"b", 0.0) == [b"b"]
    assert (r.expected, r.delivered, r.duplicates, r.reordered) == (2, 2, 0, 0)
    assert (r.buffered_frames, r.buffered_bytes, r.gap_opened) == (0, 0, None)


def test_early_frames_wait_for_the_missing_one() -> None:
    r = receiver()
    view = memoryview(b"cc")
    assert r.receive(2, view, 0.0) == []
    assert r.receive(1, b"b", 0.0) == []
    assert r.receive(4, b"e", 0.0) == []
    assert (r.expected, r.reordered, r.buffered_frames, r.buffered_bytes) == (0, 3, 3, 4)
    got = r.receive(0, b"a", 0.0)
    assert got == [b"a", b"b", b"cc"] and got[2] is view
    assert (r.expected, r.delivered, r.buffered_frames, r.buffered_bytes) == (3, 3, 1, 1)
    assert r.receive(3, b"d", 0.0) == [b"d", b"e"]
    assert (r.expected, r.delivered, r.reordered, r.buffered_frames) == (5, 5, 3, 0)


def test_copies_are_dropped_and_counted() -> None:
    r = receiver()
    r.receive(0, b"a", 0.0)
    r.receive(2, b"c", 0.0)
    assert r.receive(0, b"a", 0.0) == []  # already delivered
    assert r.receive(2, b"X", 0.0) == []  # already held: the first copy stays
    assert r.receive(-1, b"?", 0.0) == []
    assert (r.duplicates, r.reordered, r.buffered_frames, r.buffered_bytes) == (3, 1, 1, 1)
    assert r.receive(1, b"b", 0.0) == [b"b", b"c"]


def test_reorder_overflow_by_frames() -> None:
    r = receiver(max_frames=2)
    r.receive(1, b"b", 0.0)
    r.receive(2, b"c", 0.0)
    with pytest.raises(SequenceError) as err:
        r.receive(3, b"", 0.0)
    assert reason(err) == "reorder_overflow"
    assert (r.buffered_frames, r.reordered) == (2, 2)
    assert r.receive(0, b"a", 0.0) == [b"a", b"b", b"c"]  # the awaited frame needs no room


def test_reorder_overflow_by_bytes() -> None:
    r = receiver(max_bytes=10)
    r.receive(1, bytes(6), 0.0)
    r.receive(2, bytes(4), 0.0)  # exactly at the limit
    with pytest.raises(SequenceError) as err:
        r.receive(3, b"d", 0.0)
    assert reason(err) == "reorder_overflow"
    assert r.buffered_bytes == 10
    assert r.receive(0, bytes(50), 0.0)[0] == bytes(50)  # nor does its size matter


def test_a_big_frame_is_not_held_early() -> None:
    """Unlike the sender's, the receiver's limits have no exception: an honest
    sender never needs one (see the module docstring and the stateful test)."""
    r = receiver(max_bytes=10)
    with pytest.raises(SequenceError) as err:
        r.receive(1, bytes(11), 0.0)
    assert reason(err) == "reorder_overflow"


def test_a_frame_absurdly_far_ahead_is_refused() -> None:
    r = receiver(max_frames=10)
    r.receive(0, b"a", 0.0)
    with pytest.raises(SequenceError) as err:
        r.receive(1 + MAX_AHEAD + 1, b"z", 0.0)
    assert reason(err) == "reorder_overflow" and r.buffered_frames == 0
    assert r.receive(1 + MAX_AHEAD, b"z", 0.0) == []  # the farthest that may wait


# --- receiver: gaps ----------------------------------------------------------------

def test_gap_times_out_after_gap_timeout() -> None:
    r = receiver(gap_timeout=2.0)
    r.check(100.0)  # no gap, no timeout
    r.receive(2, b"c", 10.0)
    assert r.gap_opened == 10.0 and r.deadline() == 12.0
    r.check(11.999)
    with pytest.raises(SequenceError) as err:
        r.check(12.0)
    assert reason(err) == "gap_timeout"


def test_filling_the_gap_closes_it() -> None:
    r = receiver(gap_timeout=2.0)
    r.receive(1, b"b", 0.0)
    r.receive(0, b"a", 1.5)
    assert r.gap_opened is None and r.deadline() == 1.5 + 10.0  # the ack's only
    r.check(100.0)


def test_later_early_frames_do_not_restart_the_clock() -> None:
    r = receiver(gap_timeout=2.0)
    r.receive(2, b"c", 0.0)
    r.receive(3, b"d", 1.0)
    r.receive(5, b"f", 1.9)
    assert r.gap_opened == 0.0
    with pytest.raises(SequenceError):
        r.check(2.0)


def test_the_gap_dates_from_the_first_arrival_not_the_lowest_sequence() -> None:
    r = receiver(gap_timeout=2.0)
    r.receive(5, b"f", 0.0)
    r.receive(2, b"c", 1.0)
    assert r.gap_opened == 0.0 and r.deadline() == 2.0


def test_after_a_partial_fill_the_gap_dates_from_the_oldest_frame_held() -> None:
    """0 and 2 missing; 1 came at 0.0 and 3 at 5.0. When 0 comes, 1 goes out,
    and 2 has been overtaken since 3 came, not since 1 did."""
    r = receiver(gap_timeout=10.0)
    r.receive(1, b"b", 0.0)
    r.receive(3, b"d", 5.0)
    assert r.receive(0, b"a", 9.0) == [b"a", b"b"]
    assert r.gap_opened == 5.0 and r.deadline() == 15.0
    r.check(14.9)
    with pytest.raises(SequenceError):
        r.check(15.0)


def test_arrival_records_stay_bounded() -> None:
    """A frame held far ahead while many others come and go before it."""
    r = receiver(max_frames=2, max_bytes=1000, gap_timeout=1e9)
    r.receive(1000, b"far", 0.0)
    for seq in range(0, 998, 2):
        r.receive(seq + 1, b"b", float(seq))
        assert r.receive(seq, b"a", float(seq)) == [b"a", b"b"]
        assert len(r._arrivals) <= 2 * r.max_frames
        assert r.gap_opened == 0.0


# --- receiver: acks ----------------------------------------------------------------

def test_nothing_to_ack_at_first() -> None:
    r = receiver(ack_every=1, ack_delay=0.0)
    assert r.take_ack(100.0) is None and r.deadline() is None


def test_ack_every_n_frames() -> None:
    r = receiver(ack_every=3, ack_delay=10.0)
    r.receive(0, b"a", 0.0)
    r.receive(1, b"b", 0.0)
    assert r.take_ack(1.0) is None
    r.receive(2, b"c", 1.0)
    assert r.deadline() == 1.0
    assert r.take_ack(1.0) == 3
    assert r.take_ack(1.0) is None and r.deadline() is None  # taken: counts as sent
    r.receive(3, b"d", 2.0)
    r.receive(4, b"e", 2.0)
    assert r.take_ack(2.0) is None  # counted from the last ack
    for seq in range(5, 9):  # past ack_every counts as reaching it
        r.receive(seq, b"x", 3.0)
    assert r.take_ack(3.0) == 9


def test_frames_unblocked_together_count_for_ack_every() -> None:
    r = receiver(ack_every=3, ack_delay=10.0)
    r.receive(2, b"c", 0.0)
    r.receive(1, b"b", 0.0)
    assert r.take_ack(0.0) is None  # held early: nothing delivered yet
    r.receive(0, b"a", 0.0)
    assert r.take_ack(0.0) == 3


def test_ack_delay_runs_from_the_first_unacked_delivery() -> None:
    r = receiver(ack_every=100, ack_delay=0.5)
    r.receive(0, b"a", 1.0)
    assert r.deadline() == 1.5
    r.receive(1, b"b", 1.4)
    assert r.deadline() == 1.5  # a later delivery does not push it back
    assert r.take_ack(1.499) is None
    assert r.take_ack(1.5) == 2
    assert r.deadline() is None
    r.receive(2, b"c", 3.0)
    assert r.deadline() == 3.5 and r.take_ack(3.6) == 3


def test_zero_ack_delay_acks_every_delivery() -> None:
    r = receiver(ack_every=100, ack_delay=0.0)
    r.receive(0, b"a", 1.0)
    assert r.take_ack(1.0) == 1


def test_a_copy_makes_an_ack_due_at_once() -> None:
    """Even when it says nothing new: the sender is sending again, perhaps
    because our last ack was lost."""
    r = receiver(ack_every=100, ack_delay=10.0)
    r.receive(0, b"a", 0.0)
    r.receive(1, b"b", 0.0)
    assert r.take_ack(10.0) == 2
    r.receive(1, b"b", 20.0)
    assert r.deadline() == 20.0
    assert r.take_ack(20.0) == 2
    assert r.take_ack(20.0) is None


def test_a_copy_of_a_frame_held_early_makes_an_ack_due() -> None:
    r = receiver(ack_every=100, ack_delay=10.0)
    r.receive(0, b"a", 0.0)
    r.receive(2, b"c", 1.0)
    assert r.take_ack(1.0) is None
    r.receive(2, b"c", 2.0)
    assert r.take_ack(2.0) == 1


def test_a_copy_brings_a_delayed_ack_forward() -> None:
    r = receiver(ack_every=100, ack_delay=10.0)
    r.receive(0, b"a", 0.0)
    assert r.deadline() == 10.0
    r.receive(0, b"a", 3.0)
    assert r.deadline() == 3.0 and r.take_ack(3.0) == 1


def test_deadline_is_the_earlier_of_gap_and_ack() -> None:
    r = receiver(gap_timeout=5.0, ack_every=100, ack_delay=1.0)
    r.receive(2, b"c", 0.0)
    assert r.deadline() == 5.0  # gap only: nothing delivered to ack
    r.receive(0, b"a", 0.5)
    assert r.deadline() == 1.5  # ack first
    assert r.take_ack(1.5) == 1
    assert r.deadline() == 5.0
    r.receive(1, b"b", 2.0)  # gap filled: only the ack is left
    assert r.deadline() == 3.0


# --- any order, any copies ----------------------------------------------------------

@st.composite
def shuffled_with_copies(draw: st.DrawFn) -> tuple[int, list[int]]:
    n = draw(st.integers(0, 40))
    copies = draw(st.lists(st.integers(0, n - 1), max_size=20)) if n else []
    return n, draw(st.permutations([*range(n), *copies]))


@FAST
@given(shuffled_with_copies())
def test_any_order_with_copies_delivers_each_frame_once_in_order(
        case: tuple[int, list[int]]) -> None:
    """Buffers just big enough: n - 1 frames of 2 bytes are the most ever held early."""
    n, order = case
    r = Receiver(max(1, 2 * (n - 1)), max(1, n - 1), gap_timeout=1.0, ack_every=1,
                 ack_delay=0.0)
    got: list[Payload] = []
    for i, seq in enumerate(order):
        got += r.receive(seq, seq.to_bytes(2, "big"), i / 1000)
    assert got == [seq.to_bytes(2, "big") for seq in range(n)]
    assert (r.expected, r.delivered, r.duplicates) == (n, n, len(order) - n)
    assert r.reordered <= max(0, n - 1)
    assert (r.buffered_frames, r.buffered_bytes, r.gap_opened) == (0, 0, None)
    r.check(1e9)


# --- sender, lossy network, receiver --------------------------------------------------

MAX_BYTES, MAX_FRAMES, GAP = 64, 8, 1.0
#: what the runs of the machine below went through, to check they went everywhere
OUTCOMES: Counter[str] = Counter()


class WireFaults(RuleBasedStateMachine):
    """What the network does to frames in flight (``wire``), for both
    machines below: copies any of them, loses any of them."""

    wire: list[Any]

    def lost_one(self) -> None:
        """A frame was lost in flight (a machine may count it)."""

    @precondition(lambda self: self.wire and len(self.wire) <= 4 * MAX_FRAMES)
    @rule(pick=st.integers(0, 255))
    def copy(self, pick: int) -> None:
        self.wire.append(self.wire[pick % len(self.wire)])

    @precondition(lambda self: self.wire)
    @rule(pick=st.integers(0, 255))
    def lose(self, pick: int) -> None:
        self.wire.pop(pick % len(self.wire))
        self.lost_one()


class LossyNetwork(WireFaults):
    """One channel over a network that loses, copies and reorders frames and
    acks, and changes route. Each life of the channel ends either in a gap
    timeout (the node would close the connection; a new one starts afresh) or,
    at teardown, with everything delivered once the loss stops."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self.ack_every, self.ack_delay = 1, 0.0
        self.new_life()

    def new_life(self) -> None:
        """Equal limits both ends: then the receiver must never overflow."""
        self.sender = Sender(MAX_BYTES, MAX_FRAMES)
        self.receiver = Receiver(MAX_BYTES, MAX_FRAMES, GAP, self.ack_every, self.ack_delay)
        self.pushed: list[bytes] = []
        self.delivered: list[bytes] = []
        self.wire: list[tuple[int, Payload]] = []  # data frames in flight, oldest first
        self.acks: list[int] = []  # acks in flight
        self.early: dict[int, float] = {}  # a model of the frames held early: seq -> arrival

    @initialize(ack_every=st.integers(1, 5), ack_delay=st.sampled_from([0.0, 0.1, 0.5, 2.0]),
                burst=st.lists(st.integers(0, 20), max_size=4))
    def configure(self, ack_every: int, ack_delay: float, burst: list[int]) -> None:
        """Every run starts with some traffic, so that few are spent on nothing."""
        self.ack_every, self.ack_delay = ack_every, ack_delay
        self.new_life()
        for extra in burst:
            self.push(extra, view=False)

    # the sending node

    @precondition(lambda self: not self.sender.full)
    @rule(extra=st.integers(0, 100), view=st.booleans())
    def push(self, extra: int, view: bool) -> None:
        """The node sends a frame (it pushes nothing while the sender is full)."""
        s = self.sender
        data = s.next_seq.to_bytes(4, "big") + bytes(extra)
        before = (s.next_seq, s.bytes, s.frames)
        if s.frames and (s.bytes + len(data) > MAX_BYTES or s.frames >= MAX_FRAMES):
            with pytest.raises(SequenceError) as err:
                s.push(data)
            assert reason(err) == "retransmit_overflow"
            assert (s.next_seq, s.bytes, s.frames) == before
            OUTCOMES["retransmit_overflow"] += 1
            return
        payload = memoryview(data) if view else data
        assert s.push(payload) == before[0]
        self.pushed.append(data)
        self.wire.append((before[0], payload))
        if len(data) > MAX_BYTES:
            OUTCOMES["big_frame"] += 1

    @precondition(lambda self: self.sender.frames and len(self.wire) <= 2 * MAX_FRAMES)
    @rule(lose_in_flight=st.booleans())
    def reroute(self, lose_in_flight: bool) -> None:
        """The path changed: what was in flight may be lost with the old one,
        and everything unacknowledged goes again along the new one."""
        if lose_in_flight:
            self.wire.clear()
        self.wire += self.sender.unacked()
        OUTCOMES["reroute"] += 1

    @precondition(lambda self: self.acks)
    @rule(pick=st.integers(0, 255), copy=st.booleans())
    def ack_arrives(self, pick: int, copy: bool) -> None:
        """Any ack in flight, so acks are reordered; a copy stays behind if ``copy``."""
        i = pick % len(self.acks)
        upto = self.acks[i] if copy else self.acks.pop(i)
        s, before = self.sender, (self.sender.acked, self.sender.bytes)
        freed = s.ack(upto)
        assert s.acked == max(before[0], upto) and freed == before[1] - s.bytes
        if upto <= before[0]:
            OUTCOMES["stale_ack"] += 1

    @precondition(lambda self: self.acks)
    @rule(pick=st.integers(0, 255))
    def ack_lost(self, pick: int) -> None:
        self.acks.pop(pick % len(self.acks))

    # the network

    @precondition(lambda self: self.wire)
    @rule()
    def deliver_oldest(self) -> None:
        self.arrive(*self.wire.pop(0))

    @precondition(lambda self: len(self.wire) >= 2)
    @rule(pick=st.integers(0, 255))
    def overtake(self, pick: int) -> None:
        """A frame other than the oldest in flight arrives first."""
        self.arrive(*self.wire.pop(1 + pick % (len(self.wire) - 1)))

    # the receiving node

    def arrive(self, seq: int, payload: Payload) -> None:
        r = self.receiver
        if seq > r.expected and seq not in self.early:
            self.early[seq] = self.now
        OUTCOMES["duplicate" if seq < r.expected else "early" if seq > r.expected else "next"] += 1
        self.delivered += [bytes(p) for p in r.receive(seq, payload, self.now)]
        self.early = {s: t for s, t in self.early.items() if s >= r.expected}
        self.take_ack()

    def take_ack(self) -> None:
        upto = self.receiver.take_ack(self.now)
        if upto is not None:
            assert upto == self.receiver.expected
            self.acks.append(upto)

    @rule(dt=st.one_of(st.sampled_from([0.0, 0.1, GAP]), st.floats(0, 1.5 * GAP)))
    def time_passes(self, dt: float) -> None:
        """The receiver's timer; a gap left open too long ends this life."""
        self.now += dt
        oldest = min(self.early.values(), default=None)
        if oldest is not None and self.now >= oldest + GAP:
            with pytest.raises(SequenceError) as err:
                self.receiver.check(self.now)
            assert reason(err) == "gap_timeout"
            OUTCOMES["gap_timeout"] += 1
            self.new_life()
            return
        self.receiver.check(self.now)
        deadline, sent = self.receiver.deadline(), len(self.acks)
        self.take_ack()  # an ack is due exactly when the deadline has passed
        assert (len(self.acks) > sent) == (deadline is not None and deadline <= self.now)

    @precondition(lambda self: self.early)
    @rule()
    def stall(self) -> None:
        """A frame was lost where no route change could tell: the gap stays
        open, and a gap_timeout later the receiver gives up."""
        self.time_passes(GAP)
        assert not self.pushed

    # invariants

    @invariant()
    def delivered_exactly_a_prefix_of_what_was_pushed(self) -> None:
        r = self.receiver
        assert self.delivered == self.pushed[:len(self.delivered)]
        assert len(self.delivered) == r.expected == r.delivered

    @invariant()
    def acks_trail_deliveries(self) -> None:
        s, r = self.sender, self.receiver
        assert s.acked <= r.expected <= s.next_seq
        assert all(upto <= r.expected for upto in self.acks)

    @invariant()
    def memory_is_bounded(self) -> None:
        s, r = self.sender, self.receiver
        assert s.frames == s.next_seq - s.acked <= MAX_FRAMES
        assert s.bytes == sum(map(len, self.pushed[s.acked:]))
        assert s.bytes <= MAX_BYTES or s.frames == 1
        assert r.buffered_frames == len(self.early) <= MAX_FRAMES
        assert r.buffered_bytes <= MAX_BYTES
        assert len(r._arrivals) <= 2 * MAX_FRAMES

    @invariant()
    def gap_dates_from_the_oldest_frame_held(self) -> None:
        assert self.receiver.gap_opened == min(self.early.values(), default=None)

    def teardown(self) -> None:
        """The loss stops: what is in flight arrives, then everything
        unacknowledged again; then the acks come back."""
        self.wire += self.sender.unacked()
        for seq, payload in self.wire:
            self.arrive(seq, payload)
        self.wire.clear()
        self.now += self.ack_delay
        self.receiver.check(self.now)
        self.take_ack()
        for upto in self.acks:
            self.sender.ack(upto)
        assert self.delivered == self.pushed
        s = self.sender
        assert (s.acked, s.frames, s.bytes) == (len(self.pushed), 0, 0)
        assert self.receiver.buffered_frames == 0 and self.receiver.deadline() is None
        OUTCOMES["complete"] += 1


def test_lossy_network_with_route_changes() -> None:
    OUTCOMES.clear()
    run_state_machine_as_test(LossyNetwork, settings=settings(
        max_examples=150, stateful_step_count=60, deadline=None))
    assert set(OUTCOMES) == {
        "complete", "gap_timeout", "retransmit_overflow", "big_frame", "reroute",
        "stale_ack", "duplicate", "early", "next"}, OUTCOMES


# --- order per flow, barriers, skips ----------------------------------------------------

#: flows of the machine below: 0 is the barrier flow; 3 and 4 accept losses
FLOWS, LOSSY_FLOWS = (0, 2, 3, 4), (3, 4)
FLOW_OUTCOMES: Counter[str] = Counter()


class FlowsOverLossyNetwork(WireFaults):
    """One channel carrying several flows and barriers over a network that
    loses, copies and reorders frames and acks and changes route; gaps are
    reported, and the sender gives up the lossy frames they name. Every
    flow's deliveries are in order and once each; a barrier comes after
    everything sent before it and before everything sent after it; in the
    end everything arrives but what was given up, and the sender told each
    flow exactly how many of its messages that was (a frame given up that
    was still on its way may arrive before its skip: then it was not lost,
    and the acks' record of the skips taken says so), however many acks
    were lost."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self.new_life()

    def new_life(self) -> None:
        self.sender = Sender(MAX_BYTES, MAX_FRAMES)
        self.receiver = Receiver(MAX_BYTES, MAX_FRAMES, GAP, 1, 0.0, report_after=GAP / 2)
        self.pushed: list[tuple[int, int]] = []  # (flow, seq) in push order
        self.delivered: list[tuple[int, int]] = []
        self.told: Counter[int] = Counter()
        self.skipped: set[int] = set()
        self.wire: list[tuple[int, Payload, int, bool]] = []
        self.acks: list[tuple[int, skips.Record | None]] = []

    @precondition(lambda self: not self.sender.full)
    @rule(flow=st.sampled_from(FLOWS))
    def push(self, flow: int) -> None:
        s = self.sender
        seq = s.next_seq
        data = bytes((flow,)) + seq.to_bytes(4, "big")
        got, after = s.push_frame(data, flow, 1 if flow in LOSSY_FLOWS else 0)
        assert got == seq and after < seq
        self.pushed.append((flow, seq))
        self.wire.append((seq, data, after, False))

    @precondition(lambda self: self.sender.frames and len(self.wire) <= 2 * MAX_FRAMES)
    @rule(lose_in_flight=st.booleans())
    def reroute(self, lose_in_flight: bool) -> None:
        if lose_in_flight:
            self.wire.clear()
        self.wire += self.sender.resends()

    @precondition(lambda self: self.acks)
    @rule(pick=st.integers(0, 255), fate=st.sampled_from(["arrives", "copied", "lost"]))
    def ack_arrives(self, pick: int, fate: str) -> None:
        i = pick % len(self.acks)
        if fate == "lost":
            self.acks.pop(i)
        else:
            self.apply_ack(self.acks[i] if fate == "copied" else self.acks.pop(i))

    def apply_ack(self, ack: tuple[int, skips.Record | None]) -> None:
        self.sender.ack(*ack)
        self.told.update(self.sender.take_lost())

    @precondition(lambda self: self.wire)
    @rule(pick=st.integers(0, 255))
    def arrive(self, pick: int) -> None:
        self.receive(*self.wire.pop(pick % len(self.wire)))

    def lost_one(self) -> None:
        FLOW_OUTCOMES["lost_frame"] += 1

    def receive(self, seq: int, payload: Payload, after: int, skip: bool) -> None:
        r = self.receiver
        for p in r.receive(seq, payload, self.now, after, skip):
            self.delivered.append((p[0], int.from_bytes(p[1:5], "big")))
        if skip:
            FLOW_OUTCOMES["skip_arrived"] += 1
        upto = r.take_ack(self.now)
        if upto is not None:
            # as the node sends it: the record of the skips taken, encoded
            record = skips.decode(r.taken.encode()) if r.taken else None
            self.acks.append((upto, record))

    @rule(dt=st.sampled_from([0.1, GAP / 2, GAP]))
    def time_passes(self, dt: float) -> None:
        """Time passes as the node's timer sees it: up to ``dt``, but no
        further than the receiver's deadline, so that a gap report is made
        when due and what it starts (skips on their way) can happen before
        the gap times out. A report goes to the sender; a gap open past
        gap_timeout ends this life, as the node closes it."""
        r = self.receiver
        due = r.deadline()
        self.now = self.now + dt if due is None else min(self.now + dt, max(self.now, due))
        missing = r.take_gap(self.now)
        if missing is not None:
            held = self.sender.skip(missing)
            if held is None:
                FLOW_OUTCOMES["gap_kept"] += 1
            else:
                FLOW_OUTCOMES["gap_skipped"] += 1
                for seq, _payload, after, skip in self.sender.resends():
                    if skip and seq not in self.skipped:
                        self.skipped.add(seq)
                        self.wire.append((seq, b"", after, True))
        try:
            r.check(self.now)
        except SequenceError as err:
            assert err.reason == "gap_timeout"
            FLOW_OUTCOMES["gap_timeout"] += 1
            self.new_life()

    @invariant()
    def each_flow_in_order_once_and_barriers_kept(self) -> None:
        assert len(set(self.delivered)) == len(self.delivered)
        position = {item: i for i, item in enumerate(self.pushed)}
        for flow in FLOWS:
            mine = [position[d] for d in self.delivered if d[0] == flow]
            assert mine == sorted(mine)
        for i, item in enumerate(self.delivered):
            if item[0] == 0:  # a barrier: nothing after it before, nothing before it after
                at = position[item]
                assert all(position[d] < at for d in self.delivered[:i])
                assert all(position[d] > at for d in self.delivered[i + 1:])

    def teardown(self) -> None:
        """The loss stops: what is in flight and everything unacknowledged
        arrives, then every ack still on its way."""
        self.wire += self.sender.resends()
        for frame_ in self.wire:
            self.receive(*frame_)
        for ack in self.acks:
            self.apply_ack(ack)
        assert self.sender.frames == 0
        given_up = {seq for _, seq in self.pushed} - {seq for _, seq in self.delivered}
        assert given_up <= self.skipped
        if given_up != self.skipped:
            FLOW_OUTCOMES["skipped_but_arrived"] += 1
        flow_of = dict((seq, flow) for flow, seq in self.pushed)
        assert self.told == Counter(flow_of[seq] for seq in given_up)
        assert all(flow in LOSSY_FLOWS for flow, seq in self.pushed if seq in self.skipped)
        FLOW_OUTCOMES["complete"] += 1


def test_flows_over_a_lossy_network() -> None:
    FLOW_OUTCOMES.clear()
    run_state_machine_as_test(FlowsOverLossyNetwork, settings=settings(
        max_examples=200, stateful_step_count=60, deadline=None))
    assert {"complete", "gap_kept", "gap_skipped", "skip_arrived", "gap_timeout",
            "lost_frame"} <= set(FLOW_OUTCOMES), FLOW_OUTCOMES


@pytest.mark.parametrize("first", ["frame", "skip"])
def test_a_process_is_told_only_of_a_skip_that_took_its_frames_place(first: str) -> None:
    """A lossy frame is given up while a copy of it is still on its way.
    If the copy arrives first it is delivered, the skip is dropped as a
    copy, and nobody is told of a loss; if the skip arrives first, the copy
    is dropped and its flow is told of one lost message."""
    s = Sender(MAX_BYTES, MAX_FRAMES)
    r = Receiver(MAX_BYTES, MAX_FRAMES, GAP, 1, 0.0, report_after=GAP / 2)
    seq0, after0 = s.push_frame(b"lossy", 5, 1)
    seq1, after1 = s.push_frame(b"other", 7)
    assert r.receive(seq1, b"other", 0.0, after1) == [b"other"]  # overtakes frame 0
    missing = r.take_gap(GAP / 2)
    assert missing == [(seq0, seq1)]
    assert s.skip(missing) == {5: 1}
    [(_, skip_payload, skip_after, is_skip)] = [h for h in s.resends() if h[3]]
    assert is_skip and skip_payload == b""
    arrivals = [(b"lossy", False), (skip_payload, True)]
    if first == "skip":
        arrivals.reverse()
    delivered = []
    for payload, skip in arrivals:
        delivered += r.receive(seq0, payload, GAP / 2, skip_after if skip else after0, skip)
    upto = r.take_ack(GAP / 2)
    assert upto == 2
    record = skips.decode(r.taken.encode()) if r.taken else None
    s.ack(upto, record)
    if first == "frame":
        assert delivered == [b"lossy"] and s.take_lost() == {}
    else:
        assert delivered == [] and s.take_lost() == {5: 1}
    assert s.take_lost() == {}  # told once
