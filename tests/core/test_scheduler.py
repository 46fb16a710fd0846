"""A link's scheduler: realtime first, then deficit round robin across flows;
every item sent once, in order within its flow, fairly, in bounded memory."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pydist.core.scheduler import Scheduler

FAST = settings(max_examples=150, deadline=None)
Item = tuple[str, int]  # (flow, number within the flow): tells the item apart


def scheduler(quantum: int = 10, max_bytes: int = 1000) -> Scheduler[str, Item]:
    return Scheduler(quantum, max_bytes)


def drain(s: Scheduler[str, Item]) -> list[Item]:
    out = []
    while (got := s.pop()) is not None:
        flow, item = got
        assert item[0] == flow
        out.append(item)
    return out


def push_all(s: Scheduler[str, Item], flow: str, sizes: list[int],
             realtime: bool = False) -> None:
    for size in sizes:
        assert s.push(flow, (flow, size), size, realtime)


# --- basics --------------------------------------------------------------------------

@pytest.mark.parametrize("args", [(0, 1), (1, 0), (-1, 5)])
def test_parameters_are_checked(args: tuple[int, int]) -> None:
    with pytest.raises(ValueError):
        Scheduler(*args)


def test_empty() -> None:
    s = scheduler()
    assert (len(s), s.queued_bytes, s.flows, s.pop()) == (0, 0, 0, None)


def test_negative_size_is_refused() -> None:
    s = scheduler()
    with pytest.raises(ValueError):
        s.push("a", ("a", 0), -1)
    assert len(s) == 0


def test_one_flow_is_fifo_and_accounted() -> None:
    s = scheduler(quantum=1)
    push_all(s, "a", [5, 1, 7, 0])
    assert (len(s), s.queued_bytes, s.flows) == (4, 13, 1)
    assert s.pop() == ("a", ("a", 5))
    assert (len(s), s.queued_bytes, s.flows) == (3, 8, 1)
    assert drain(s) == [("a", 1), ("a", 7), ("a", 0)]
    assert (len(s), s.queued_bytes, s.flows) == (0, 0, 0)


def test_items_are_kept_as_given() -> None:
    s: Scheduler[int, bytes] = Scheduler(10, 100)
    item = b"frame"
    s.push(7, item, len(item))
    got = s.pop()
    assert got is not None and got[0] == 7 and got[1] is item


def test_realtime_goes_first_in_its_own_order() -> None:
    s = scheduler()
    push_all(s, "a", [1, 2])
    assert s.push("b", ("b", 9), 9, realtime=True)
    assert s.push("a", ("a", 8), 8, realtime=True)
    assert s.flows == 2
    assert drain(s) == [("b", 9), ("a", 8), ("a", 1), ("a", 2)]


def test_realtime_pushed_later_overtakes_a_turn_under_way() -> None:
    s = scheduler(quantum=10)
    push_all(s, "a", [3, 3, 3])
    assert s.pop() == ("a", ("a", 3))
    s.push("b", ("b", 1), 1, realtime=True)
    assert drain(s) == [("b", 1), ("a", 3), ("a", 3)]


def test_push_refuses_past_max_bytes() -> None:
    s = scheduler(max_bytes=10)
    push_all(s, "a", [6])
    assert not s.push("b", ("b", 5), 5)
    assert not s.push("b", ("b", 5), 5, realtime=True)
    assert not s.push("b", ("b", 11), 11)
    assert (len(s), s.queued_bytes, s.flows) == (1, 6, 1)
    assert s.push("b", ("b", 4), 4)
    assert s.queued_bytes == 10
    s.pop()
    assert s.push("b", ("b", 5), 5)


# --- deficit round robin --------------------------------------------------------------

def test_turns_share_by_bytes() -> None:
    s = scheduler(quantum=10)
    push_all(s, "a", [10, 10, 10])
    push_all(s, "b", [5, 5, 5, 5, 5])
    assert drain(s) == [("a", 10), ("b", 5), ("b", 5), ("a", 10), ("b", 5), ("b", 5),
                        ("a", 10), ("b", 5)]


def test_credit_left_over_carries_to_the_next_turn() -> None:
    s = scheduler(quantum=10)
    push_all(s, "a", [6, 6, 6])
    push_all(s, "b", [10, 10, 10])
    # a: 10 credit, sends 6 (4 left); then 14: sends 6, 6 (2 left)
    assert drain(s) == [("a", 6), ("b", 10), ("a", 6), ("a", 6), ("b", 10), ("b", 10)]


def test_a_flow_that_runs_dry_forgets_its_credit() -> None:
    s = scheduler(quantum=10)
    push_all(s, "a", [1])
    push_all(s, "b", [10])
    assert drain(s) == [("a", 1), ("b", 10)]  # a had 9 left, now forgotten
    push_all(s, "a", [10, 10])
    push_all(s, "b", [10])
    assert drain(s) == [("a", 10), ("b", 10), ("a", 10)]


def test_a_new_flow_joins_at_the_end_of_the_round() -> None:
    s = scheduler(quantum=5)
    push_all(s, "a", [5, 5])
    push_all(s, "b", [5, 5])
    assert s.pop() == ("a", ("a", 5))
    push_all(s, "c", [5])
    assert drain(s) == [("b", 5), ("c", 5), ("a", 5), ("b", 5)]


def test_items_far_larger_than_the_quantum() -> None:
    """Rounds that would send nothing are skipped at once, not stepped through."""
    s = scheduler(quantum=1, max_bytes=10**12)
    push_all(s, "a", [10**9, 10**9])
    push_all(s, "b", [3 * 10**8, 10**9])
    assert drain(s) == [("b", 3 * 10**8), ("a", 10**9), ("b", 10**9), ("a", 10**9)]


def test_a_known_worst_window_exceeds_quantum_plus_largest() -> None:
    """Why the bound tested below is quantum + 2 * (largest - 1): a 29 to 5
    stretch, with quantum and largest 10."""
    s = scheduler(quantum=10)
    push_all(s, "a", [1, 10, 9, 10, 10])
    push_all(s, "b", [6, 5, 10, 10])
    got = drain(s)
    assert got[2:6] == [("a", 10), ("a", 9), ("b", 5), ("a", 10)]


# --- dropping -------------------------------------------------------------------------

def test_drop_flow_removes_its_items_of_both_kinds() -> None:
    s = scheduler()
    push_all(s, "a", [1, 2])
    push_all(s, "a", [3], realtime=True)
    push_all(s, "b", [4])
    push_all(s, "b", [5], realtime=True)
    assert s.drop_flow("a") == 6
    assert (len(s), s.queued_bytes, s.flows) == (2, 9, 1)
    assert drain(s) == [("b", 5), ("b", 4)]
    assert s.drop_flow("a") == 0 and s.drop_flow("zz") == 0


def test_drop_flow_that_has_the_turn() -> None:
    s = scheduler(quantum=10)
    push_all(s, "a", [4, 4, 4])
    push_all(s, "b", [10, 10])
    push_all(s, "c", [10])
    assert s.pop() == ("a", ("a", 4))  # a has the turn, 6 credit left
    assert s.drop_flow("a") == 8
    assert drain(s) == [("b", 10), ("c", 10), ("b", 10)]
    push_all(s, "a", [10, 4])  # back with no credit saved
    push_all(s, "b", [10])
    assert drain(s) == [("a", 10), ("b", 10), ("a", 4)]


def test_drop_if_removes_what_the_predicate_picks() -> None:
    s = scheduler(quantum=10)
    push_all(s, "a", [1, 2, 3])
    push_all(s, "a", [4, 5], realtime=True)
    push_all(s, "b", [2])
    assert s.drop_if(lambda item: item[1] % 2 == 0) == 8
    assert (len(s), s.queued_bytes, s.flows) == (3, 9, 1)
    assert drain(s) == [("a", 5), ("a", 1), ("a", 3)]
    assert s.drop_if(lambda item: True) == 0


def test_drop_if_empties_the_flow_that_has_the_turn() -> None:
    s = scheduler(quantum=10)
    push_all(s, "a", [1, 1])
    push_all(s, "b", [1])
    assert s.pop() == ("a", ("a", 1))
    assert s.drop_if(lambda item: item[0] == "a") == 1
    assert (s.flows, drain(s)) == (1, [("b", 1)])


# --- random workloads ---------------------------------------------------------------

FLOWS = "abcd"
push = st.tuples(st.just("push"), st.sampled_from(FLOWS), st.integers(0, 30),
                st.sampled_from([False, False, False, True]))
ops = st.lists(st.one_of(
    push, push, push,
    st.tuples(st.just("pop")), st.tuples(st.just("pop")),
    st.tuples(st.just("drop_flow"), st.sampled_from(FLOWS)),
    st.tuples(st.just("drop_if"), st.integers(2, 7)),
), min_size=5, max_size=80)


@FAST
@given(st.integers(1, 20), st.integers(30, 200), ops)
def test_every_item_once_in_flow_order_realtime_first(
        quantum: int, max_bytes: int, script: list[tuple[object, ...]]) -> None:
    """Against a model: per flow, the normal items and the realtime items in
    order; the scheduler may only interleave them."""
    s: Scheduler[str, tuple[str, int, int, bool]] = Scheduler(quantum, max_bytes)
    model: dict[tuple[str, bool], list[tuple[str, int, int, bool]]] = {}
    pushed = 0
    for op in script:
        if op[0] == "push":
            _, flow, size, rt = op
            assert isinstance(flow, str) and isinstance(size, int) and isinstance(rt, bool)
            item = (flow, pushed, size, rt)
            pushed += 1
            fits = s.queued_bytes + size <= max_bytes
            assert s.push(flow, item, size, rt) == fits
            if fits:
                model.setdefault((flow, rt), []).append(item)
        elif op[0] == "pop":
            got = s.pop()
            realtime_queued = any(q for (_, rt), q in model.items() if rt)
            if got is None:
                assert not any(model.values())
                continue
            flow, item = got
            assert item[0] == flow and item[3] == realtime_queued
            assert model[(flow, item[3])].pop(0) == item  # FIFO, and never twice
        elif op[0] == "drop_flow":
            flow = str(op[1])
            gone = model.pop((flow, False), []) + model.pop((flow, True), [])
            assert s.drop_flow(flow) == sum(i[2] for i in gone)
        else:
            modulo = op[1]
            assert isinstance(modulo, int)
            freed = 0
            for key, q in model.items():
                freed += sum(i[2] for i in q if i[1] % modulo == 0)
                model[key] = [i for i in q if i[1] % modulo != 0]

            def picked(item: tuple[str, int, int, bool], m: int = modulo) -> bool:
                return item[1] % m == 0

            assert s.drop_if(picked) == freed
        left = [i for q in model.values() for i in q]
        assert len(s) == len(left)
        assert s.queued_bytes == sum(i[2] for i in left) <= max_bytes
        assert s.flows == len({i[0] for i in left})
    rest = []
    while (got := s.pop()) is not None:
        rest.append(got[1])
    assert sorted(rest) == sorted(i for q in model.values() for i in q)


@FAST
@given(st.integers(1, 40), st.lists(st.lists(st.integers(1, 40), min_size=1, max_size=40),
                                    min_size=2, max_size=4))
def test_fairness_while_backlogged(quantum: int, flows: list[list[int]]) -> None:
    """Over any stretch of pops while every flow still has items queued, the
    bytes sent of any two flows differ by at most quantum + 2 * (largest - 1)."""
    s: Scheduler[int, int] = Scheduler(quantum, 10**6)
    for f, sizes in enumerate(flows):
        for size in sizes:
            s.push(f, size, size)
    largest = max(max(sizes) for sizes in flows)
    left = [len(sizes) for sizes in flows]
    sent = [[0] * len(flows)]  # bytes sent of each flow after each pop
    while all(left):
        got = s.pop()
        assert got is not None
        f, size = got
        left[f] -= 1
        sent.append(sent[-1][:])
        sent[-1][f] += size
    bound = quantum + 2 * (largest - 1)
    for a in range(len(flows)):
        for b in range(a + 1, len(flows)):
            diffs = [row[a] - row[b] for row in sent]
            assert max(diffs) - min(diffs) <= bound


def test_a_pop_with_a_limit_leaves_a_larger_next_item_next() -> None:
    s: Scheduler[str, int] = Scheduler(10, 1000)
    for flow, size in (("a", 5), ("a", 30), ("b", 5)):
        s.push(flow, size, size)
    assert s.pop(8) == ("a", 5)
    assert s.pop(8) == ("b", 5)  # a's 30 waits for its credit
    s.push("c", 40, 40, realtime=True)
    assert s.pop(39) is None and len(s) == 2
    assert s.pop() == ("c", 40)
    assert s.pop(29) is None
    assert s.pop(30) == ("a", 30)


@FAST
@given(st.integers(1, 20), st.lists(st.tuples(st.sampled_from(FLOWS), st.integers(0, 30),
                                              st.booleans()), min_size=1, max_size=40),
       st.lists(st.one_of(st.none(), st.integers(0, 30)), min_size=1, max_size=200))
def test_a_refused_pop_changes_nothing_of_the_order(
        quantum: int, items: list[tuple[str, int, bool]], limits: list[int | None]) -> None:
    """Pops with limits, skipping those refused, give the very sequence that
    plain pops give: a refusal neither loses an item nor reorders one."""
    plain: Scheduler[str, int] = Scheduler(quantum, 10**6)
    limited: Scheduler[str, int] = Scheduler(quantum, 10**6)
    for i, (flow, size, rt) in enumerate(items):
        plain.push(flow, i, size, rt)
        limited.push(flow, i, size, rt)
    expected = []
    while (got := plain.pop()) is not None:
        expected.append(got)
    sizes = [size for _, size, _ in items]
    seen = []
    for limit in limits:
        got = limited.pop(limit)
        if got is None:
            assert len(limited) == len(items) - len(seen)
            assert not len(limited) or limit is not None
            continue
        assert limit is None or sizes[got[1]] <= limit
        seen.append(got)
    while (got := limited.pop()) is not None:
        seen.append(got)
    assert seen == expected
