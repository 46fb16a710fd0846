"""Node keys at work: key files, sealed frames, signed link state, and what
a node with a valid key of its own cannot do in another node's name.

The in-memory networks are :class:`Net` of ``test_node``, with keys.
"""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_node import COOKIE, Net, handshake, name
from test_routing import RNet

from pydist.core import frame, lsdb
from pydist.core.etf import Atom
from pydist.core.trust import (
    SEAL_OVERHEAD,
    SealError,
    Trust,
    TrustError,
    format_line,
    generate,
    parse_authorized,
    parse_secret,
)
from pydist.core.wire import FLAG_SEALED, HEADER_SIZE, Kind, node_id

LABELS = "abcde"
#: one key pair per node, made once: (public, seed)
PAIRS = {label: generate() for label in LABELS}
AUTHORIZED = {name(label): public for label, (public, _) in PAIRS.items()}


def trust(label: str, authorized: dict[bytes, bytes] | None = None) -> Trust:
    return Trust(name(label), PAIRS[label][1], AUTHORIZED if authorized is None else authorized)


def keyed(labels: str, links: dict[str, int]) -> RNet:
    """As ``test_routing.build``, every node with its key."""
    net = RNet(*labels, trusts={label: trust(label) for label in labels})
    for uv, cost in links.items():
        net.link(uv[0], uv[1], cost)
    net.pump()
    return net


def _header(kind: Kind = Kind.DATA, src: str = "a", dst: str = "b", seq: int = 1) -> bytes:
    return frame.encode(kind, node_id(name(src)), node_id(name(dst)), 7, seq=seq,
                        flags=FLAG_SEALED)


# --- files ---------------------------------------------------------------------------


def test_authorized_keys_file_round_trip() -> None:
    text = "# the cluster\n\n" + "\n".join(
        f"  {format_line(name(x).decode(), PAIRS[x][0])}  " for x in "ab") + "\n"
    assert parse_authorized(text) == {name("a"): PAIRS["a"][0], name("b"): PAIRS["b"][0]}
    assert parse_secret(f"# secret\n{format_line('a@h', PAIRS['a'][1])}\n") == (
        b"a@h", PAIRS["a"][1])


@pytest.mark.parametrize("text", [
    "a@h\n",
    "a@h c2hvcnQ=\n",  # base64, but 5 bytes
    "a@h " + "A" * 43 + "= extra\n",
    "a@h " + "!" * 44 + "\n",
    "noname " + format_line("x", PAIRS["a"][0]).split()[1] + "\n",
    "a@h " + "A" * 43 + "=\n",  # 32 bytes, not a point of the curve... (all zero: small order)
])
def test_malformed_authorized_lines_are_refused(text: str) -> None:
    with pytest.raises(TrustError):
        parse_authorized(text)


def test_a_name_or_key_listed_twice_is_refused() -> None:
    a, b = PAIRS["a"][0], PAIRS["b"][0]
    with pytest.raises(TrustError):
        parse_authorized(f"{format_line('a@h', a)}\n{format_line('b@h', a)}\n")
    with pytest.raises(TrustError):
        parse_authorized(f"{format_line('a@h', a)}\n{format_line('a@h', b)}\n")


@pytest.mark.parametrize("text", ["", "# only\n", "a@h\n", "a@h x y\n", "a@h QUJD\nb@h QUJD\n"])
def test_malformed_secret_files_are_refused(text: str) -> None:
    with pytest.raises(TrustError):
        parse_secret(text)


@given(st.text(max_size=300))
def test_any_text_parses_or_is_refused_cleanly(text: str) -> None:
    try:
        keys = parse_authorized(text)
    except TrustError:
        return
    assert all(b"@" in n for n in keys)


# --- sealing -------------------------------------------------------------------------


def test_seal_round_trip_and_what_a_seal_hides() -> None:
    a, b = trust("a"), trust("b")
    header = _header()
    secret = b"the plaintext of a known message " * 4
    sealed = a.seal(node_id(name("b")), header, secret)
    assert len(sealed) == len(secret) + SEAL_OVERHEAD
    assert b"known message" not in sealed
    assert b.open(node_id(name("a")), header, sealed) == secret
    # the hop limit is not sealed: nodes in the middle lower it
    lowered = bytearray(header)
    lowered[3] -= 5
    assert b.open(node_id(name("a")), bytes(lowered), sealed) == secret
    # a second seal of the same bytes differs: a nonce never repeats
    assert a.seal(node_id(name("b")), header, secret) != sealed


@settings(max_examples=300)
@given(st.binary(max_size=200), st.data())
def test_any_change_to_a_sealed_frame_is_caught(payload: bytes, data: st.DataObject) -> None:
    a, b = trust("a"), trust("b")
    header = _header()
    sealed = bytearray(a.seal(node_id(name("b")), header, payload))
    head = bytearray(header)
    where = data.draw(st.sampled_from(["payload", "header"]))
    if where == "payload":
        sealed[data.draw(st.integers(0, len(sealed) - 1))] ^= data.draw(st.integers(1, 255))
    else:
        index = data.draw(st.integers(0, HEADER_SIZE - 1).filter(lambda i: i != 3))
        head[index] ^= data.draw(st.integers(1, 255))
    with pytest.raises(SealError):
        b.open(node_id(name("a")), bytes(head), bytes(sealed))


