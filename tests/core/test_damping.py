"""Dampening of flapping links (:mod:`pydist.core.damping`): the penalty's
arithmetic, and a flapping link in a simulated ring kept out of the
routes while it flaps, and used again once it stays up."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pydist.core.config import Config
from pydist.core.damping import DAMPED_COST, FORGET, REUSE, SUPPRESS, Damping
from pydist_tools.simnet import SimNet

A = b"a@h"


def test_one_or_two_failures_apart_are_acted_on_at_once() -> None:
    d = Damping(5.0, 20.0)
    assert not d.failed(A, 0.0)
    assert not d.failed(A, 5.0)  # 0.5 + 1: below 2
    assert not d.suppressed
    assert d.release(100.0) == [] and d.deadline() == math.inf


def test_failures_close_together_suppress_until_the_penalty_decays() -> None:
    d = Damping(5.0, 20.0)
    d.failed(A, 0.0)
    assert not d.failed(A, 1.0)  # 2^-0.2 + 1 = 1.87: not yet
    assert d.failed(A, 2.0)  # 1.87 * 2^-0.2 + 1 = 2.63
    assert A in d.suppressed
    penalty = d.penalty(A, 2.0)
    assert penalty == pytest.approx((2 ** -0.2 + 1) * 2 ** -0.2 + 1)
    reuse = 2.0 + 5.0 * math.log2(penalty / REUSE)
    assert d.deadline() == pytest.approx(reuse) == d.reuse_at(A)
    assert d.release(reuse - 0.01) == []
    assert d.release(reuse) == [A]
    assert not d.suppressed


def test_never_suppressed_longer_than_the_maximum_after_the_last_failure() -> None:
    d = Damping(5.0, 20.0)
    for t in range(100):  # ten a second: the penalty reaches its ceiling
        d.failed(A, t / 10)
    assert d.reuse_at(A) - 9.9 == pytest.approx(20.0)


def test_a_half_life_of_zero_turns_it_off() -> None:
    d = Damping(0.0, 20.0)
    assert not any(d.failed(A, t / 10) for t in range(50))
    assert d.deadline() == math.inf


@given(st.lists(st.floats(0.0, 60.0, allow_nan=False), min_size=1, max_size=40),
       st.floats(1.0, 30.0), st.floats(0.0, 60.0))
def test_the_penalty_rule(gaps: list[float], half_life: float, max_suppress: float) -> None:
    """Suppressed exactly while the penalty, 1 per failure halving every
    half-life and capped, has reached SUPPRESS and not decayed to REUSE."""
    d = Damping(half_life, max_suppress)
    ceiling = REUSE * 2 ** (max_suppress / half_life)
    now, model, suppressed = 0.0, 0.0, False
    for gap in gaps:
        before, now = now, now + gap
        model *= 2 ** (-(now - before) / half_life)  # the gap as the clock has it
        released = d.release(now)
        if suppressed and abs(model - REUSE) > 1e-6:  # equal: either is right
            assert released == ([A] if model < REUSE else [])
        suppressed = A in d.suppressed
        if not suppressed and model < FORGET:
            model = 0.0  # forgotten: the table stays bounded
        model = min(model + 1.0, ceiling)
        became = d.failed(A, now)
        if abs(model - SUPPRESS) > 1e-9:  # equal: either is right
            assert became == (model >= SUPPRESS and not suppressed)
        suppressed = A in d.suppressed
        assert d.penalty(A, now) == pytest.approx(model)
        if suppressed:
            assert d.reuse_at(A) - now <= max_suppress + 1e-6


def _ring(size: int, config: Config) -> SimNet:
    net = SimNet(size, seed=1, config=config)
    for i in range(size):
        net.link(i, (i + 1) % size)
    net.run(2.0)
    return net


def _via(net: SimNet, i: int, dest: int) -> int:
    return net.index[net.nodes[i].router.via[net.names[dest]]]


def test_a_flapping_link_beside_a_stable_path_is_kept_out_of_the_routes() -> None:
    """Ring 0-1-2-3-4: 0 reaches 1 directly, or the long way round. The
    link 0-1 fails and comes back every 4 s: after its fourth failure both
    ends route round it even while it is up, and they do until it has been
    up for a while; no node becomes unreachable on the way."""
    net = _ring(5, Config())
    assert _via(net, 0, 1) == 1 and _via(net, 1, 0) == 0
    seen = []
    for _ in range(6):
        net.fail_link(0, 1)
        net.run(net.now + 2.0)  # the heartbeats notice within a second
        assert _via(net, 0, 1) == 4 and _via(net, 1, 0) == 2
        net.heal_link(0, 1)
        net.link(0, 1)
        net.run(net.now + 2.0)
        assert net.names[1] in net.nodes[0].router.adjacent  # the link is up again
        seen.append((_via(net, 0, 1), _via(net, 1, 0)))
        assert all(len(node.router.via) == 4 for node in net.nodes)
    # failures 4 s apart: penalties 1, 1.57, 1.90, 2.09: used again at once
    # after three, kept out after the fourth, at both ends
    assert seen == [(1, 0)] * 3 + [(4, 2)] * 3
    assert net.nodes[0].stats["links_damped"] == net.nodes[1].stats["links_damped"] == 1
    _, cost = net.nodes[0].router.adjacent[net.names[1]]
    assert cost == Config().link_cost + DAMPED_COST
    net.run(net.now + 25.0)  # stable for longer than flap_suppress_max
    assert (_via(net, 0, 1), _via(net, 1, 0)) == (1, 0)
    assert net.nodes[0].router.adjacent[net.names[1]][1] == Config().link_cost


def test_unlinking_on_purpose_is_no_flap() -> None:
    net = _ring(5, Config())
    stats = net.nodes[0].stats
    for _ in range(5):
        net.beam(0, _unlink(net.names[1]))
        net.run(net.now + 0.5)
        net.link(0, 1)
        net.run(net.now + 0.5)
    assert stats["links_damped"] == 0
    assert _via(net, 0, 1) == 1


def _unlink(name: bytes) -> object:
    from pydist.core.etf import Atom
    return (Atom("unlink"), name)


def test_the_table_forgets_neighbours_that_failed_long_ago() -> None:
    """Bounded: one failure each of many neighbours over a long uptime
    leaves only the recent ones, with nothing suppressed to release."""
    d = Damping(5.0, 20.0)
    for i in range(1000):
        d.failed(b"n%d@h" % i, i * 10.0)
    assert not d.suppressed
    assert len(d) <= 5  # a penalty of 1 falls below FORGET in 22 s
