"""Nodes wired together in memory: the whole protocol, no sockets, no clock.

:class:`Net` plays the part of the I/O shell for several nodes at once. It
feeds control terms and data packets in as the BEAM would (through a
``{packet, 4}`` pipe), takes each node's output as the shell does
(``take_output``), carries out ``Dial``/``HangUp`` commands by joining or
cutting an in-memory wire, and carries messages for links to the other end
of the wire in order. A link a node dialled has an ``int`` key on
that node; the other end sees the same connection under a ``bytes`` ROUTER
identity, ``b"peer-<label>-<key>"``.
"""

from __future__ import annotations

import random
import struct
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pydist.core import frame, port_codec
from pydist.core.config import Config
from pydist.core.etf import Atom
from pydist.core.node import LinkKey, Node
from pydist.core.outbox import TICK
from pydist.core.output import Command, Dial, Forget, HangUp, Output
from pydist.core.port_codec import PortDecoder
from pydist.core.trust import Trust
from pydist.core.wire import (
    FLAG_INITIATOR,
    OP_CTRL,
    OP_DATA,
    OP_DELIVER,
    OP_FLOWS,
    PY_CHAN_BASE,
    Kind,
)

HOST = b"127.0.0.1"
PORTS = {label: 4241 + i for i, label in enumerate("abcdefg")}
INTERVAL = Config().heartbeat_interval  # 0.1 s
TIMEOUT = Config().heartbeat_timeout  # 0.6 s
#: the silence bound of a link that is the only way to its peer, as every
#: link between two nodes is (see test_routing for one with a detour)
SOLE = Config().heartbeat_timeout_max


COOKIE = b"test-cookie"


def name(label: str) -> bytes:
    return f"{label}@h".encode()


def data_packet(chan: int, payloads: list[bytes]) -> bytes:
    """A data packet as the BEAM writes it, without the {packet, 4} prefix."""
    return bytes([OP_DATA]) + struct.pack("!I", chan) + port_codec.encode_frames(payloads)


def header_of(parts: list[bytes]) -> frame.Header:
    """The header of a message as a link carries it (one part or two)."""
    return frame.decode(frame.split(parts)[0])

