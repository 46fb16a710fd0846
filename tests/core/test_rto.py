"""The wait for an acknowledgement (:mod:`pydist.core.rto`): RFC 6298's
estimator, Karn's rule, and its floor and ceiling."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pydist.core.rto import Rto


def test_the_floor_until_a_first_sample_then_the_round_trip() -> None:
    rto = Rto(0.5, 1.0)
    assert rto.timeout == 0.5 and rto.srtt is None
    rto.sent(0, 10.0)
    rto.sent(1, 10.1)  # one frame at a time is timed
    rto.acked(1, 10.2)  # covers frame 0: a sample of 0.2
    assert rto.srtt == pytest.approx(0.2) and rto.rttvar == pytest.approx(0.1)
    assert rto.timeout == pytest.approx(0.6)  # 0.2 + 4 * 0.1
    rto.acked(2, 10.3)  # nothing timed: no sample
    assert rto.srtt == pytest.approx(0.2)


def test_a_slow_path_raises_the_wait_up_to_the_ceiling() -> None:
    rto = Rto(0.5, 1.0)
    for i in range(20):
        rto.sent(i, i * 1.0)
        rto.acked(i + 1, i * 1.0 + 0.4)  # 400 ms round trips
    assert rto.srtt == pytest.approx(0.4)
    assert 0.5 <= rto.timeout < 0.6  # the deviation decays: the floor rules
    rto.sent(20, 30.0)
    rto.acked(21, 31.5)  # one very slow ack
    assert rto.timeout == 1.0


def test_karns_rule_a_frame_sent_again_is_not_timed() -> None:
    rto = Rto(0.1, 5.0)
    rto.sent(0, 0.0)
    rto.resent()
    rto.acked(1, 3.0)  # the ack may answer the copy: no sample
    assert rto.srtt is None and rto.timeout == 0.1
    rto.sent(1, 3.0)
    rto.acked(1, 3.5)  # does not cover frame 1
    assert rto.srtt is None
    rto.acked(2, 3.2)
    assert rto.srtt == pytest.approx(0.2)


@given(st.lists(st.tuples(st.floats(0.0, 5.0), st.booleans()), max_size=50),
       st.floats(0.01, 1.0), st.floats(1.0, 10.0))
def test_the_wait_stays_within_floor_and_ceiling(
        trips: list[tuple[float, bool]], floor: float, ceiling: float) -> None:
    rto = Rto(floor, ceiling)
    now, seq = 0.0, 0
    for trip, lost in trips:
        rto.sent(seq, now)
        if lost:
            rto.resent()
        now += trip
        seq += 1
        rto.acked(seq, now)
        assert floor <= rto.timeout <= ceiling
        assert rto.srtt is None or rto.srtt >= 0


def test_a_wait_that_ran_out_is_doubled_until_a_clean_sample() -> None:
    """A path slower than the floor: the first frame times out and is sent
    again (not timed); the doubled wait lets the next be timed."""
    rto = Rto(0.5, 1.0)
    rto.sent(0, 0.0)
    rto.expired()
    rto.resent()
    assert rto.timeout == 1.0
    rto.acked(1, 0.7)  # no sample: the wait stays doubled
    assert rto.timeout == 1.0 and rto.srtt is None
    rto.sent(1, 0.7)
    rto.acked(2, 1.4)
    assert rto.srtt == pytest.approx(0.7) and rto.timeout == 1.0  # 0.7 + 4 * 0.35, capped
    rto.expired()
    assert rto.timeout == 1.0  # never past the ceiling