def test_only_the_two_ends_can_open_and_each_direction_has_its_key() -> None:
    a, b, e_key = trust("a"), trust("b"), trust("e")
    header = _header()
    sealed = a.seal(node_id(name("b")), header, b"x")
    with pytest.raises(SealError):  # e holds a valid key, but not b's
        e_key.open(node_id(name("a")), header, sealed)
    with pytest.raises(SealError):  # what a sent to b, replayed to a as b's
        a.open(node_id(name("b")), header, sealed)
    # e cannot make a frame b takes for a's: sealed with e's own key, it
    # opens only as e's
    forged = e_key.seal(node_id(name("b")), header, b"x")
    with pytest.raises(SealError):
        b.open(node_id(name("a")), header, forged)
    assert b.open(node_id(name("e")), header, forged) == b"x"


def test_unknown_nodes_and_short_payloads() -> None:
    a = trust("a", {name("a"): PAIRS["a"][0]})
    with pytest.raises(SealError):
        a.seal(node_id(name("b")), _header(), b"x")
    with pytest.raises(SealError):
        trust("b").open(node_id(name("a")), _header(), b"short")


# --- signed link state ---------------------------------------------------------------


def test_signatures_bind_link_state_to_its_origin() -> None:
    a, b = trust("a"), trust("b")
    lsp = lsdb.Lsp(name("a"), 3, 60.0, ((name("b"), 10),), b"h:1")
    signed = dataclasses.replace(lsp, signature=a.sign(lsdb.signed_part(lsp)))
    wire = lsdb.encode(signed, 12.5)
    back = lsdb.decode(wire, 16, signed=True)
    assert back.signature == signed.signature and back.lifetime == 12.5
    assert b.verify(name("a"), lsdb.signed_part(back), back.signature)
    other = dataclasses.replace(back, neighbours=((name("c"), 10),))
    assert not b.verify(name("a"), lsdb.signed_part(other), back.signature)
    assert not b.verify(name("c"), lsdb.signed_part(back), back.signature)
    with pytest.raises(lsdb.LspError):
        lsdb.decode(wire[:40], 16, signed=True)


def _forge_lsp(net: RNet, by: str, to: str, origin: str, neighbours: tuple[str, ...],
               key: str | None = None, seq: int = 1000, lifetime: float = 60.0) -> None:
    """``by`` sends ``to`` an LSP in ``origin``'s name, signed with ``key``'s key."""
    lsp = lsdb.Lsp(name(origin), seq, lifetime, tuple((name(n), 1) for n in neighbours))
    signer = trust(key) if key else None
    if signer is not None:
        lsp = dataclasses.replace(lsp, signature=signer.sign(lsdb.signed_part(lsp)))
    payload = lsdb.encode(lsp) + (b"" if signer else bytes(64))
    header = frame.encode(Kind.LSP, node_id(name(by)), 0)
    net.nodes[to].link_message(net.key(to, by), [header + payload], net.now)
    net.collect(to)
    net.pump()


@pytest.mark.parametrize("key", ["e", None], ids=["signed_by_itself", "unsigned"])
def test_a_node_cannot_flood_link_state_in_another_nodes_name(key: str | None) -> None:
    """e, with a valid key, tells b that a's only neighbour is e (to draw
    a's traffic): b ignores it, counts it, keeps its link to e and its routes."""
    net = keyed("abce", {"ba": 10, "bc": 10, "eb": 10})
    b = net.nodes["b"]
    before = b.router.db.get(name("a"))
    _forge_lsp(net, "e", "b", "a", ("e",), key=key)
    assert b.stats["lsp_forged"] == 1
    assert b.router.db.get(name("a")) == before
    assert all(ln.up for ln in b.links.values()) and len(b.links) == 3
    assert net.nodes["c"].router.via[name("a")] == name("b")


def test_signed_link_state_floods_and_routes() -> None:
    """a - b - c - d with keys: everyone learns everyone, signatures intact
    three hops from their origin, nothing refused."""
    net = keyed("abcd", {"ab": 10, "bc": 10, "cd": 10})
    d = net.nodes["d"]
    assert d.router.via[name("a")] == name("c")
    held = d.router.db.get(name("a"))
    assert held is not None and len(held.signature) == 64
    assert all(n.stats["lsp_forged"] == 0 for n in net.nodes.values())