class Net:
    def __init__(self, *labels: str, seed: int = 0,
                 trusts: dict[str, Trust] | None = None, config: Config | None = None) -> None:
        self.now = 0.0
        self.nodes: dict[str, Node] = {}
        self.stdin: dict[str, PortDecoder] = {}
        self.stdout: dict[str, PortDecoder] = {}
        self.events: dict[str, list[Any]] = {}
        self.commands: dict[str, list[Command]] = {}
        self.endpoints: dict[str, str] = {}
        #: (node, its link key) -> (peer node, the peer's key for the same link)
        self.wires: dict[tuple[str, LinkKey], tuple[str, LinkKey]] = {}
        #: wires a node hung up: what it sent before still arrives (LINGER)
        self.lingering: dict[tuple[str, LinkKey], tuple[str, LinkKey]] = {}
        #: messages in flight: (sender, sender's link key, parts)
        self.queue: list[tuple[str, LinkKey, list[bytes]]] = []
        #: (sender, receiver) pairs whose messages are lost
        self.blocked: set[tuple[str, str]] = set()
        #: (sender, receiver, kind): messages of that kind only are lost
        self.muted: set[tuple[str, str, Kind]] = set()
        #: every message a node wrote to a link: (sender, its link key, parts)
        self.emitted: list[tuple[str, LinkKey, list[bytes]]] = []
        #: every message delivered: (time, sender, receiver, header, payload)
        self.log: list[tuple[float, str, str, frame.Header | None, list[bytes]]] = []
        for label in labels:
            self.nodes[label] = Node(config or Config(), self.now,
                                     rng=random.Random(f"{seed}-{label}"),
                                     trust=(trusts or {}).get(label))
            self.stdin[label] = PortDecoder(1 << 24)
            self.stdout[label] = PortDecoder(1 << 24)
            self.events[label] = []
            self.commands[label] = []
            self.endpoints[f"tcp://127.0.0.1:{PORTS[label]}"] = label
            self.beam(label, (Atom("set_node"), name(label)))
            self.beam(label, (Atom("cookie"), COOKIE))

    # --- the BEAM side -------------------------------------------------------

    def _pipe_in(self, label: str, stream: bytes) -> None:
        for packet in self.stdin[label].feed(stream):
            self.nodes[label].port_packet(packet, self.now)
        self.collect(label)

    def beam(self, label: str, term: Any) -> None:
        self._pipe_in(label, port_codec.encode_ctrl(term))

    def send(self, label: str, chan: int, payloads: list[bytes]) -> None:
        body = data_packet(chan, payloads)
        self._pipe_in(label, struct.pack("!I", len(body)) + body)

    def connect(self, label: str, chan: int, peer: str, port: int | None = None) -> None:
        self.beam(label, (Atom("connect"), chan, name(peer), HOST,
                          PORTS[peer] if port is None else port, COOKIE))

    def close(self, label: str, chan: int) -> None:
        self.beam(label, (Atom("close"), chan, Atom("down")))

    def ctrl(self, label: str) -> list[tuple[Any, ...]]:
        return [e for e in self.events[label] if e[0] not in ("DATA", "DELIVER")]

    def delivered(self, label: str) -> list[bytes]:
        """Lane messages handed to the BEAM."""
        return [e[1] for e in self.events[label] if e[0] == "DELIVER"]

    def closed(self, label: str) -> list[tuple[int, str]]:
        return [(e[1], str(e[2])) for e in self.ctrl(label) if e[0] == "closed"]

    def accepted(self, label: str) -> list[tuple[int, bytes]]:
        return [(e[1], e[2]) for e in self.ctrl(label) if e[0] == "accepted"]

    def received(self, label: str, chan: int) -> list[bytes]:
        return [p for e in self.events[label] if e[0] == "DATA" and e[1] == chan for p in e[2]]

    # --- the shell -----------------------------------------------------------

    def collect(self, label: str) -> None:
        """Drain a node's outputs, as the shell does after every call."""
        out = self.nodes[label].take_output()
        hangups = []
        for command in out.commands:
            self.commands[label].append(command)
            match command:
                case Dial(key, endpoint):
                    target = self.endpoints.get(endpoint)
                    if target is not None:  # else: nobody listens there
                        rkey = f"peer-{label}-{key}".encode()
                        self.wires[(label, key)] = (target, rkey)
                        self.wires[(target, rkey)] = (label, key)
                case Forget():
                    # a link the neighbour dialled: its connection stays until
                    # the neighbour hangs up; only the shell's queue goes
                    pass
                case HangUp(key):
                    hangups.append(key)  # after this call's messages, as the shell does
                case _:
                    raise AssertionError(f"unknown command {command!r}")
        if out.port:
            stream = b"".join(bytes(piece) for piece in out.port)
            for packet in self.stdout[label].feed(stream):
                if packet[0] == OP_DELIVER:  # a lane message, for the BEAM to deliver
                    self.events[label].append(("DELIVER", bytes(packet[1:])))
                    continue
                decoded = port_codec.decode_packet(packet)
                if decoded[0] == OP_CTRL:
                    self.events[label].append(decoded[1])
                else:
                    _, chan, frames = decoded  # type: ignore[misc]
                    self.events[label].append(("DATA", chan, port_codec.split_frames(frames)))
        for link, parts in [*out.links, *out.transit]:
            self.queue.append((label, link, [bytes(p) for p in parts]))
            self.emitted.append(self.queue[-1])
        for key in hangups:
            other = self.wires.pop((label, key), None)
            if other is not None:
                self.lingering[(label, key)] = other
                self.wires.pop(other, None)

    def _deliver(self, index: int) -> None:
        src, key, parts = self.queue.pop(index)
        wire = self.wires.get((src, key)) or self.lingering.get((src, key))
        if wire is None or (src, wire[0]) in self.blocked:
            return
        dst, dkey = wire
        try:
            head, payload = frame.split(parts)
            hdr: frame.Header | None = frame.decode(head)
            body = [bytes(payload)]
        except (frame.FrameError, IndexError):
            hdr, body = None, parts[1:]
        if hdr is not None and (src, dst, hdr.kind) in self.muted:
            return
        self.log.append((self.now, src, dst, hdr, body))
        self.nodes[dst].link_message(dkey, parts, self.now)
        self.collect(dst)

    def deliver_one(self, choice: int) -> None:
        """Deliver the oldest message of one link direction (links stay FIFO)."""
        heads: dict[tuple[str, LinkKey], int] = {}
        for i, (src, key, _) in enumerate(self.queue):
            heads.setdefault((src, key), i)
        if heads:
            self._deliver(sorted(heads.values())[choice % len(heads)])

    def pump(self) -> None:
        while self.queue:
            self._deliver(0)

    def advance_to(self, t: float) -> None:
        self.now = t
        for label, node in self.nodes.items():
            node.timer(t)
            self.collect(label)
        self.pump()

    def pump_until(self, kind: Kind) -> None:
        """Deliver in order until a message of ``kind`` is in flight."""
        while not any(header_of(parts).kind == kind for _, _, parts in self.queue):
            assert self.queue, f"no {kind.name} came"
            self._deliver(0)

    def drop_queued(self, kind: Kind) -> None:
        """Lose the first message of ``kind`` in flight."""
        for i, (_, _, parts) in enumerate(self.queue):
            if header_of(parts).kind == kind:
                del self.queue[i]
                return
        raise AssertionError(f"no {kind.name} in flight")

    def key(self, label: str, peer: str) -> LinkKey:
        """The key ``label`` has for its link to ``peer``."""
        (key,) = [k for (lab, k), (p, _) in self.wires.items() if lab == label and p == peer]
        return key

    def sent(self, src: str, dst: str, kind: Kind) -> list[tuple[frame.Header, list[bytes]]]:
        return [(h, body) for _, s, d, h, body in self.log
                if s == src and d == dst and h is not None and h.kind == kind]


