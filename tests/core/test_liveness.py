"""Link liveness verdicts and the deadline a shell may sleep until."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pydist.core.liveness import GAP_HALF_LIFE, Liveness, Verdict

FAST = settings(max_examples=200, deadline=None)

# Times in whole 1/64 s steps, so that sums and differences are exact floats
# and the boundary cases test the rule, not rounding.
ticks = st.integers(0, 10_000).map(lambda n: n / 64)


@pytest.mark.parametrize(("interval", "timeout"), [
    (0.0, 1.0), (-0.1, 1.0), (1.0, 1.0), (2.0, 1.0), (0.5, 0.0), (0.5, -1.0),
])
def test_invalid_interval_or_timeout(interval: float, timeout: float) -> None:
    with pytest.raises(ValueError):
        Liveness(interval, timeout)


def test_valid_configuration() -> None:
    live = Liveness(0.1, 0.6)
    assert (live.interval, live.timeout) == (0.1, 0.6)


LIVE = Liveness(interval=0.25, timeout=1.0)


@pytest.mark.parametrize(("now", "last_rx", "last_tx", "verdict"), [
    (10.0, 10.0, 10.0, Verdict.ALIVE),
    (10.0625, 10.0, 10.0, Verdict.ALIVE),
    (10.125, 10.0, 10.0, Verdict.SEND_HEARTBEAT),  # half an interval reached exactly
    (10.5, 10.0, 10.375, Verdict.SEND_HEARTBEAT),
    (10.5, 10.0, 10.4375, Verdict.ALIVE),  # sent recently enough
    (10.875, 10.0, 10.875, Verdict.ALIVE),
    (11.0, 10.0, 10.875, Verdict.DEAD),  # timeout reached exactly
    (11.0, 10.0, 11.0, Verdict.DEAD),  # sending does not keep a link alive
    (20.0, 19.5, 10.0, Verdict.SEND_HEARTBEAT),  # receiving does not excuse silence
])
def test_verdicts(now: float, last_rx: float, last_tx: float, verdict: Verdict) -> None:
    assert LIVE.verdict(now, last_rx, last_tx) is verdict


@pytest.mark.parametrize(("now", "beat"), [
    (0.0, 0.25), (0.1, 0.25), (0.25, 0.5), (10.3, 10.5), (10.4999, 10.5),
])
def test_beats_are_multiples_of_the_interval(now: float, beat: float) -> None:
    assert LIVE.next_beat(now) == pytest.approx(beat)
    assert LIVE.next_beat(now) > now


@pytest.mark.parametrize(("now", "last_rx", "deadline"), [
    (10.0, 10.0, 10.25),  # the next beat
    (10.9, 10.0, 11.0),  # the silence bound comes first
    (10.8, 10.0, 11.0),
])
def test_deadlines(now: float, last_rx: float, deadline: float) -> None:
    assert LIVE.deadline(now, last_rx) == pytest.approx(deadline)


@FAST
@given(st.floats(0, 1e6, allow_nan=False), st.sampled_from([0.1, 0.05, 0.25, 0.3, 1.0]))
def test_the_next_beat_is_always_ahead(now: float, interval: float) -> None:
    """Whatever the rounding, a timer woken at a beat finds the next one
    later: the shell never spins on a beat in the past."""
    live = Liveness(interval, interval * 6)
    beat = live.next_beat(now)
    assert now < beat <= now + interval * (1 + 1e-9)
    assert live.next_beat(beat) > beat


@FAST
@given(st.floats(0, 1e6, allow_nan=False), st.floats(0.01, 10, allow_nan=False))
def test_dead_at_its_own_deadline(last_rx: float, timeout: float) -> None:
    """At the silence bound the deadline named, the verdict is DEAD: the
    two use the same sum, so a float difference cannot fall short of it."""
    live = Liveness(timeout / 6, timeout)
    due = last_rx + timeout
    assert live.verdict(due, last_rx, last_rx) is Verdict.DEAD
    assert live.deadline(last_rx, last_rx) <= due


@FAST
@given(ticks, ticks, ticks)
def test_verdict_rule(now: float, last_rx: float, last_tx: float) -> None:
    verdict = LIVE.verdict(now, last_rx, last_tx)
    if now - last_rx >= 1.0:
        assert verdict is Verdict.DEAD
    elif now - last_tx >= 0.125:
        assert verdict is Verdict.SEND_HEARTBEAT
    else:
        assert verdict is Verdict.ALIVE


STRETCHY = Liveness(interval=0.1, timeout=0.6, max_timeout=3.0)


@pytest.mark.parametrize(("gap", "bound"), [
    (0.0, 0.6), (0.1, 0.6), (0.15, 0.6),  # a clean link: the plain timeout
    (0.3, 1.2), (0.45, 1.8),  # a link that showed a slow spell gets room for it
    (0.75, 3.0), (10.0, 3.0),  # never past the maximum
])
def test_the_silence_bound_stretches_with_the_gaps_seen(gap: float, bound: float) -> None:
    assert STRETCHY.silence_bound(gap) == pytest.approx(bound)


def test_no_maximum_means_no_stretch() -> None:
    assert LIVE.silence_bound(100.0) == LIVE.timeout


def test_a_maximum_below_the_timeout_means_no_stretch() -> None:
    """heartbeat_timeout raised alone, past the default maximum: it holds."""
    live = Liveness(0.1, 5.0, max_timeout=3.0)
    assert live.silence_bound(0.0) == live.silence_bound(100.0) == 5.0


def test_a_gap_is_half_forgotten_after_its_half_life() -> None:
    gap = 1.0
    for _ in range(round(GAP_HALF_LIFE / STRETCHY.interval)):
        gap *= STRETCHY.decay
    assert gap == pytest.approx(0.5)


@FAST
@given(st.floats(0, 100, allow_nan=False), st.floats(0, 100, allow_nan=False))
def test_the_bound_is_monotonic_and_bounded(a: float, b: float) -> None:
    low, high = sorted((a, b))
    assert STRETCHY.timeout <= STRETCHY.silence_bound(low) <= STRETCHY.silence_bound(high)
    assert STRETCHY.silence_bound(high) <= STRETCHY.max_timeout


@pytest.mark.parametrize(("live", "after"), [
    (STRETCHY, 0.15),  # past a clean link's longest gap, 1.5 beats
    (Liveness(0.2, 0.6), 0.3),
    (Liveness(0.5, 0.6), 0.3),  # beats far apart: by half the timeout still
])
def test_a_link_is_suspected_past_a_clean_gap_and_by_half_the_timeout(
        live: Liveness, after: float) -> None:
    assert live.suspect_after == pytest.approx(after)
