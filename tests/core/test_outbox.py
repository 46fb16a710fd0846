"""The outbox of a channel: per-flow order, barriers, ticks first, no loss."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from pydist.core.outbox import BARRIER, TICK, Outbox

# operations: ("push", flow, size) or ("pop",)
ops = st.lists(
    st.one_of(
        st.tuples(st.just("push"), st.integers(0, 5), st.integers(0, 300)),
        st.tuples(st.just("pop")),
    ),
    max_size=200,
)


def _run(script: list[tuple]) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """Pushed and popped items, each (flow, serial); everything left is
    popped at the end."""
    box = Outbox(quantum=256)
    pushed: list[tuple[int, int]] = []
    popped: list[tuple[int, int]] = []

    def pop() -> None:
        got = box.pop()
        if got is not None:
            popped.append(_ident(got))

    for op in script:
        if op[0] == "push":
            _, flow, n = op
            serial = len(pushed)
            pushed.append((flow, serial))
            box.push(flow, _payload(flow, serial, n))
        else:
            pop()
        assert box.queued_bytes >= 0
    while len(box):
        pop()
    assert box.pop() is None and box.queued_bytes == 0
    return pushed, popped


def _payload(flow: int, serial: int, n: int) -> bytes:
    return flow.to_bytes(1, "big") + serial.to_bytes(4, "big") + bytes(n)


def _ident(payload: object) -> tuple[int, int]:
    data = bytes(payload)  # type: ignore[call-overload]
    return data[0], int.from_bytes(data[1:5], "big")


@settings(max_examples=300)
@given(ops)
def test_everything_out_once_in_flow_order_and_barriers_hold(script: list[tuple]) -> None:
    pushed, popped = _run(script)
    assert sorted(popped) == sorted(pushed)
    position = {item: i for i, item in enumerate(popped)}
    for flow in range(2, 6):  # ordinary flows keep their order
        mine = [serial for f, serial in popped if f == flow]
        assert mine == sorted(mine)
    for flow, serial in pushed:
        if flow != BARRIER:
            continue
        for other in pushed:  # before the barrier in, before it out; after, after
            if other[1] < serial:
                assert position[other] < position[(flow, serial)], (other, serial)
            elif other[1] > serial:
                assert position[other] > position[(flow, serial)], (other, serial)


def test_a_small_message_overtakes_a_long_stream() -> None:
    box = Outbox(quantum=64 * 1024)
    for i in range(100):
        box.push(7, _payload(7, i, 64 * 1024))
    box.push(8, _payload(8, 100, 10))
    first = [_ident(box.pop()) for _ in range(3)]
    assert (8, 100) in first[:2]


def test_ticks_go_first() -> None:
    box = Outbox(quantum=1024)
    for i in range(5):
        box.push(7, _payload(7, i, 1000))
    box.push(TICK, b"")
    assert box.pop() == b""


def test_a_barrier_waits_for_what_came_before_and_holds_what_comes_after() -> None:
    box = Outbox(quantum=1024)
    box.push(7, _payload(7, 0, 10))
    box.push(8, _payload(8, 1, 10))
    box.push(BARRIER, _payload(BARRIER, 2, 10))
    box.push(9, _payload(9, 3, 10))
    box.push(TICK, _payload(TICK, 4, 0))
    assert box.queued_bytes == 4 * 15 + 5
    out = [_ident(box.pop()) for _ in range(5)]
    assert sorted(out[:2]) == [(7, 0), (8, 1)]
    assert out[2] == (BARRIER, 2)
    assert sorted(out[3:]) == [(TICK, 4), (9, 3)]
    assert box.pop() is None
