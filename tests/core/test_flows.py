"""Flows of one channel through the node: the outbox, the budget of bytes
in flight, pauses, and the order the far end delivers in."""

from __future__ import annotations

import struct

from test_node import Net, connected

from pydist.core import port_codec
from pydist.core.config import Config
from pydist.core.delivery import FRAME_BYTES
from pydist.core.outbox import BARRIER
from pydist.core.wire import Kind

CHUNK = 64 * 1024


def send_flows(net: Net, label: str, chan: int, groups: list[tuple[int, list[bytes]]]) -> None:
    body = port_codec.encode_groups(
        chan, [(flow, port_codec.encode_frames(packets)) for flow, packets in groups])
    net._pipe_in(label, struct.pack("!I", len(body)) + body)


def stream(net: Net, label: str, flow: int, count: int) -> None:
    """``count`` 64 KiB packets of one flow, four per port packet as the
    controller batches them (max_batch)."""
    for first in range(0, count, 4):
        send_flows(net, label, 1, [(flow, [packet(flow, i, CHUNK)
                                           for i in range(first, min(count, first + 4))])])


def spend_budget(net: Net) -> int:
    """a's in-flight budget spent on flow 7, one 64 KiB packet per port
    packet, each sent as it comes (nothing acknowledged yet): how many."""
    first = Config().inflight_bytes // CHUNK
    for i in range(first):
        send_flows(net, "a", 1, [(7, [packet(7, i, CHUNK)])])
    return first


def packet(flow: int, i: int, n: int) -> bytes:
    return struct.pack("!QI", flow, i) + bytes(n - 12)


def unacked(net: Net, label: str) -> int:
    (ch,) = net.nodes[label].channels.values()
    assert ch.sender is not None
    return ch.sender.bytes


def test_a_small_message_overtakes_a_large_one_queued_before_it() -> None:
    net, (b_chan,) = connected()
    a = net.nodes["a"]
    stream(net, "a", 7, 200)  # 12.5 MiB, more than the budget
    # the budget of bytes in flight holds the rest back in the outbox
    assert unacked(net, "a") < Config().inflight_bytes + 4 * (CHUNK + 4)
    send_flows(net, "a", 1, [(8, [packet(8, 0, 100)])])
    while len(net.received("b", b_chan)) < 201:
        net.advance_to(net.now + 0.02)  # acks due; each frees budget for more
    order = [struct.unpack("!QI", p[:12]) for p in net.received("b", b_chan)]
    # behind what was in flight and at most one more batch of the stream,
    # not behind the 11 MiB still queued
    assert order.index((8, 0)) <= (Config().inflight_bytes + 2 * 4 * (CHUNK + 4)) // CHUNK
    assert [i for f, i in order if f == 7] == list(range(200))
    assert a.stats["data_after_close"] == 0


def test_the_outbox_bound_pauses_the_controller_and_a_little_room_resumes_it() -> None:
    net, _ = connected()
    bound = Config().queue_bytes
    net.blocked.add(("b", "a"))  # no acks: the budget stays spent
    frames = bound // CHUNK + 20
    stream(net, "a", 7, frames)
    assert ("pause", 1) in net.ctrl("a")
    assert ("resume", 1) not in net.ctrl("a")
    net.blocked.clear()
    (ch,) = net.nodes["a"].channels.values()
    assert ch.outbox is not None
    net.now += 0.02  # b's acks are due as frames arrive
    while ("resume", 1) not in net.ctrl("a"):
        net.deliver_one(0)
    assert bound // 2 < ch.outbox.queued_bytes < bound


