"""Link admission: nothing is acted on before the far end proves the cookie."""

from __future__ import annotations

import pytest
from admit import COOKIE, answer_to, dial_in, hello, named_node, no_cookie_of_its_own
from hypothesis import given, settings
from hypothesis import strategies as st
from test_node import HOST, PORTS, Net, handshake, header_of, name
from test_routing import line

from pydist.core import admission, frame, lsdb, port_codec
from pydist.core.admission import DIALLER, LISTENER, Cookies, proof, verify
from pydist.core.etf import Atom
from pydist.core.wire import HEADER, VERSION, Kind, node_id

N1, N2 = bytes(range(32)), bytes(range(1, 33))


# --- the proof ---------------------------------------------------------------

def test_a_proof_verifies_only_what_it_was_made_for() -> None:
    good = proof(COOKIE, DIALLER, b"a@h", b"b@h", N1, N2)
    assert verify(COOKIE, DIALLER, b"a@h", b"b@h", N1, N2, good)
    assert not verify(b"other", DIALLER, b"a@h", b"b@h", N1, N2, good)
    assert not verify(None, DIALLER, b"a@h", b"b@h", N1, N2, good)
    # reflected: the listener's proof is not the dialler's
    assert not verify(COOKIE, LISTENER, b"a@h", b"b@h", N1, N2, good)
    # names swapped, or moved between the two fields
    assert not verify(COOKIE, DIALLER, b"b@h", b"a@h", N1, N2, good)
    assert not verify(COOKIE, DIALLER, b"a@hb", b"@h", N1, N2, good)
    # another link's nonces
    assert not verify(COOKIE, DIALLER, b"a@h", b"b@h", N2, N1, good)
    assert not verify(COOKIE, DIALLER, b"a@h", b"b@h", N1, N1, good)
    assert not verify(COOKIE, DIALLER, b"a@h", b"b@h", N1, N2, good[:-1])
    assert COOKIE not in good


def test_cookies_are_never_shown() -> None:
    cookies = Cookies()
    cookies.set_own(b"secret-own")
    cookies.use_with(b"x@h", b"secret-x")
    assert b"secret" not in repr(cookies).encode()
    assert cookies.for_peer(b"x@h") == b"secret-x"
    assert cookies.for_peer(b"y@h") == b"secret-own"
    # the node's own cookie again: no per-node one any more
    cookies.use_with(b"x@h", b"secret-own")
    cookies.set_own(b"new")
    assert cookies.for_peer(b"x@h") == b"new"


@pytest.mark.parametrize("payload", [b"", b"x" * 31, bytes(32) + b"noname", bytes(32) + b"\0ep",
                                     bytes(32) + b"a@h\0" + b"e" * 2000])
def test_malformed_hellos_are_refused(payload: bytes) -> None:
    with pytest.raises(admission.HelloError):
        admission.decode_hello(payload)


# --- two nodes ------------------------------------------------------------------

def test_nodes_with_one_cookie_link_and_connect() -> None:
    net = Net("a", "b")
    handshake(net, "a", "b", 1)
    kinds = [header_of(parts).kind for src, _, parts in net.emitted]
    assert kinds[:4] == [Kind.HELLO, Kind.HELLO, Kind.PROOF, Kind.PROOF]
    assert all(n.stats["links_admitted"] == 1 for n in net.nodes.values())


def test_a_wrong_cookie_is_refused_both_ways() -> None:
    net = Net("a", "b")
    net.beam("b", (Atom("cookie"), b"another"))
    net.connect("a", 1, "b")
    net.pump()
    a, b = net.nodes["a"], net.nodes["b"]
    # b asks its BEAM for a cookie of a's own (erlang:set_cookie/2), once;
    # the BEAM has none: its own cookie
    assert ("cookie_please", b"a@h") in [(str(e[0]), e[1]) for e in net.ctrl("b")]
    assert a.links and b.links and b.stats["links_refused_cookie"] == 0
    net.beam("b", (Atom("cookie_for"), b"a@h", b"another"))
    net.pump()
    assert not a.links and not b.links
    assert net.accepted("b") == []
    assert net.closed("a") == [(1, "wrong_cookie")]
    assert b.stats["links_refused_cookie"] == 1
    assert a.stats["links_refused_by_peer_cookie"] == 1
    assert ("link_refused", b"a@h", "wrong_cookie") in [
        (str(e[0]), e[1], str(e[2])) for e in net.ctrl("b") if len(e) == 3]
    # nothing but the admission crossed: no link state, no OPEN
    kinds = {header_of(parts).kind for _, _, parts in net.emitted}
    assert kinds == {Kind.HELLO, Kind.PROOF, Kind.BYE}
    assert a.router.db.get(b"b@h") is None and b.router.db.get(b"a@h") is None