def test_a_forwarded_lifetime_is_capped() -> None:
    """The lifetime is not signed: a node in the middle that stretches one
    stretches it no further than the receiver's own lsp_lifetime."""
    net = keyed("abe", {"ab": 10, "eb": 10})
    b = net.nodes["b"]
    held = b.router.db.get(name("a"))
    assert held is not None
    net.blocked.add(("b", "a"))  # else a outbids the copy at once
    _forge_lsp(net, "e", "b", "a", ("b",), key="a", seq=held.seq + 1, lifetime=100_000.0)
    assert b.stats["lsp_forged"] == 0 and b.stats["lsp_new"] > 0
    assert b.router.db.remaining(name("a"), net.now) <= b.config.lsp_lifetime


# --- sealed frames between nodes -----------------------------------------------------


def test_a_channel_through_a_keyed_middle_node() -> None:
    """a reaches c through b: every end-to-end frame b forwards is sealed,
    b sees no plaintext, c gets every packet in order."""
    net = keyed("abc", {"ba": 3, "bc": 5})
    c1 = net.open("a", 1, "c")
    secret = b"a known message that b must not read"
    net.send("a", 1, [secret, b"two"])
    net.send("c", c1, [b"back"])
    net.pump()
    assert net.received("c", c1) == [secret, b"two"]
    assert net.received("a", 1) == [b"back"]
    through_b = [(h, body) for _, s, d, h, body in net.log
                 if h is not None and "b" in (s, d) and h.kind in (Kind.OPEN, Kind.DATA)]
    assert len(through_b) >= 6  # OPEN and 2 DATA frames, into and out of b
    assert all(h.flags & FLAG_SEALED for h, _ in through_b)
    assert not any(secret in part or b"c@h" in part for _, body in through_b for part in body)
    assert all(n.stats["frames_forged"] == 0 for n in net.nodes.values())


def _inject(net: Net, by: str, to: str, header: bytes, payload: bytes) -> None:
    net.nodes[to].link_message(net.key(to, by), [header, payload] if len(payload) > 100
                               else [header + payload], net.now)
    net.collect(to)
    net.pump()


def test_a_node_cannot_open_or_inject_a_channel_in_another_nodes_name() -> None:
    """e, with a valid key and a link to c, sends c an OPEN and DATA in a's
    name: sealed with its own key, unsealed, or replayed from a real
    channel. c accepts nothing, delivers nothing, counts each, and keeps
    e's link and a's channel."""
    net = keyed("abce", {"ba": 10, "bc": 10, "ec": 10})
    c = net.nodes["c"]
    c1 = net.open("a", 1, "c")
    net.send("a", 1, [b"real"])
    net.pump()
    real_head, real = next((h, body[0]) for _, s, d, h, body in net.log
                       if h is not None and h.kind == Kind.DATA and (s, d) == ("b", "c"))
    a_id, c_id = node_id(name("a")), node_id(name("c"))
    e_key = trust("e")
    accepted = len(net.accepted("c"))
    payload = bytes([3]) + b"a@hc@h"
    for flags in (FLAG_SEALED, 0):
        head = frame.encode(Kind.OPEN, a_id, c_id, 99, flags=flags)
        _inject(net, "e", "c", head, e_key.seal(c_id, head, payload) if flags else payload)
        head = frame.encode(Kind.DATA, a_id, c_id, 99, seq=1, flags=flags)
        _inject(net, "e", "c", head, e_key.seal(c_id, head, b"x") if flags else b"x")
    # the real DATA frame of a's channel, replayed: a duplicate, dropped
    _inject(net, "e", "c", real_head.encode(), real)
    assert c.stats["frames_forged"] == 4
    assert c.stats["duplicates_dropped"] == 1
    assert len(net.accepted("c")) == accepted
    assert net.received("c", c1) == [b"real"]
    assert len(c.links) == 2 and all(ln.up for ln in c.links.values())
    net.send("a", 1, [b"after"])
    net.pump()
    assert net.received("c", c1) == [b"real", b"after"]


def test_lane_messages_are_sealed_end_to_end() -> None:
    net = keyed("abc", {"ba": 3, "bc": 5})
    for label in "ac":
        net.beam(label, (Atom("link"), name("b"), b"127.0.0.1", 4242, 10, COOKIE))
    net.pump()
    handshake(net, "a", "c", 1)
    a = net.nodes["a"]
    message = b"lane plaintext " * 10_000  # several chunks
    a.lanes.send(1, 0, name("c"), b"", memoryview(message), net.now)
    net.collect("a")
    net.pump()
    assert net.delivered("c") == [message]
    lane_frames = [body for _, s, d, h, body in net.log
                   if h is not None and h.kind == Kind.LANE and s == "b"]
    assert len(lane_frames) > 1
    assert not any(b"lane plaintext" in part for body in lane_frames for part in body)


def test_no_channel_to_a_node_without_a_key() -> None:
    """A connect to a node the authorized keys do not list fails at once."""
    net = RNet("a", "b", trusts={"a": trust("a", {name("a"): PAIRS["a"][0]})})
    net.connect("a", 1, "b")
    net.pump()
    assert net.closed("a") == [(1, "no_route")]