def handshake(net: Net, src: str, dst: str, chan: int) -> int:
    """A distribution connection from ``src`` to ``dst`` on ``chan``, its
    handshake done (both BEAMs say it is up); ``dst``'s id for it."""
    before = len(net.accepted(dst))
    net.connect(src, chan, dst)
    net.pump()
    accepted = net.accepted(dst)[before:]
    assert [peer for _, peer in accepted] == [name(src)]
    net.beam(dst, (Atom("up"), accepted[0][0]))
    net.beam(src, (Atom("up"), chan))
    return accepted[0][0]


def connected(*extra: str, chans: tuple[int, ...] = (1,)) -> tuple[Net, list[int]]:
    """``a`` connected to ``b`` on ``chans``; returns b's ids for them."""
    net = Net("a", "b", *extra)
    return net, [handshake(net, "a", "b", chan) for chan in chans]


# --- connecting --------------------------------------------------------------

def test_connect_is_accepted() -> None:
    net = Net("a", "b")
    net.connect("a", 1, "b")
    net.pump()
    ((chan_b, peer),) = net.accepted("b")
    assert peer == b"a@h"
    assert PY_CHAN_BASE <= chan_b < 2**32
    (dial,) = net.commands["a"]
    assert isinstance(dial, Dial) and dial.endpoint == "tcp://127.0.0.1:4242"
    key = dial.key
    assert isinstance(key, int)
    assert net.commands["b"] == []
    # a's BEAM only hears that the link is up: the channel needs no answer
    assert net.events["a"] == [("reachable", b"b@h")]
    assert ("reachable", b"a@h") in net.events["b"]
    assert net.nodes["a"].links[key].up


def test_connect_without_endpoint_uses_the_live_link() -> None:
    net, _ = connected()
    net.beam("a", (Atom("connect"), 2, b"b@h", b"", 0, COOKIE))
    net.pump()
    assert len(net.accepted("b")) == 2
    assert [type(c) for c in net.commands["a"]] == [Dial]  # no second link


def test_connect_without_endpoint_and_without_link_is_refused() -> None:
    net = Net("a", "b")
    net.beam("a", (Atom("set_node"), b"a@h"))
    net.beam("a", (Atom("connect"), 7, b"b@h", b"", 0, COOKIE))
    net.pump()
    assert net.closed("a") == [(7, "no_route")]
    assert net.commands["a"] == []


def test_link_down_is_told_once_the_last_link_to_a_peer_goes() -> None:
    net, _ = connected()
    net.advance_to(net.now + 10.0)  # nothing heard: every link times out
    assert ("unreachable", b"b@h") in net.events["a"]
    assert ("unreachable", b"a@h") in net.events["b"]


def test_second_channel_reuses_the_link() -> None:
    net, (b1, b2) = connected(chans=(1, 2))
    assert b1 != b2 and min(b1, b2) >= PY_CHAN_BASE
    assert [type(c) for c in net.commands["a"]] == [Dial]
    assert len(net.nodes["b"].links) == 1


def test_connect_back_over_the_accepted_link() -> None:
    net, _ = connected()
    net.connect("b", 9, "a")
    net.pump()
    assert net.commands["b"] == []  # no dial: b reuses the link a dialled
    ((chan_a, peer),) = net.accepted("a")
    assert peer == b"b@h" and chan_a >= PY_CHAN_BASE
    net.send("b", 9, [b"back"])
    net.pump()
    assert net.received("a", chan_a) == [b"back"]


def test_connect_before_set_node_is_not_ready() -> None:
    node = Node(Config(), 0.0)
    node.port_packet(port_codec.encode_ctrl(
        (Atom("connect"), 3, b"b@h", HOST, 4242, COOKIE))[4:], 0.0)
    out = node.take_output()
    packets = PortDecoder(1 << 16).feed(b"".join(bytes(p) for p in out.port))
    assert [port_codec.decode_packet(p) for p in packets] == [
        (OP_CTRL, (Atom("closed"), 3, Atom("not_ready")))]
    assert out.commands == []


def test_duplicate_channel_id() -> None:
    net, _ = connected()
    net.connect("a", 1, "b")
    assert net.closed("a") == [(1, "duplicate_channel")]


def test_info_reports_links_and_stats() -> None:
    net, _ = connected()
    net.send("a", 77, [b"no such channel"])  # counted in the stats
    net.beam("a", (Atom("info"), 12))
    ((tag, ref, info),) = [e for e in net.ctrl("a") if e[0] == "info"]
    assert (tag, ref) == ("info", 12)
    assert info[Atom("links")] == [{Atom("peer"): b"b@h", Atom("up"): True,
                                    Atom("dialled"): True, Atom("channels"): 1}]
    assert info[Atom("stats")][b"data_after_close"] == 1


def test_info_with_an_unencodable_ref_does_not_escape() -> None:
    """Only an integer ref is answered; anything else is counted, not raised."""
    net = Net("a")
    # term_to_binary({info, self()}) as OTP 25 writes it on nonode@nohost
    term = bytes([131, 104, 2, 100, 0, 4, 105, 110, 102, 111, 88, 100, 0, 13, 110, 111, 110,
                  111, 100, 101, 64, 110, 111, 104, 111, 115, 116, 0, 0, 0, 9, 0, 0, 0, 0,
                  0, 0, 0, 0])
    node = net.nodes["a"]
    before = node.stats["port_errors"]
    node.port_packet(bytes([OP_CTRL]) + term, net.now)
    assert node.stats["port_errors"] == before + 1
    assert not node.take_output().port


