"""The back-off of route computations and originations (RFC 8405's model):
a single change is acted on at once, a burst costs far fewer runs than it
has changes, and no change is ever lost. Counters prove it, not timings;
the clock is virtual.
"""

from __future__ import annotations

import itertools
from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from pydist.core import lsdb
from pydist.core.backoff import Backoff
from pydist.core.channels import LinkKey
from pydist.core.lsdb import Lsp
from pydist.core.router import Router, origination_backoff
from pydist.core.wire import Kind

FAST = settings(max_examples=60, deadline=None)
ME = b"me@h"


def router(budget: int = 0, now: float = 0.0) -> Router:
    """A router whose recomputations get no budget: the delays always apply."""
    spf = Backoff(short=0.020, long=0.5, learn=0.5, holddown=1.0, budget=budget)
    r = Router(ME, now, lifetime=60.0, sync_interval=5.0, max_nodes=4096, max_neighbours=64,
               stats=Counter(), spf_delays=spf)
    r.dirty = False
    return r


def key(n: int) -> LinkKey:
    return n


def lsp(origin: bytes, seq: int, *neighbours: bytes) -> bytes:
    return lsdb.encode(Lsp(origin, seq, 60.0, tuple((n, 10) for n in sorted(neighbours))))


def run(r: Router, now: float) -> bool:
    """What the node does after an input and at its deadline: settle."""
    return r.settle(now) is not None


def quiet(r: Router, now: float) -> float:
    """Let everything put off run when due, then a quiet spell pass: the time after it."""
    run(r, now)
    while r.dirty or r.origination.pending:
        now = max(now, min(r.spf.due if r.dirty else float("inf"), r.origination.due))
        r.timer(now)
        run(r, now)
    return now + 2.0


# --- the schedule alone ----------------------------------------------------------

def test_first_change_after_quiet_runs_at_once() -> None:
    b = Backoff(short=0.02, long=0.5, learn=0.5, holddown=1.0)
    assert b.ask(10.0) == 10.0
    b.done(10.0)
    assert b.ask(10.001) == 10.02  # in the burst: coalesced, short delay
    assert b.ask(10.015) == 10.02  # asked again: the same run takes it in
    b.done(10.02)
    assert b.ask(10.7) == 10.7  # a run is due 0.5 s after the last even in churn
    b.done(10.7)
    assert b.ask(30.0) == 30.0  # quiet again: at once


def test_churn_backs_off_to_the_long_delay_and_recovers() -> None:
    b = Backoff(short=0.02, long=0.5, learn=0.3, holddown=1.0)
    now, runs = 0.0, []
    while now < 3.0:  # a change every 10 ms for 3 s
        due = b.ask(now)
        if due <= now:
            b.done(now)
            runs.append(now)
        now = round(now + 0.01, 6)
    gaps = [b - a for a, b in itertools.pairwise(runs)]
    assert max(gaps) >= 0.5 - 1e-9  # the long delay under churn
    assert len(runs) < 300 / 5  # far fewer runs than changes
    b.done(b.due if b.pending else now)
    assert b.ask(now + 1.5) == now + 1.5  # a quiet holddown later: at once


def test_budget_lets_cheap_work_run_at_once() -> None:
    b = Backoff(short=0.02, long=0.5, learn=0.5, holddown=1.0, budget=10)
    for i in range(5):
        assert b.ask(1.0 + i * 0.001) == 1.0 + i * 0.001
        b.done(1.0 + i * 0.001, work=2)
    assert b.ask(1.01) > 1.01  # 10 spent: the delays apply


# --- route computations -------------------------------------------------------------

def test_a_single_change_recomputes_at_once() -> None:
    r = router()
    now = quiet(r, 0.0)
    before = r.stats["route_computations"]
    r.neighbour_up(b"a@h", key(1), 10, now)
    assert run(r, now) and r.stats["route_computations"] == before + 1
    assert r.via == {b"a@h": b"a@h"}


@FAST
@given(st.integers(5, 14), st.floats(0.0, 0.0009))
def test_a_burst_costs_few_computations_and_loses_no_change(count: int, step: float) -> None:
    """``count`` LSPs (a chain behind neighbour a, within max_hops) arriving
    ``step`` apart: one recomputation at once, then one per short delay
    (20 ms) of the burst, and after the last every node is routed."""
    r = router()
    now = quiet(r, 0.0)
    r.neighbour_up(b"a@h", key(1), 10, now)
    run(r, now)
    now = quiet(r, now)
    before = r.stats["route_computations"]
    chain = [b"a@h"] + [b"n%d@h" % i for i in range(count)]
    for i, name in enumerate(chain):
        after = chain[i + 1] if i + 1 < len(chain) else None
        links = [x for x in (chain[i - 1] if i else ME, after) if x is not None]
        r.receive_lsp(key(1), lsp(name, 1, *links), now)
        run(r, now)
        now += step
    now = quiet(r, now)
    assert r.stats["route_computations"] - before <= 2 + int(count * step / 0.020) < count
    assert set(r.via) == set(chain) and all(n == b"a@h" for n in r.via.values())
    assert r.deadline() > now - 2.0  # nothing left due at the last run: no spin


