"""The in-flight budget (:mod:`pydist.core.budget`): the floor on a short
path, the bandwidth-delay product on a long one, a slow link not buried
in queued data, and a fresh start after a loss or a route change."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pydist.core.budget import GAIN, RATE_HALF_LIFE, Budget
from pydist.core.rto import Rto

KIB = 1024
FLOOR, CEILING = 512 * KIB, 16 * 1024 * KIB


def run_path(budget: Budget, rtt: float, rate: float, rounds: int, start: float = 0.0
             ) -> float:
    """A sender that always has data, over a path of round trip ``rtt``
    and bottleneck ``rate`` (bytes/s): each round trip the budget's bytes
    go out and are acked at the rate the path allows. The time at the end."""
    now = start
    for _ in range(rounds):
        budget.rtt(rtt + max(0.0, budget.limit / rate - rtt))  # queueing, if any
        delivered = min(budget.limit, rate * rtt)
        now += max(rtt, budget.limit / rate)
        budget.acked(int(delivered), now)
    return now


def test_a_short_path_keeps_the_floor() -> None:
    budget = Budget(FLOOR, CEILING)
    run_path(budget, rtt=0.0005, rate=400e6, rounds=200)  # loopback
    assert budget.limit == FLOOR


def test_a_long_fast_path_grows_to_its_bandwidth_delay_product() -> None:
    budget = Budget(FLOOR, CEILING)
    run_path(budget, rtt=0.4, rate=20e6, rounds=30)  # 8 MB in flight fill it
    assert budget.limit >= 0.4 * 20e6  # at least one product: the path stays full
    assert budget.limit <= GAIN * 0.4 * 20e6 * 1.01


def test_growth_doubles_per_round_trip_like_slow_start() -> None:
    budget = Budget(FLOOR, CEILING)
    budget.rtt(0.4)
    limits = []
    now = 0.0
    budget.acked(0, now)
    for _ in range(4):
        now += 0.4
        budget.acked(budget.limit, now)  # the path took all it was given
        limits.append(budget.limit)
    assert limits == [2 * FLOOR, 4 * FLOOR, 8 * FLOOR, 16 * FLOOR]


def test_a_slow_link_does_not_get_a_budget_sized_for_its_delay() -> None:
    """10 Mbit/s with 400 ms: a product of 500 kB; a budget from the delay
    alone would queue seconds, past the retransmission timeout."""
    budget = Budget(FLOOR, CEILING)
    run_path(budget, rtt=0.4, rate=1.25e6, rounds=50)
    assert budget.limit <= max(FLOOR, GAIN * 0.4 * 1.25e6 * 1.01)


def test_the_ceiling_holds() -> None:
    budget = Budget(FLOOR, CEILING)
    run_path(budget, rtt=0.5, rate=1e9, rounds=40)
    assert budget.limit == CEILING


def test_a_path_that_got_slower_is_believed_within_a_few_half_lives() -> None:
    budget = Budget(FLOOR, CEILING)
    now = run_path(budget, rtt=0.4, rate=20e6, rounds=30)
    high = budget.limit
    run_path(budget, rtt=0.4, rate=1e6, rounds=int(4 * RATE_HALF_LIFE / 0.4), start=now)
    assert budget.limit < high / 8


def test_reset_starts_again_from_the_floor() -> None:
    budget = Budget(FLOOR, CEILING)
    run_path(budget, rtt=0.4, rate=20e6, rounds=30)
    budget.reset()
    assert (budget.limit, budget.min_rtt, budget.rate) == (FLOOR, None, 0.0)


def test_rto_reports_the_round_trips_it_measures() -> None:
    rto = Rto(0.5, 1.0)
    rto.sent(0, 1.0)
    assert rto.acked(1, 1.25) == 0.25
    assert rto.acked(2, 1.5) is None  # nothing timed


@given(st.lists(st.tuples(st.floats(0.0, 2.0), st.integers(0, 10**8),
                          st.floats(1e-6, 5.0)), max_size=60))
def test_always_between_floor_and_ceiling(events: list[tuple[float, int, float]]) -> None:
    budget = Budget(FLOOR, CEILING)
    now = 0.0
    for dt, acked, rtt in events:
        now += dt
        budget.rtt(rtt)
        budget.acked(acked, now)
        assert FLOOR <= budget.limit <= CEILING