def test_unknown_control_message_is_counted() -> None:
    net = Net("a")
    net.beam("a", (Atom("frobnicate"), 1))
    net.beam("a", (Atom("connect"), b"not an int", b"b@h", HOST, 1, COOKIE))
    net.nodes["a"].port_packet(bytes([OP_CTRL]) + b"\x83\xff", net.now)
    net.nodes["a"].port_packet(bytes([9]), net.now)
    assert net.nodes["a"].stats["port_errors"] == 4
    assert net.events["a"] == [] and net.commands["a"] == []


# --- data ------------------------------------------------------------------

def test_data_both_ways() -> None:
    net, (b1, b2) = connected(chans=(1, 2))
    big = bytes(range(256)) * 400
    net.send("a", 1, [b"hello", b"", big])
    net.send("a", 2, [b"on two"])
    net.pump()
    assert net.received("b", b1) == [b"hello", b"", big]
    assert net.received("b", b2) == [b"on two"]
    net.send("b", b1, [b"reply"])
    net.send("b", b2, [b"r2", b"r3"])
    net.pump()
    assert net.received("a", 1) == [b"reply"]
    assert net.received("a", 2) == [b"r2", b"r3"]
    assert net.closed("a") == net.closed("b") == []


# --- closing -----------------------------------------------------------------

def test_close_from_the_dialler() -> None:
    net, (b1,) = connected()
    net.close("a", 1)
    net.pump()
    assert net.closed("b") == [(b1, "peer_closed")]
    assert net.closed("a") == []  # a's BEAM asked; it is not told again
    assert net.nodes["a"].channels == {} and net.nodes["b"].channels == {}
    net.send("a", 1, [b"late"])
    net.pump()
    assert net.nodes["a"].stats["data_after_close"] == 1
    assert net.received("b", b1) == []


def test_close_from_the_acceptor() -> None:
    net, (b1,) = connected()
    net.close("b", b1)
    net.pump()
    assert net.closed("a") == [(1, "peer_closed")]
    assert net.closed("b") == []
    assert net.nodes["a"].channels == {} and net.nodes["b"].channels == {}


def test_closes_that_cross_report_nothing_more() -> None:
    net, (b1,) = connected()
    net.close("a", 1)
    net.send("b", b1, [b"in flight"])
    net.close("b", b1)
    net.pump()
    # each BEAM asked for its close; neither hears of the channel again
    assert net.closed("a") == net.closed("b") == []
    assert net.received("a", 1) == []
    # the data in flight hit a channel a had just closed: no refusal for it
    assert net.sent("a", "b", Kind.CLOSE) and len(net.sent("a", "b", Kind.CLOSE)) == 1
    assert net.nodes["a"].channels == {} and net.nodes["b"].channels == {}


def tick_packet(chan: int) -> bytes:
    """The controller's tick, as py_dist_packet:tick/1 writes it."""
    return struct.pack("!BIQII", OP_FLOWS, chan, TICK, 4, 0)


def test_a_tick_is_delivered_and_neither_acked_nor_kept() -> None:
    net, (b1,) = connected()
    acks = len(net.sent("b", "a", Kind.ACK))
    body = tick_packet(1)
    net._pipe_in("a", struct.pack("!I", len(body)) + body)
    net.pump()
    net.advance_to(0.05)  # past the ack delay
    assert len(net.sent("a", "b", Kind.TICK)) == 1
    assert net.sent("a", "b", Kind.DATA) == []
    assert net.received("b", b1) == [b""]  # an empty packet: erts counts it
    assert len(net.sent("b", "a", Kind.ACK)) == acks
    assert net.nodes["a"].channels[1].sender.bytes == 0  # nothing to resend
    # data after it is sequenced from the start, as if no tick had gone
    net.send("a", 1, [b"after"])
    net.pump()
    assert net.received("b", b1) == [b"", b"after"]


def test_a_tick_waits_for_a_congested_link_and_ticks_do_not_pile_up() -> None:
    net, (b1,) = connected()
    a = net.nodes["a"]
    key = net.key("a", "b")
    a.congestion(key, True, net.now)
    body = tick_packet(1)
    for _ in range(3):
        net._pipe_in("a", struct.pack("!I", len(body)) + body)
    net.pump()
    assert net.sent("a", "b", Kind.TICK) == []
    a.congestion(key, False, net.now)
    net.collect("a")
    net.pump()
    assert len(net.sent("a", "b", Kind.TICK)) == 1
    assert net.received("b", b1) == [b""]


def test_a_tick_for_a_channel_the_far_end_forgot_is_dropped() -> None:
    net, (b1,) = connected()
    table = net.nodes["b"].channels
    table.remove(table[b1])
    body = tick_packet(1)
    net._pipe_in("a", struct.pack("!I", len(body)) + body)
    net.pump()
    assert net.nodes["b"].stats["ticks_unknown_channel"] == 1
    assert net.received("b", b1) == []


