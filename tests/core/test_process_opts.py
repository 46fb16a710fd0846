"""Lanes per process (py_dist:set_lane/1): which packets leave a
connection for their process's lane, and what the far end does with them."""

from __future__ import annotations

import struct

from hypothesis import given, settings
from hypothesis import strategies as st
from test_node import Net, connected, name

from pydist.core import port_codec
from pydist.core.etf import Atom
from pydist.core.process_opts import (
    MAX_PROCESSES,
    SEND_OPS,
    ProcessOpts,
    message_send,
    messages_in,
)
from pydist.core.wire import FRAME_LEN, REALTIME, UNORDERED, UNRELIABLE

_HEADER = b"\x83D\x00"


def packet(op: int, body: bytes = b"msg") -> bytes:
    """A whole distribution packet whose control message is {Op, ...}."""
    return _HEADER + bytes((104, 3, 97, op)) + body


FRAGMENT = b"\x83E" + bytes(16) + b"\x00" + bytes((104, 3, 97, 22)) + b"first"
WITH_CACHE_REFS = b"\x83D\x01" + bytes((104, 3, 97, 22))


def group(*packets: bytes) -> memoryview:
    return memoryview(port_codec.encode_frames(list(packets)))


def test_only_whole_message_sends_take_a_lane() -> None:
    for op in SEND_OPS:
        assert message_send(packet(op))
    for op in (1, 3, 4, 8, 19, 20, 29):  # link, exit, unlink, exit2, monitor, demonitor, spawn
        assert not message_send(packet(op))
    assert not message_send(FRAGMENT)
    assert not message_send(WITH_CACHE_REFS)
    assert not message_send(b"")
    assert not message_send(_HEADER + b"\x68")


def test_messages_in_a_run_only_if_all_are_whole_sends() -> None:
    """What a frame may be given up for, and what a lane packet must be."""
    two = bytes(group(packet(22), packet(6)))
    assert messages_in(two) == 2
    assert messages_in(bytes(group(packet(22), packet(1)))) == 0  # a link in it
    assert messages_in(bytes(group(FRAGMENT))) == 0
    assert messages_in(two[:-1]) == 0  # a truncated tail
    assert messages_in(b"") == 0


def test_without_lanes_nothing_is_looked_at() -> None:
    groups = [(5, group(packet(22)))]
    assert ProcessOpts().split(groups) == (groups, [])


def test_a_process_lane_takes_its_sends_and_leaves_its_signals_in_order() -> None:
    lanes = ProcessOpts()
    assert lanes.set(7, UNRELIABLE, 0)
    link, send1, unlink, send2 = packet(1), packet(22, b"one"), packet(4), packet(6, b"two")
    other = group(packet(22, b"other"))
    kept, moved = lanes.split([(7, group(link, send1, unlink, send2)), (9, other)])
    assert [(flow, bytes(body)) for flow, body in kept] == [
        (7, bytes(group(link))), (7, bytes(group(unlink))), (9, bytes(other))]
    assert [(lane, ms, bytes(p)) for lane, ms, p in moved] == [
        (UNRELIABLE, 0, bytes(group(send1))), (UNRELIABLE, 0, bytes(group(send2)))]


def test_set_lane_zero_leaves_the_lane_and_bad_settings_change_nothing() -> None:
    lanes = ProcessOpts()
    assert lanes.set(7, REALTIME, 250)
    assert not lanes.set(7, 9, 0)  # no such lane
    assert not lanes.set(8, UNORDERED, 1 << 32)
    assert lanes.by_flow == {7: (REALTIME, 250)}
    assert lanes.set(7, 0, 0) and len(lanes) == 0
    assert lanes.set(7, 0, 0)  # leaving twice is no error


def test_the_table_is_bounded() -> None:
    lanes = ProcessOpts()
    for flow in range(MAX_PROCESSES):
        assert lanes.set(flow + 2, UNORDERED, 0)
    assert not lanes.set(1 << 40, UNORDERED, 0)
    assert lanes.set(2, UNRELIABLE, 0)  # one that has a lane may change it
    assert len(lanes) == MAX_PROCESSES


_PACKETS = st.one_of(
    st.sampled_from(sorted(SEND_OPS)).map(packet),
    st.sampled_from([1, 3, 4, 8, 19, 20]).map(packet),
    st.just(FRAGMENT), st.just(WITH_CACHE_REFS), st.binary(max_size=12))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(2, 6), st.lists(_PACKETS, min_size=1, max_size=6)),
                min_size=1, max_size=6),
       st.sets(st.integers(2, 6)))
def test_split_loses_nothing_and_keeps_each_flows_connection_order(
        groups: list[tuple[int, list[bytes]]], with_lane: set[int]) -> None:
    lanes = ProcessOpts()
    for flow in with_lane:
        lanes.set(flow, UNORDERED, 0)
    kept, moved = lanes.split([(flow, group(*ps)) for flow, ps in groups])
    stays = [(flow, p) for flow, ps in groups for p in ps
             if flow not in with_lane or not message_send(p)]
    goes = [p for flow, ps in groups for p in ps if flow in with_lane and message_send(p)]
    assert [(flow, p) for flow, body in kept for p in port_codec.split_frames(body)] == stays
    assert [bytes(p[FRAME_LEN.size:]) for _, _, p in moved] == goes


def flows(net: Net, label: str, chan: int, flow: int, packets: list[bytes]) -> None:
    body = port_codec.encode_groups(chan, [(flow, port_codec.encode_frames(packets))])
    net._pipe_in(label, struct.pack("!I", len(body)) + body)


def test_a_lane_packet_reaches_the_far_connection_and_only_a_send_does() -> None:
    net, (chan_b,) = connected()
    net.beam("a", (Atom("set_lane"), 7, UNORDERED, 0))
    send, link = packet(22, b"by lane"), packet(1)
    flows(net, "a", 1, 7, [send, link])
    net.pump()
    # both reach b's connection with a: the send as a lane message, the
    # link on the connection
    assert sorted(net.received("b", chan_b)) == sorted([send, link])
    assert net.nodes["a"].stats["lane_unordered_sent"] == 1
    assert net.nodes["b"].stats["lane_unordered_delivered"] == 1
    assert net.delivered("b") == []  # nothing for py_dist_lanes to decode


def test_a_lane_packet_that_is_no_message_send_is_refused() -> None:
    """A peer can put any packet on a lane; only a whole message send is
    handed to erts there (a signal would pass the connection's order, a
    fragment or an atom cache reference confuse erts)."""
    net, (chan_b,) = connected()
    a = net.nodes["a"]
    for bad in (packet(1), FRAGMENT, WITH_CACHE_REFS):
        a.lanes.send(UNORDERED, 0, name("b"), b"", memoryview(group(bad)), net.now, dist=True)
        net.collect("a")
    net.pump()
    assert net.received("b", chan_b) == []
    assert net.nodes["b"].stats["lane_errors"] == 3


def test_a_lane_packet_before_our_nodeup_waits_for_it() -> None:
    net = Net("a", "b")
    net.connect("a", 1, "b")
    net.pump()
    ((chan_b, _),) = net.accepted("b")
    net.beam("a", (Atom("up"), 1))  # a's side of the handshake is done first
    net.beam("a", (Atom("set_lane"), 7, REALTIME, 100))
    send = packet(22, b"early")
    flows(net, "a", 1, 7, [send])
    net.pump()
    assert net.received("b", chan_b) == []
    net.beam("b", (Atom("up"), chan_b))
    assert net.received("b", chan_b) == [send]