def test_acks_come_by_bytes_not_only_by_frames() -> None:
    net, _ = connected()
    for i in range(8):  # one packet per frame
        send_flows(net, "a", 1, [(7, [packet(7, i, CHUNK)])])
    net.pump()
    acks = net.sent("b", "a", Kind.ACK)
    # well before ack_every (32) frames, and before ack_delay: no time passed
    assert acks and acks[0][0].seq == -(-Config().ack_bytes // (CHUNK + 4))


def test_packets_queued_behind_the_budget_go_out_gathered_into_large_frames() -> None:
    """Per frame Python pays at both ends far more than a copy of 64 KiB:
    packets of one flow that wait in the outbox leave joined, up to
    FRAME_BYTES a frame, in the outbox's order; one that finds the budget
    free goes alone."""
    net, (b_chan,) = connected()
    first = spend_budget(net)
    for i in range(first, 3 * first):  # the budget spent: these wait
        send_flows(net, "a", 1, [(7, [packet(7, i, CHUNK)])])
    while len(net.received("b", b_chan)) < 3 * first:
        net.advance_to(net.now + 0.02)
    sizes = [len(body[0]) for _, body in net.sent("a", "b", Kind.DATA)]
    assert sizes[:first] == [CHUNK + 4] * first
    assert all(CHUNK + 4 < n <= FRAME_BYTES + CHUNK + 4 for n in sizes[first:]), sizes
    assert sum(sizes) == 3 * first * (CHUNK + 4)
    order = [struct.unpack("!QI", p[:12]) for p in net.received("b", b_chan)]
    assert [i for _, i in order] == list(range(3 * first))


def test_a_frame_holds_one_flow() -> None:
    """The far end orders frames per flow, so a frame never joins two:
    two flows waiting packet by packet in turn leave a frame each."""
    net, (b_chan,) = connected()
    first = spend_budget(net)
    for i in range(first, 3 * first):
        flow = 7 + i % 2
        send_flows(net, "a", 1, [(flow, [packet(flow, i, CHUNK)])])
    while len(net.received("b", b_chan)) < 3 * first:
        net.advance_to(net.now + 0.02)
    for _, body in net.sent("a", "b", Kind.DATA):
        flows = {struct.unpack_from("!Q", p)[0] for p in port_codec.split_frames(body[0])}
        assert len(flows) == 1
    order = [struct.unpack("!QI", p[:12]) for p in net.received("b", b_chan)]
    for flow in (7, 8):
        mine = [i for f, i in order if f == flow]
        assert mine == sorted(mine) and mine


def test_a_large_run_is_not_joined_past_twice_the_frame_size() -> None:
    net, (b_chan,) = connected()
    first = spend_budget(net)
    send_flows(net, "a", 1, [(7, [packet(7, first, 100)])])  # waits, as does:
    send_flows(net, "a", 1, [(8, [packet(8, i, CHUNK) for i in range(10)])])
    while len(net.received("b", b_chan)) < first + 11:
        net.advance_to(net.now + 0.02)
    sizes = [len(body[0]) for _, body in net.sent("a", "b", Kind.DATA)]
    assert sizes[first:] == [104, 10 * (CHUNK + 4)]
    assert max(sizes) > 2 * FRAME_BYTES  # a run that large goes, but alone


def test_a_barrier_keeps_its_place_on_the_wire() -> None:
    net, (b_chan,) = connected()
    send_flows(net, "a", 1, [(7, [packet(7, 0, CHUNK), packet(7, 1, CHUNK)]),
                             (BARRIER, [packet(BARRIER, 2, 20)]),
                             (8, [packet(8, 3, 20)])])
    net.pump()
    order = [struct.unpack("!QI", p[:12])[1] for p in net.received("b", b_chan)]
    assert order == [0, 1, 2, 3]


def test_a_channel_that_stops_moving_pauses_whole_and_lets_its_held_senders_go() -> None:
    """Per-sender holds are for a channel that moves. One whose frames go
    unacknowledged for ``resend_timeout`` (the far BEAM frozen, say) is
    paused whole and holds no one: erts then suspends its senders and
    answers ``nosuspend`` sends, as stock distribution does. The first ack
    ends the stall."""
    net, _ = connected()
    a = net.nodes["a"]
    config = Config()
    net.muted.add(("b", "a", Kind.ACK))  # b gets the frames; its acks never come
    stream(net, "a", 7, config.flow_bytes // CHUNK + 8)
    net.pump()
    assert ("hold_flow", 1, 7) in net.ctrl("a")
    assert ("pause", 1) not in net.ctrl("a")  # the budget is spent, the outbox far from full
    net.advance_to(net.now + config.resend_timeout + 0.01)
    assert ("release_flow", 1, 7) in net.ctrl("a")
    assert ("pause", 1) in net.ctrl("a")
    assert a.stats["channels_stalled"] == 1
    stream(net, "a", 9, config.flow_bytes // CHUNK + 8)  # what the BEAM wrote before the pause
    assert ("hold_flow", 1, 9) not in net.ctrl("a")
    net.muted.clear()
    deadline = net.now + 4 * config.resend_timeout
    while ("resume", 1) not in net.ctrl("a"):  # the next resend is acknowledged
        assert net.now < deadline, net.ctrl("a")
        net.advance_to(net.now + 0.05)
    (ch,) = a.channels.values()
    assert not ch.stalled and ch.outbox is not None and ch.outbox.holding
    assert a.stats["channels_stalled"] == 1