# --- liveness ------------------------------------------------------------------

def test_heartbeats_after_a_silent_interval() -> None:
    net, _ = connected()
    net.advance_to(INTERVAL / 2)
    assert net.sent("a", "b", Kind.HEARTBEAT) == net.sent("b", "a", Kind.HEARTBEAT) == []
    net.advance_to(INTERVAL * 1.5)
    assert len(net.sent("a", "b", Kind.HEARTBEAT)) == 1
    assert len(net.sent("b", "a", Kind.HEARTBEAT)) == 1
    net.advance_to(INTERVAL * 3.5)  # a long sleep still sends one, not a burst
    assert len(net.sent("a", "b", Kind.HEARTBEAT)) == 2
    assert net.closed("a") == net.closed("b") == []


def test_a_busy_link_carries_no_heartbeats() -> None:
    net, (b1,) = connected()
    for step in range(1, 20):
        net.advance_to(step * INTERVAL / 4)
        net.send("a", 1, [b"tick"])
        net.pump()
    assert net.sent("a", "b", Kind.HEARTBEAT) == []
    # b's acknowledgements keep the other direction busy
    assert len(net.sent("b", "a", Kind.ACK)) >= 3
    assert net.sent("b", "a", Kind.HEARTBEAT) == []
    assert len(net.received("b", b1)) == 19


def test_a_silent_link_is_declared_dead() -> None:
    """The only link between a and b: declared dead after the longest
    silence the config allows (cutting it is a nodedown, not a reroute)."""
    net, (b1, b2) = connected(chans=(1, 2))
    key = net.key("a", "b")
    net.blocked.add(("b", "a"))  # a hears nothing more from b
    step = 0
    while (step + 1) * 0.05 < SOLE:
        step += 1
        net.advance_to(step * 0.05)
    assert net.closed("a") == []  # not before heartbeat_timeout_max
    assert net.nodes["a"].stats["links_suspected"] == 1
    net.advance_to(SOLE + 0.05)
    assert sorted(net.closed("a")) == [(1, "heartbeat_timeout"), (2, "heartbeat_timeout")]
    assert HangUp(key) in net.commands["a"]
    assert net.nodes["a"].links == {} and net.nodes["a"].channels == {}
    # b kept hearing a's heartbeats until the hangup, then times out too
    assert net.closed("b") == []
    for t in (SOLE + 0.4, SOLE + 0.8, SOLE + 1.6, 2 * SOLE + 0.4):
        net.advance_to(t)
    assert sorted(net.closed("b")) == sorted([(b1, "heartbeat_timeout"),
                                              (b2, "heartbeat_timeout")])
    # nothing to hang up on a ROUTER link: the shell only forgets its queue
    assert [type(c) for c in net.commands["b"]] == [Forget]


def test_a_link_that_stuttered_is_given_room_and_one_that_dies_is_not() -> None:
    """A silence of two thirds of the timeout (an overloaded peer) stretches
    a's bound for that link by the factor that exceeds a clean link's gap
    (1.5 intervals), so the next, longer silence is suspected, not fatal;
    a silence longer than the stretched bound still ends the link."""
    # beats of a tenth of the timeout: room to stutter below it
    interval = TIMEOUT / 10
    net = Net("a", "b", config=replace(Config(), heartbeat_interval=interval))
    handshake(net, "a", "b", 1)
    step = interval / 4
    a = net.nodes["a"]
    (link,) = a.links.values()

    def run(until: float) -> None:
        while net.now + step <= until + 1e-9:
            net.advance_to(net.now + step)

    run(1.0)
    net.blocked.add(("b", "a"))
    # not fatal: with the beat after it, still below the timeout
    run(1.0 + TIMEOUT - 1.5 * interval)
    net.blocked.clear()
    run(2.0)
    assert net.closed("a") == [] and link.gap > 1.5 * interval
    stretched = a.neighbours.liveness.silence_bound(link.gap)
    assert stretched > TIMEOUT + 2 * interval
    net.blocked.add(("b", "a"))
    run(2.0 + TIMEOUT + interval)  # past the timeout: suspected only
    assert net.closed("a") == []
    assert a.stats["links_suspected"] == 1
    run(2.0 + stretched + 2 * interval)  # past the stretched bound: dead
    assert net.closed("a") == [(1, "heartbeat_timeout")]


def test_reconnect_after_a_dead_link() -> None:
    net, (b1,) = connected()
    net.blocked.add(("b", "a"))
    net.advance_to(SOLE + 0.05)
    assert net.closed("a") == [(1, "heartbeat_timeout")]
    net.blocked.clear()
    net.connect("a", 2, "b")
    net.pump()
    assert [type(c) for c in net.commands["a"]] == [Dial, HangUp, Dial]
    (b2, peer) = net.accepted("b")[-1]
    assert peer == b"a@h" and b2 != b1
    # b's stale link times out on its own; the new one lives on
    for step in range(1, 40):
        net.advance_to(SOLE + 0.05 + step * INTERVAL)
    assert net.closed("b") == [(b1, "heartbeat_timeout")]
    net.send("a", 2, [b"again"])
    net.send("b", b2, [b"back"])
    net.pump()
    assert net.received("b", b2) == [b"again"]
    assert net.received("a", 2) == [b"back"]
    assert net.closed("a") == [(1, "heartbeat_timeout")]


