"""Test helpers: a node named and given its cookie, and a neighbour played
by hand that dials it and proves the cookie (the admission of a link)."""

from __future__ import annotations

import random

from pydist.core import admission, frame, port_codec
from pydist.core.config import Config
from pydist.core.etf import Atom
from pydist.core.node import Node
from pydist.core.output import Output
from pydist.core.trust import Trust
from pydist.core.wire import Kind, node_id

COOKIE = b"test-cookie"


def named_node(name: bytes = b"a@h", trust: Trust | None = None,
               cookie: bytes = COOKIE) -> Node:
    node = Node(Config(), 0.0, rng=random.Random(0), trust=trust)
    node.port_packet(port_codec.encode_ctrl((Atom("set_node"), name))[4:], 0.0)
    node.port_packet(port_codec.encode_ctrl((Atom("cookie"), cookie))[4:], 0.0)
    return node


def hello(peer: bytes, nonce: bytes, endpoint: bytes = b"tcp://127.0.0.1:1") -> list[bytes]:
    return frame.join(frame.encode(Kind.HELLO, node_id(peer), 0),
                      admission.encode_hello(nonce, peer, endpoint))


def answer_to(out: Output, key: bytes, kind: Kind) -> bytes | None:
    """The payload of the last frame of ``kind`` a node wrote on ``key``,
    in ``out`` (what it took from the node)."""
    found = None
    for k, parts in out.links:
        if k == key and frame.decode(bytes(parts[0])[:frame.HEADER_SIZE]).kind == kind:
            found = b"".join(bytes(p) for p in parts)[frame.HEADER_SIZE:]
    return found


def dial_in(node: Node, key: bytes, peer: bytes, cookie: bytes = COOKIE,
            now: float = 0.0) -> bool:
    """Play ``peer`` dialling ``node`` on link ``key``: HELLO, then a proof
    made with ``cookie``. Whether the node admitted the link."""
    nonce = bytes(range(32))
    node.take_output()
    node.link_message(key, hello(peer, nonce), now)
    reply = answer_to(node.take_output(), key, Kind.HELLO)
    if reply is None:
        return False
    their_nonce, their_name, _ = admission.decode_hello(reply)
    answer = admission.proof(cookie, admission.DIALLER, peer, their_name, nonce, their_nonce)
    node.link_message(key, frame.join(frame.encode(Kind.PROOF, node_id(peer), 0), answer), now)
    no_cookie_of_its_own(node, peer, node.take_output(), now)
    link = node.links.get(key)
    return link is not None and link.up


def no_cookie_of_its_own(node: Node, peer: bytes, out: Output, now: float = 0.0) -> Output:
    """Play the BEAM that keeps no cookie of ``peer``'s own: if ``out``
    asks for one (a proof that did not verify), answer with the node's own
    cookie. The node's output after it (``out`` if nothing was asked)."""
    asked = port_codec.encode_ctrl((Atom("cookie_please"), peer))
    if not any(bytes(p) == asked for p in out.port):
        return out
    own = node.cookies.own or b""
    node.port_packet(port_codec.encode_ctrl((Atom("cookie_for"), peer, own))[4:], now)
    return node.take_output()