def test_a_deferred_recomputation_is_in_the_deadline() -> None:
    r = router()
    now = quiet(r, 0.0)
    r.neighbour_up(b"a@h", key(1), 10, now)
    run(r, now)
    r.neighbour_up(b"b@h", key(2), 10, now + 0.001)
    assert not run(r, now + 0.001) and r.dirty
    due = r.deadline()
    assert now + 0.001 < due <= now + 0.001 + 0.020
    assert not run(r, due - 0.0001)
    assert run(r, due) and set(r.via) == {b"a@h", b"b@h"} and r.deadline() > due


def test_a_refresh_that_changes_nothing_computes_nothing() -> None:
    r = router()
    now = quiet(r, 0.0)
    r.neighbour_up(b"a@h", key(1), 10, now)
    r.receive_lsp(key(1), lsp(b"a@h", 1, ME), now)
    now = quiet(r, now)
    before = r.stats["route_computations"]
    r.receive_lsp(key(1), lsp(b"a@h", 2, ME), now)
    assert r.stats["lsp_new"] == 2 and not r.dirty
    assert not run(r, now) and r.stats["route_computations"] == before


# --- originations --------------------------------------------------------------------

def lsps_sent(r: Router) -> list[bytes]:
    sent = [payload for _, kind, payload in r.out if kind == Kind.LSP]
    r.out.clear()
    return sent


def test_originations_are_coalesced_and_the_last_state_goes_out() -> None:
    """A burst of neighbours coming up makes one LSP after the first, listing them all."""
    r = router()
    now = quiet(r, 0.0)
    r.out.clear()
    r.neighbour_up(b"a@h", key(1), 10, now)
    first = lsps_sent(r)
    assert len(first) == 1 and lsdb.decode(first[0], 64).neighbours == ((b"a@h", 10),)
    for i in range(2, 12):
        r.neighbour_up(b"x%d@h" % i, key(i), 10, now + i * 0.001)
    assert lsps_sent(r) == [] and r.origination.pending
    due = r.origination.due
    assert due == now + origination_backoff().short and r.deadline() <= due
    r.timer(due)
    sent = lsps_sent(r)
    assert len(sent) == 11  # one LSP, flooded to each of the 11 neighbours
    assert {lsdb.decode(p, 64).neighbours for p in sent} == {
        tuple(sorted([(b"a@h", 10)] + [(b"x%d@h" % i, 10) for i in range(2, 12)]))}


def test_a_node_starting_sends_one_lsp_for_its_first_neighbours() -> None:
    r = Router(ME, 0.0, lifetime=60.0, sync_interval=5.0, max_nodes=64, max_neighbours=64,
               stats=Counter())
    r.advertise(b"127.0.0.1:4370", 0.0)
    for i in range(4):
        r.neighbour_up(b"x%d@h" % i, key(i), 10, 0.003)
    assert lsps_sent(r) == [] and r.db.get(ME) is None
    r.timer(r.origination.due)
    assert len({p for p in lsps_sent(r)}) == 1 and len(r.db.get(ME).neighbours) == 4  # type: ignore[union-attr]


def test_refreshes_are_jittered_and_reproducible() -> None:
    def refresh(name: bytes) -> float:
        r = Router(name, 0.0, lifetime=60.0, sync_interval=5.0, max_nodes=64,
                   max_neighbours=64, stats=Counter())
        r.timer(0.0)  # the first refresh is due at once: asked, put off
        r.timer(r.origination.due)
        return r.refresh_at - r.origination.ran
    times = [refresh(b"n%d@h" % i) for i in range(20)]
    assert all(15.0 <= t <= 20.0 for t in times) and len(set(times)) == 20
    assert times == [refresh(b"n%d@h" % i) for i in range(20)]


# --- duplicates ------------------------------------------------------------------------

def test_a_copy_of_a_held_lsp_is_not_decoded() -> None:
    """The second copy (another lifetime, same bytes otherwise) is counted a
    duplicate before decoding: a decoder that raises is never reached."""
    r = router()
    now = quiet(r, 0.0)
    r.neighbour_up(b"a@h", key(1), 10, now)
    r.neighbour_up(b"b@h", key(2), 10, now)
    r.out.clear()
    payload = lsp(b"c@h", 3, b"a@h", b"b@h")
    r.receive_lsp(key(1), payload, now)
    assert r.stats["lsp_new"] == 1 and len(lsps_sent(r)) == 1  # flooded to b
    copy = lsdb.with_lifetime(payload, b"c@h", 12.5)
    assert copy != payload
    original, lsdb.decode = lsdb.decode, None  # type: ignore[assignment]
    try:
        r.receive_lsp(key(2), copy, now)
    finally:
        lsdb.decode = original
    assert r.stats["lsp_duplicate"] == 1 and lsps_sent(r) == []
    other = lsp(b"c@h", 3, b"a@h")  # same sequence, other content: decoded, judged
    assert not r.db.duplicate(other)


def test_flooded_lsp_is_the_held_bytes_with_the_lifetime_left() -> None:
    payload = lsp(b"c@h", 3, b"a@h")
    again = lsdb.with_lifetime(payload, b"c@h", 7.25)
    decoded = lsdb.decode(again, 64)
    assert decoded.lifetime == 7.25 and again == lsdb.encode(decoded)