def test_nobody_answers_a_dial() -> None:
    """A dial with no answer ends after the longest silence a link may
    have (``heartbeat_timeout_max``): before a first frame come TCP's and
    ZeroMQ's handshakes, several round trips of a maybe long hop."""
    net = Net("a")
    bound = net.nodes["a"].config.heartbeat_timeout_max
    net.beam("a", (Atom("connect"), 1, b"b@h", HOST, 9999, COOKIE))
    (dial,) = net.commands["a"]
    assert isinstance(dial, Dial)
    key = dial.key
    for t in (0.2, 0.65, bound - 0.05):
        net.advance_to(t)
    assert net.closed("a") == []
    net.advance_to(bound + 0.05)
    assert net.closed("a") == [(1, "connect_timeout")]
    assert net.commands["a"][-1] == HangUp(key)


@pytest.mark.parametrize("leaver", ["a", "b"])
def test_port_closed_says_bye(leaver: str) -> None:
    net, (b1,) = connected()
    key = net.key("a", "b")
    net.nodes[leaver].port_closed(net.now)
    net.collect(leaver)
    net.pump()
    other = "b" if leaver == "a" else "a"
    assert len(net.sent(leaver, other, Kind.BYE)) == 1
    assert net.closed(other) == [(b1 if other == "b" else 1, "peer_exit")]
    if other == "a":
        assert net.commands["a"][-1] == HangUp(key)


# --- garbage -------------------------------------------------------------------

def _hb(net: Net, src: str, dst: str) -> bytes:
    return frame.encode(Kind.HEARTBEAT, net.nodes[src].id, net.nodes[dst].id)


GARBAGE = {
    "one part shorter than a header": lambda h: [h[:30]],
    "three parts": lambda h: [h, b"", b""],
    "no parts": lambda h: [],
    "short header": lambda h: [h[:20], b""],
    "long header": lambda h: [h + b"\0", b""],
    "bad version": lambda h: [bytes([h[0] + 1]) + h[1:], b""],
    "bad kind": lambda h: [h[:1] + b"\x63" + h[2:], b""],
}


@pytest.mark.parametrize("garbage", GARBAGE.values(), ids=GARBAGE.keys())
def test_garbage_drops_only_its_link(garbage: Any) -> None:
    net, (b_a,) = connected("c")
    net.connect("c", 3, "b")
    net.pump()
    ((b_c, peer),) = net.accepted("b")[1:]
    assert peer == b"c@h"
    b = net.nodes["b"]
    assert b.stats["frame_errors"] == 0
    b.link_message(net.key("b", "a"), garbage(_hb(net, "a", "b")), net.now)
    net.collect("b")
    assert b.stats["frame_errors"] == 1
    assert net.closed("b") == [(b_a, "protocol_error")]
    # c's channel is untouched, both ways
    net.send("c", 3, [b"from c"])
    net.send("b", b_c, [b"to c"])
    net.pump()
    assert net.received("b", b_c) == [b"from c"]
    assert net.received("c", 3) == [b"to c"]
    assert net.closed("c") == []
    # a learns at its next frame that b dropped the link
    net.send("a", 1, [b"anyone?"])
    net.pump()
    assert net.received("b", b_a) == []
    assert net.closed("a") == [(1, "peer_exit")]
    assert isinstance(net.commands["a"][-1], HangUp)


def test_a_lost_frame_is_sent_again_when_no_ack_comes() -> None:
    """A frame lost with no route change (a node in the middle dropped it):
    no ack moves for resend_timeout, so the sender sends it again."""
    net, (b1,) = connected()
    net.send("a", 1, [b"first"])
    net.drop_queued(Kind.DATA)
    net.send("a", 1, [b"second"])
    net.pump()
    assert net.received("b", b1) == []  # "second" waits for "first"
    step = 0
    while step * INTERVAL / 2 < Config().resend_timeout + INTERVAL:
        step += 1
        net.advance_to(step * INTERVAL / 2)
    assert net.received("b", b1) == [b"first", b"second"]
    assert net.closed("a") == net.closed("b") == []
    assert net.nodes["a"].stats["resend_timeouts"] == 1


def test_a_gap_that_does_not_fill_closes_the_channel() -> None:
    """Every copy of a frame lost: the receiver holds what came after it for
    gap_timeout, then the connection goes down."""
    net, (b1,) = connected()
    net.send("a", 1, [b"first"])
    net.drop_queued(Kind.DATA)
    net.send("a", 1, [b"second"])
    net.pump()

    def lose_resends() -> None:
        net.queue[:] = [m for m in net.queue if not (
            header_of(m[2]).kind == Kind.DATA and header_of(m[2]).seq == 0)]

    gap = Config().gap_timeout
    t = 0.0
    while t < gap + INTERVAL:
        t += INTERVAL / 2
        net.now = t
        for label, node in net.nodes.items():
            node.timer(t)
            net.collect(label)
        lose_resends()
        net.pump()
        if t < gap - INTERVAL:
            assert net.closed("b") == []
    assert net.received("b", b1) == []
    assert net.closed("b") == [(b1, "gap_timeout")]
    assert net.nodes["b"].stats["gaps"] == 1
    assert net.closed("a") == [(1, "peer_closed")]


