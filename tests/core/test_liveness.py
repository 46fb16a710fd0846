"""Link liveness verdicts and the deadline a shell may sleep until."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pydist.core.liveness import Liveness, Verdict

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
    (10.125, 10.0, 10.0, Verdict.ALIVE),
    (10.25, 10.0, 10.0, Verdict.SEND_HEARTBEAT),  # interval reached exactly
    (10.5, 10.0, 10.375, Verdict.ALIVE),  # sent recently enough
    (10.5, 10.0, 10.25, Verdict.SEND_HEARTBEAT),
    (10.875, 10.0, 10.875, Verdict.ALIVE),
    (11.0, 10.0, 10.875, Verdict.DEAD),  # timeout reached exactly
    (11.0, 10.0, 11.0, Verdict.DEAD),  # sending does not keep a link alive
    (20.0, 19.5, 10.0, Verdict.SEND_HEARTBEAT),  # receiving does not excuse silence
])
def test_verdicts(now: float, last_rx: float, last_tx: float, verdict: Verdict) -> None:
    assert LIVE.verdict(now, last_rx, last_tx) is verdict


@pytest.mark.parametrize(("last_rx", "last_tx", "deadline"), [
    (10.0, 10.0, 10.25),
    (10.0, 10.875, 11.0),
    (10.0, 10.75, 11.0),
    (10.0, 10.5, 10.75),
])
def test_deadlines(last_rx: float, last_tx: float, deadline: float) -> None:
    assert LIVE.deadline(last_rx, last_tx) == deadline


@FAST
@given(ticks, ticks, st.integers(0, 200).map(lambda n: n / 64))
def test_verdict_is_steady_until_the_deadline(last_rx: float, last_tx: float,
                                              ahead: float) -> None:
    """A shell that sleeps until ``deadline`` misses no change of verdict."""
    now = max(last_rx, last_tx)
    due = LIVE.deadline(last_rx, last_tx)
    first = LIVE.verdict(now, last_rx, last_tx)
    if first is Verdict.ALIVE:
        assert due > now
        t = min(now + ahead, due - 1 / 64)
        assert LIVE.verdict(t, last_rx, last_tx) is Verdict.ALIVE
        assert LIVE.verdict(due, last_rx, last_tx) is not Verdict.ALIVE


@FAST
@given(ticks, ticks, ticks)
def test_verdict_rule(now: float, last_rx: float, last_tx: float) -> None:
    verdict = LIVE.verdict(now, last_rx, last_tx)
    if now - last_rx >= 1.0:
        assert verdict is Verdict.DEAD
    elif now - last_tx >= 0.25:
        assert verdict is Verdict.SEND_HEARTBEAT
    else:
        assert verdict is Verdict.ALIVE
