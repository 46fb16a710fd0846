"""The ZeroMQ links of the shell: backlogs, and back-pressure on frames in transit."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import zmq

from pydist.shell.links import Links
from pydist.shell.transit import TransitGate


@pytest.fixture
def links() -> Iterator[Links]:
    ctx: zmq.Context[Any] = zmq.Context()
    made = Links(ctx, "127.0.0.1", 0, hwm=1, max_frame=1 << 20)
    try:
        yield made
    finally:
        made.close()
        ctx.term()


def stalled(links: Links) -> int:
    """A dialled link whose peer never reads: after its queue, the backlog."""
    with zmq.Context() as other:
        sink = other.socket(zmq.ROUTER)
        port = sink.bind_to_random_port("tcp://127.0.0.1")
        links.dial(1, f"tcp://127.0.0.1:{port}")
        sink.close(linger=0)  # gone: whatever is sent stays queued
    return 1


def test_a_full_queue_fills_the_backlog_and_a_limit_drops_past_it(links: Links) -> None:
    key = stalled(links)
    frame = [b"x" * 1000]
    sent = [links.send(key, frame) for _ in range(10)]
    assert all(sent)
    assert key in links.backlog  # the queue took what its HWM allows, then the backlog
    held = links.link_backlog[key]
    assert links.backlog_bytes == held > 0
    # frames in transit: refused once they would take the backlog past the limit
    assert links.send(key, frame, limit=held + 1000)
    assert not links.send(key, frame, limit=held + 1000)
    assert links.link_backlog[key] == held + 1000
    # and the link's own frames are never refused
    assert links.send(key, frame)


def test_hanging_up_forgets_the_backlog(links: Links) -> None:
    key = stalled(links)
    for _ in range(10):
        links.send(key, [b"y" * 500])
    assert links.backlog_bytes > 0
    links.hangup(key)
    assert links.backlog_bytes == 0 and key not in links.link_backlog


def test_transit_gate_holds_back_then_gives_up_on_a_link_that_never_drains(
        links: Links) -> None:
    key = stalled(links)
    gate = TransitGate(links, soft=4000, hard=16000, patience=1.0)
    # a turn's frames count before they are sent: the fifth 1000-byte frame
    # for the link would take it past soft
    assert [gate.admit(key, 1000) for _ in range(5)] == [True] * 4 + [False]
    gate.pause("sock", key, now=0.0)
    for _ in range(10):  # the link's queue and backlog fill
        links.send(key, [b"z" * 1000])
    assert gate.resumable(now=0.5) == []  # still congested, still patient
    assert not gate.admit(key, 1000)
    assert gate.resumable(now=1.0) == ["sock"]  # out of patience: read again
    assert key in gate.failing and gate.admit(key, 10**6)  # ...and drop past hard
    links.hangup(key)  # drained (gone): the link is no longer failing
    assert gate.resumable(now=2.0) == [] and not gate.failing and not gate.busy


def test_transit_gate_resumes_when_the_link_drains(links: Links) -> None:
    key = stalled(links)
    gate = TransitGate(links, soft=4000, hard=16000, patience=1.0)
    gate.pause("sock", key, now=0.0)
    assert gate.resumable(now=0.1) == ["sock"]  # no backlog at all
    assert not gate.failing