def test_data_for_an_unknown_channel_is_refused_once() -> None:
    net = Net("a", "b")
    net.connect("a", 1, "b")
    net.pump_until(Kind.OPEN)  # the link is admitted, then a opens the channel
    net.drop_queued(Kind.OPEN)  # b never hears of the channel
    net.pump()
    assert net.accepted("b") == []
    net.send("a", 1, [b"x"])
    net.send("a", 1, [b"y"])
    net.pump()
    assert len(net.sent("b", "a", Kind.CLOSE)) == 1
    assert net.nodes["b"].stats["data_unknown_channel"] == 2
    # the refusal names the channel so that a finds and closes it
    assert net.closed("a") == [(1, "peer_closed")]
    assert net.nodes["a"].channels == {}


def test_unknown_channel_refusal_per_src_and_epoch() -> None:
    net, _ = connected()
    a, b = net.nodes["a"], net.nodes["b"]
    key = net.key("b", "a")
    out = Output()  # b's output from here on, taken after every call

    def stray(epoch: int) -> None:
        hdr = frame.encode(Kind.DATA, a.id, b.id, epoch, 0, flags=FLAG_INITIATOR)
        b.link_message(key, [hdr, port_codec.encode_frames([b"?"])], net.now)
        taken = b.take_output()
        out.port.extend(taken.port)
        out.links.extend(taken.links)

    def closes() -> list[frame.Header]:
        return [header_of(parts) for k, parts in out.links
                if k == key and header_of(parts).kind == Kind.CLOSE]

    stray(1111)
    stray(1111)
    stray(1111)
    assert [(h.src, h.dst, h.epoch, h.flags & FLAG_INITIATOR) for h in closes()] == [
        (b.id, a.id, 1111, 0)]
    stray(2222)
    assert [h.epoch for h in closes()] == [1111, 2222]
    assert b.stats["data_unknown_channel"] == 4
    assert net.closed("b") == [] and out.port == []


def test_open_for_another_node_is_refused() -> None:
    net, _ = connected()
    a, b = net.nodes["a"], net.nodes["b"]
    key = net.key("b", "a")
    before = dict(b.channels)
    hdr = frame.encode(Kind.OPEN, a.id, b.id, 4321, flags=FLAG_INITIATOR)
    b.link_message(key, [hdr, b"\x03a@hzz@h"], net.now)
    out = b.take_output()
    refusals = [(header_of(p), bytes(frame.split(p)[1])) for k, p in out.links if k == key]
    assert [(h.kind, h.dst, h.epoch, body) for h, body in refusals] == [
        (Kind.CLOSE, a.id, 4321, b"wrong_node")]
    assert b.channels == before
    assert out.port == []


def test_dialling_the_wrong_node() -> None:
    net = Net("a", "b")
    net.beam("a", (Atom("connect"), 1, b"x@h", HOST, PORTS["b"], COOKIE))  # b answers there
    key = net.key("a", "b")
    net.pump()
    assert net.accepted("b") == []
    # b's HELLO names it: a gives up before the link carries anything
    kinds = [header_of(parts).kind for src, _, parts in net.emitted if src == "a"]
    assert kinds == [Kind.HELLO]
    assert net.closed("a") == [(1, "wrong_node")]
    assert net.commands["a"][-1] == HangUp(key)


# --- any interleaving ------------------------------------------------------------

steps = st.lists(
    st.one_of(
        st.tuples(st.just("send"), st.integers(0, 5),
                  st.lists(st.binary(max_size=24), min_size=1, max_size=3)),
        st.tuples(st.just("deliver"), st.integers(0, 7), st.just([])),
    ),
    max_size=60,
)


@settings(max_examples=100, deadline=None)
@given(steps)
def test_any_interleaving_delivers_each_channel_in_order(
        plan: list[tuple[str, int, list[bytes]]]) -> None:
    net, (b1, b2) = connected(chans=(1, 2))
    net.connect("b", 9, "a")
    net.pump()
    ((a9, _),) = net.accepted("a")
    # six streams: (sender, its chan) -> (receiver, its chan)
    ends = [("a", 1, "b", b1), ("a", 2, "b", b2), ("a", a9, "b", 9),
            ("b", b1, "a", 1), ("b", b2, "a", 2), ("b", 9, "a", a9)]
    expected: dict[tuple[str, int], list[bytes]] = {(r, rc): [] for _, _, r, rc in ends}
    for op, n, payloads in plan:
        if op == "send":
            sender, chan, receiver, rchan = ends[n]
            net.send(sender, chan, payloads)
            expected[(receiver, rchan)] += payloads
        else:
            net.deliver_one(n)
    net.pump()
    for (receiver, rchan), payloads in expected.items():
        assert net.received(receiver, rchan) == payloads
    assert net.closed("a") == net.closed("b") == []