def test_a_per_node_cookie_admits_the_link_to_that_node() -> None:
    """erlang:set_cookie(b, C): the BEAM hands C with the connect; b, whose
    own cookie C is, checks a with it."""
    net = Net("a", "b")
    net.beam("b", (Atom("cookie"), b"bs-cookie"))
    net.beam("a", (Atom("connect"), 1, name("b"), HOST, PORTS["b"], b"bs-cookie"))
    net.pump()
    assert [peer for _, peer in net.accepted("b")] == [b"a@h"]
    assert net.nodes["a"].cookies.for_peer(b"c@h") == b"test-cookie"


def test_a_per_node_cookie_admits_a_link_from_that_node() -> None:
    """erlang:set_cookie(a, C) on b, before a dials: b's BEAM knows C but
    has not handed it over (no connect to a): b asks for it when a's proof
    does not verify with b's own cookie, and admits a with it."""
    net = Net("a", "b")
    net.beam("a", (Atom("connect"), 1, name("b"), HOST, PORTS["b"], b"as-cookie"))
    net.pump()
    b = net.nodes["b"]
    assert [(str(e[0]), e[1]) for e in net.ctrl("b")] == [("cookie_please", b"a@h")]
    net.beam("b", (Atom("cookie_for"), b"a@h", b"as-cookie"))
    net.pump()
    assert [peer for _, peer in net.accepted("b")] == [b"a@h"]
    assert b.stats["links_refused_cookie"] == 0 and b.stats["links_admitted"] == 1
    assert b.cookies.for_peer(b"a@h") == b"as-cookie"
    # a late or repeated answer for a link no longer waiting changes nothing
    net.beam("b", (Atom("cookie_for"), b"a@h", b"as-cookie"))
    net.pump()
    assert b.stats["links_admitted"] == 1


def test_a_node_without_a_cookie_admits_nobody() -> None:
    node = named_node(cookie=b"")
    assert not dial_in(node, b"peer", b"b@h")
    assert node.stats["links_refused_cookie"] == 1


# --- an outsider -------------------------------------------------------------------

def _frames_of_every_kind(src: bytes, dst: bytes) -> list[list[bytes]]:
    s, d = node_id(src), node_id(dst)
    lsp = lsdb.encode(lsdb.Lsp(src, 1 << 40, 60.0, ((dst, 1), (b"z@h", 1))))
    return [
        [HEADER.pack(VERSION, Kind.LANE, 0, 16, lane, 1, s, d, lane, 0, 1), b"\x83payload"]
        for lane in (1, 2, 3)
    ] + [
        frame.join(frame.encode(Kind.LSP, s, 0), lsp),
        frame.join(frame.encode(Kind.SUMMARY, s, 0), b"\0\0"),
        frame.join(frame.encode(Kind.OPEN, s, d, 5), b"\x03x@h" + dst),
        frame.join(frame.encode(Kind.DATA, s, d, 5, seq=1), b"\0\0\0\1x"),
        frame.join(frame.encode(Kind.HEARTBEAT, s, 0), b""),
        frame.join(frame.encode(Kind.ACK, s, d, 5), b""),
    ]


def test_frames_before_the_proof_are_dropped_counted_and_logged_once(
        caplog: pytest.LogCaptureFixture) -> None:
    node = named_node()
    node.link_message(b"evil", hello(b"x@h", N1), 0.0)
    assert answer_to(node.take_output(), b"evil", Kind.HELLO) is not None
    for parts in _frames_of_every_kind(b"x@h", b"a@h"):
        node.link_message(b"evil", parts, 0.0)
    assert node.stats["frames_before_proof"] == 9
    assert len([r for r in caplog.records if "before it proved" in r.message]) == 1
    assert node.take_output().port == []  # nothing for the BEAM: no delivery, no channel
    assert node.router.db.get(b"x@h") is None and node.router.db.get(b"z@h") is None
    assert not node.channels and not node.links[b"evil"].up
    # and the link is closed soon: the dropped frames did not keep it alive
    node.timer(node.config.heartbeat_timeout_max + 0.01)
    assert b"evil" not in node.links


