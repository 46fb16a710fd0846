"""Lane messages (py_dist:send/3) through nodes wired in memory: chunked at
the source, forwarded as chunks, joined at the destination only; dropped
and counted as each lane's rules say."""

from __future__ import annotations

import struct

import pytest
from test_node import Net, connected, handshake, name
from test_routing import line

from pydist.core import port_codec
from pydist.core.config import Config
from pydist.core.wire import REALTIME, UNORDERED, UNRELIABLE

CHUNK = Config().chunk_bytes


def lane_send(net: Net, src: str, dst: str, lane: int, payload: bytes, deadline_ms: int = 0,
              notify: bytes = b"") -> None:
    body = port_codec.encode_lane(lane, deadline_ms, name(dst), notify, payload)
    net._pipe_in(src, struct.pack("!I", len(body)) + body)


def message(i: int, n: int) -> bytes:
    return struct.pack("!I", i) + bytes((i % 251,)) * (n - 4)


def dropped(net: Net, label: str) -> list[tuple[bytes, str]]:
    return [(e[1], str(e[2])) for e in net.ctrl(label) if e[0] == "dropped"]


@pytest.mark.parametrize("lane", [UNORDERED, UNRELIABLE, REALTIME])
def test_a_large_message_is_chunked_and_arrives_whole(lane: int) -> None:
    net, _ = connected()
    big = message(1, 5 * CHUNK + 123)
    lane_send(net, "a", "b", lane, big)
    assert len([m for m in net.queue if m[0] == "a"]) == 6  # six chunks on the way
    net.pump()
    assert net.delivered("b") == [big]
    kind = {UNORDERED: "unordered", UNRELIABLE: "unreliable", REALTIME: "realtime"}[lane]
    assert net.nodes["a"].stats[f"lane_{kind}_sent"] == 1
    assert net.nodes["b"].stats[f"lane_{kind}_delivered"] == 1


def test_chunks_cross_a_route_without_being_joined_in_the_middle() -> None:
    net = line()  # a - b - c
    handshake(net, "a", "c", 1)
    big = message(7, 40 * CHUNK)
    lane_send(net, "a", "c", UNORDERED, big)
    b = net.nodes["b"]
    while net.queue:
        net.deliver_one(0)
        assert b.lanes.parts.held_bytes == 0  # b only forwards
    assert net.delivered("c") == [big]
    assert b.stats["forwarded"] >= 40 and not net.delivered("b")


def test_unordered_messages_all_arrive_whatever_the_order() -> None:
    net, _ = connected()
    msgs = [message(i, (i * 7919) % (3 * CHUNK) + 8) for i in range(30)]
    for m in msgs:
        lane_send(net, "a", "b", UNORDERED, m)
    net.queue.reverse()  # one link's messages overtaken: as after a reroute
    net.pump()
    assert sorted(net.delivered("b")) == sorted(msgs)


def test_unreliable_is_dropped_on_a_congested_link_and_the_sender_told() -> None:
    net, _ = connected()
    a = net.nodes["a"]
    a.congestion(net.key("a", "b"), True, net.now)
    lane_send(net, "a", "b", UNRELIABLE, message(1, 100), notify=b"tag")
    lane_send(net, "a", "b", UNORDERED, message(2, 100))  # waits instead
    net.collect("a")
    assert dropped(net, "a") == [(b"tag", "congested")]
    assert a.stats["lane_unreliable_dropped_congested"] == 1
    a.congestion(net.key("a", "b"), False, net.now)
    net.collect("a")
    net.pump()
    assert net.delivered("b") == [message(2, 100)]


def test_realtime_waits_for_its_link_until_its_deadline() -> None:
    net, _ = connected()
    a = net.nodes["a"]
    a.congestion(net.key("a", "b"), True, net.now)
    lane_send(net, "a", "b", REALTIME, message(1, 100), deadline_ms=50, notify=b"late")
    lane_send(net, "a", "b", REALTIME, message(2, 100), deadline_ms=500)
    lane_send(net, "a", "b", UNORDERED, message(3, 100))
    net.advance_to(net.now + 0.1)  # the first one's deadline passes while it waits
    assert dropped(net, "a") == [(b"late", "deadline")]
    a.congestion(net.key("a", "b"), False, net.now)
    net.collect("a")
    net.pump()
    assert net.delivered("b") == [message(2, 100), message(3, 100)]  # realtime first
    assert a.stats["lane_realtime_dropped_deadline"] == 1


def test_a_realtime_deadline_counts_behind_a_later_one() -> None:
    """Each waiting message is dropped at its own deadline, told at once,
    even when one with a later deadline waits ahead of it."""
    net, _ = connected()
    a = net.nodes["a"]
    a.congestion(net.key("a", "b"), True, net.now)
    lane_send(net, "a", "b", REALTIME, message(1, 100), deadline_ms=500)
    lane_send(net, "a", "b", REALTIME, message(2, 100), deadline_ms=50, notify=b"short")
    assert a.deadline <= net.now + 0.05
    net.advance_to(net.now + 0.06)
    assert dropped(net, "a") == [(b"short", "deadline")]
    a.congestion(net.key("a", "b"), False, net.now)
    net.collect("a")
    net.pump()
    assert net.delivered("b") == [message(1, 100)]


def test_realtime_older_than_the_last_delivered_is_dropped_at_the_receiver() -> None:
    net, _ = connected()
    lane_send(net, "a", "b", REALTIME, message(1, 2 * CHUNK))  # two chunks
    lane_send(net, "a", "b", REALTIME, message(2, 100))
    net.queue.append(net.queue.pop(0))  # the first message's first chunk comes last
    net.pump()
    assert net.delivered("b") == [message(2, 100)]
    assert net.nodes["b"].stats["lane_realtime_dropped_late"] == 1


def test_unordered_past_the_queue_bound_overflows() -> None:
    net, _ = connected()
    a = net.nodes["a"]
    a.congestion(net.key("a", "b"), True, net.now)
    size = 4 * 1024 * 1024
    for i in range(Config().lane_queue_bytes // size + 2):
        lane_send(net, "a", "b", UNORDERED, message(i, size))
    assert a.stats["lane_unordered_dropped_overflow"] == 2


def test_no_route_is_a_drop() -> None:
    net = Net("a")
    lane_send(net, "a", "z", UNORDERED, b"x" * 10, notify=b"n")
    assert dropped(net, "a") == [(b"n", "no_route")]


def test_a_bad_chunk_is_counted_and_costs_no_link() -> None:
    net, _ = connected()
    lane_send(net, "a", "b", UNORDERED, message(1, 3 * CHUNK))
    first = net.queue[0]
    # a second copy of chunk 0 claiming another chunk count
    raw = bytearray(first[2][0])
    raw[-8:-4] = struct.pack("!I", 0)
    raw[-4:] = struct.pack("!I", 9)
    net.queue.insert(1, (first[0], first[1], [bytes(raw), first[2][1]]))
    net.pump()
    b = net.nodes["b"]
    assert b.stats["lane_errors"] == 1
    assert len(b.links) == 1 and not net.closed("b")
    assert net.delivered("b") == [message(1, 3 * CHUNK)]