def test_link_failed_drops_that_link_only() -> None:
    net, (b_a,) = connected("c")
    net.connect("c", 3, "b")
    net.pump()
    b = net.nodes["b"]
    b.link_failed(net.key("b", "a"), "internal error: test", net.now)
    net.collect("b")
    assert net.closed("b") == [(b_a, "protocol_error")]
    assert b.stats["frame_errors"] == 1
    assert len(b.channels) == 1  # c's channel stays


def test_silence_while_not_receiving_kills_no_link() -> None:
    """While the shell does not read links (its BEAM is behind), the silence
    is ours: heartbeats still go out, and no neighbour is declared dead."""
    net, _ = connected()
    a = net.nodes["a"]
    a.set_receiving(False)
    net.blocked.add(("b", "a"))  # a hears nothing from b
    sent_before = len(net.sent("a", "b", Kind.HEARTBEAT))
    for step in range(1, 30):
        a.timer(net.now + step * INTERVAL)
        net.collect("a")
    assert net.closed("a") == []
    assert len(a.links) == 1
    net.pump()
    assert len(net.sent("a", "b", Kind.HEARTBEAT)) > sent_before
    a.set_receiving(True)
    a.timer(net.now + 30 * INTERVAL + SOLE + 0.01)
    net.collect("a")
    assert net.closed("a") == [(1, "heartbeat_timeout")]


def test_congestion_pauses_and_resumes_the_channels_of_that_link_only() -> None:
    net, _ = connected("c", chans=(1, 2))
    net.connect("a", 3, "c")
    net.pump()
    a = net.nodes["a"]
    a.congestion(net.key("a", "b"), True, net.now)
    a.congestion(net.key("a", "b"), True, net.now)  # no news: nothing more said
    net.collect("a")
    assert [e for e in net.ctrl("a") if e[0] in ("pause", "resume")] == [
        ("pause", 1), ("pause", 2)]
    assert a.stats["link_congested"] == 1
    # a channel opened over a congested link starts paused
    net.connect("a", 4, "b")
    net.collect("a")
    assert ("pause", 4) in net.ctrl("a")
    a.congestion(net.key("a", "b"), False, net.now)
    net.collect("a")
    assert [e for e in net.ctrl("a") if e[0] == "resume"] == [
        ("resume", 1), ("resume", 2), ("resume", 4)]
    a.congestion(b"no such link", True, net.now)  # a link already gone: ignored
    net.collect("a")
    assert ("pause", 3) not in net.ctrl("a")


def test_the_beam_can_hold_and_release_link_input() -> None:
    net = Net("a")
    a = net.nodes["a"]
    assert a.beam_holds is False
    net.beam("a", (Atom("input"), Atom("hold")))
    assert a.beam_holds is True
    net.beam("a", (Atom("input"), Atom("release")))
    assert a.beam_holds is False
    assert (a.stats["beam_holds"], a.stats["beam_releases"]) == (1, 1)
    net.beam("a", (Atom("input"), Atom("sideways")))
    assert a.beam_holds is False and a.stats["port_errors"] == 1


class SlowAcks(Net):
    """Acks from b take ``delay`` to reach a: a path slower than
    ``resend_timeout`` (a long radio hop, or port programs queueing)."""

    def __init__(self, delay: float, *labels: str) -> None:
        super().__init__(*labels)
        self.delay = delay
        self.held: list[tuple[float, tuple[str, LinkKey, list[bytes]]]] = []

    def pump(self) -> None:
        while self.queue:
            src, _, parts = self.queue[0]
            if src == "b" and header_of(parts).kind == Kind.ACK:
                self.held.append((self.now + self.delay, self.queue.pop(0)))
            else:
                self._deliver(0)

    def advance_to(self, t: float) -> None:
        due = [m for at, m in self.held if at <= t]
        self.held = [(at, m) for at, m in self.held if at > t]
        self.now = t
        for message in due:
            self.queue.insert(0, message)
            self._deliver(0)
        super().advance_to(t)


def test_a_slow_path_is_measured_and_its_frames_go_once() -> None:
    """Acks 700 ms late, resend_timeout 500 ms: the first frame is sent
    again once; then the sender waits for the measured round trip, and
    the next frames go once each."""
    net = SlowAcks(0.7, "a", "b")
    (b1,) = [handshake(net, "a", "b", 1)]
    stats = net.nodes["a"].stats
    t = net.now
    for i in range(6):
        net.send("a", 1, [b"frame %d" % i])
        net.pump()
        for step in range(1, 41):  # two seconds, in 50 ms steps
            net.advance_to(t + step * 0.05)
        t = net.now
    assert net.received("b", b1) == [b"frame %d" % i for i in range(6)]
    assert stats["resend_timeouts"] == 1
    rto = net.nodes["a"].channels[1].rto
    assert rto is not None and rto.srtt is not None and rto.srtt >= 0.7
    assert net.closed("a") == net.closed("b") == []