def test_a_chatty_unproven_link_is_closed_by_the_admission_bound() -> None:
    node = named_node()
    node.link_message(b"evil", hello(b"x@h", N1), 0.0)
    node.hold_rx(None, True)  # silence is not the peer's while we hold input
    node.timer(admission.ADMIT_TIMEOUT - 0.1)
    assert b"evil" in node.links
    node.timer(admission.ADMIT_TIMEOUT)
    assert b"evil" not in node.links


def test_a_second_hello_or_an_early_proof_drops_the_link() -> None:
    node = named_node()
    node.link_message(b"p1", frame.join(frame.encode(Kind.PROOF, 1, 0), bytes(32)), 0.0)
    assert b"p1" not in node.links  # unknown link: answered with a BYE only
    node.link_message(b"p2", hello(b"x@h", N1), 0.0)
    node.link_message(b"p2", hello(b"x@h", N2), 0.0)
    assert b"p2" not in node.links and node.stats["frame_errors"] == 1
    assert dial_in(node, b"p3", b"y@h")
    node.link_message(b"p3", frame.join(frame.encode(Kind.PROOF, 1, 0), bytes(32)), 0.0)
    assert b"p3" not in node.links


def test_the_listener_does_not_prove_first() -> None:
    """An outsider who dials learns nothing to test cookie guesses on."""
    node = named_node()
    node.link_message(b"evil", hello(b"x@h", N1), 0.0)
    assert answer_to(node.take_output(), b"evil", Kind.PROOF) is None
    node.link_message(b"evil", frame.join(frame.encode(Kind.PROOF, 1, 0), bytes(32)), 0.0)
    out = node.take_output()
    assert answer_to(out, b"evil", Kind.PROOF) is None
    out = no_cookie_of_its_own(node, b"x@h", out)
    assert answer_to(out, b"evil", Kind.PROOF) is None
    assert answer_to(out, b"evil", Kind.BYE) == b"wrong_cookie"


def test_a_reflected_proof_does_not_admit() -> None:
    """The outsider opens two links and hands a's own answers back to it."""
    node = named_node()
    node.link_message(b"one", hello(b"x@h", N1), 0.0)
    reply = answer_to(node.take_output(), b"one", Kind.HELLO)
    assert reply is not None
    a_nonce = admission.decode_hello(reply)[0]
    # on a second link, the outsider offers a's nonce as its own
    node.link_message(b"two", hello(b"x@h", a_nonce), 0.0)
    out = node.take_output()
    assert answer_to(out, b"two", Kind.PROOF) is None  # a never proves to a dialler first
    assert not any(link.up for link in node.links.values())


def _step(kind: Kind, arg: object, extra: bytes, right: bytes | None) -> list[bytes]:
    """One frame of a made-up handshake: a HELLO (``extra`` the name, none
    for a bare nonce), a random payload, or with ``extra`` "flip" the
    ``right`` proof (when there is one yet) with bit ``arg`` flipped."""
    if kind == Kind.HELLO:
        assert isinstance(arg, bytes)
        payload = admission.encode_hello(arg, extra, b"") if extra else arg
    elif extra == b"flip" and right is not None:
        assert isinstance(arg, int)
        flipped = bytearray(right)
        flipped[arg // 8] ^= 1 << arg % 8
        payload = bytes(flipped)
    else:
        payload = arg if isinstance(arg, bytes) else b""
    return frame.join(frame.encode(kind, 1, 0), payload)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(
    st.tuples(st.just(Kind.HELLO), st.binary(min_size=32, max_size=32),
              st.sampled_from([b"x@h", b"b@h", b"a@h", b""])),
    st.tuples(st.just(Kind.PROOF), st.binary(max_size=40), st.just(b"")),
    st.tuples(st.just(Kind.PROOF), st.integers(0, 255), st.just(b"flip")),
    st.tuples(st.sampled_from([Kind.BYE, Kind.LSP, Kind.LANE, Kind.OPEN, Kind.HEARTBEAT]),
              st.binary(max_size=40), st.just(b"")),
), max_size=12), st.sampled_from([b"k1", b"k2"]))
def test_no_link_is_admitted_without_a_valid_proof(steps: list[tuple[Kind, object, bytes]],
                                                   key: bytes) -> None:
    """Random and mutated handshakes, on two links: only the documented
    outcomes (dropped, refused, closed), never an admission. A mutated
    proof is the right one with one bit flipped."""
    node = named_node()
    for kind, arg, extra in steps:
        link = node.links.get(key)
        right = None
        if link is not None and link.peer_nonce and link.claimed is not None:
            right = proof(COOKIE, DIALLER, link.claimed, b"a@h", link.peer_nonce, link.nonce)
        node.link_message(key, _step(kind, arg, extra, right), 0.0)
        assert not any(ln.up for ln in node.links.values())
    assert node.stats["links_admitted"] == 0
    assert not node.channels and node.router.db.get(b"x@h") is None


# --- lanes and the distribution connection --------------------------------------

def _lane(net: Net, src: str, dst: str, body: bytes) -> None:
    net.nodes[src].lanes.send(1, 0, name(dst), b"", memoryview(body), net.now)
    net.collect(src)
    net.pump()


def test_lane_messages_wait_for_a_connection_in_its_handshake() -> None:
    net = line()  # a - b - c: a's link to c's is admitted through b
    _lane(net, "a", "c", b"no connection")
    assert net.delivered("c") == []
    assert net.nodes["c"].stats["lane_unordered_dropped_not_connected"] == 1
    # a connection on its way: a's side is up, c's not yet
    net.connect("a", 1, "c")
    net.pump()
    ((c_chan, _),) = net.accepted("c")
    net.beam("a", (Atom("up"), 1))
    _lane(net, "a", "c", b"early")
    assert net.delivered("c") == []
    net.beam("c", (Atom("up"), c_chan))
    assert net.delivered("c") == [b"early"]
    _lane(net, "a", "c", b"later")
    assert net.delivered("c") == [b"early", b"later"]


def test_lane_messages_waiting_for_a_handshake_that_fails_are_dropped() -> None:
    net = line()
    net.connect("a", 1, "c")
    net.pump()
    ((c_chan, _),) = net.accepted("c")
    _lane(net, "a", "c", b"never")
    net.close("c", c_chan)  # the handshake failed on c's side
    net.beam("c", (Atom("up"), c_chan))  # too late: no channel
    assert net.delivered("c") == []
    assert net.nodes["c"].stats["lane_unordered_dropped_not_connected"] == 1
    assert net.nodes["c"].lanes.early_bytes == 0


@pytest.mark.parametrize("order", range(6))
def test_connections_made_both_ways_at_once_open_before_any_data(order: int) -> None:
    """Each node dials the other for its connection at the same moment: a
    channel whose link is still proving may move to the other link, once
    that is admitted; its OPEN goes first wherever it goes (found by a real
    restart: DATA before OPEN was refused as unknown_channel)."""
    net = Net("a", "b", seed=order)
    net.connect("a", 1, "b")
    net.connect("b", 1, "a")
    while net.queue:
        net.deliver_one(order)
    assert [p for _, p in net.accepted("b")] == [b"a@h"]
    assert [p for _, p in net.accepted("a")] == [b"b@h"]
    for label in ("a", "b"):
        net.send(label, 1, [label.encode()])
    net.pump()
    for label, other in (("a", "b"), ("b", "a")):
        ((chan, _),) = net.accepted(label)
        assert net.received(label, chan) == [other.encode()]
        assert net.closed(label) == []
        assert net.nodes[label].stats["data_unknown_channel"] == 0


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(
    st.tuples(st.just(Kind.HELLO), st.binary(min_size=32, max_size=32),
              st.sampled_from([b"b@h", b"x@h", b""])),
    st.tuples(st.just(Kind.PROOF), st.binary(max_size=40), st.just(b"")),
    st.tuples(st.just(Kind.PROOF), st.integers(0, 255), st.just(b"flip")),
    st.tuples(st.sampled_from([Kind.BYE, Kind.LSP, Kind.HEARTBEAT]),
              st.binary(max_size=40), st.just(b"")),
), max_size=10))
def test_a_dialler_admits_no_listener_without_a_valid_proof(
        steps: list[tuple[Kind, object, bytes]]) -> None:
    """The node dials b; whatever answers there (an impostor at b's
    endpoint) says random or mutated things: the link is never admitted."""
    node = named_node()
    node.port_packet(port_codec.encode_ctrl(
        (Atom("link"), b"b@h", b"127.0.0.1", 4242, 10, COOKIE))[4:], 0.0)
    ((key, link),) = node.links.items()
    for kind, arg, extra in steps:
        right = None
        if link.peer_nonce:
            right = proof(COOKIE, LISTENER, b"a@h", b"b@h", link.nonce, link.peer_nonce)
        node.link_message(key, _step(kind, arg, extra, right), 0.0)
        assert not link.up
    assert node.stats["links_admitted"] == 0 and node.router.db.get(b"b@h") is None
