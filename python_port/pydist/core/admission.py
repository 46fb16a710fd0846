"""Link admission: a link carries nothing until each end proved the cookie.

The two ends of a new link swap HELLOs (name, listening endpoint, and a
fresh random nonce each), then prove, dialler first, that they hold the
cookie: a PROOF is HMAC-SHA256 keyed with the cookie over both names, both
nonces and the prover's role. It is ``dist_util``'s challenge and digest,
with a modern keyed hash, and bound to the link: a proof answers only the
verifier's nonce of this link, in this direction, between these two names,
so it can neither be replayed on another link nor reflected back. The
listener proves only after the dialler did, as the acceptor of a
distribution handshake does: an outsider who dials a node learns nothing
it could test cookie guesses against offline.

The cookie is the one ``dist_util`` would use with that peer:
``auth:get_cookie(Peer)``, that is the node's own cookie unless
``erlang:set_cookie(Peer, C)`` set another one. The BEAM hands over the
node's own cookie (at start and whenever it changes) and a per-node one
with each connection or link it asks for; :class:`Cookies` keeps them and
never shows them, not even in a ``repr``.
"""

from __future__ import annotations

import hashlib
import hmac
from collections import OrderedDict

from pydist.core.wire import Kind

NONCE_SIZE = 32
PROOF_SIZE = 32
#: a HELLO's payload: nonce, name, NUL, endpoint; names are at most 255
#: bytes in Erlang and endpoints short, so this is generous
MAX_HELLO = 1024
#: who proves: the node that dialled the link, or the one that accepted it
DIALLER = b"dialler"
LISTENER = b"listener"
_DOMAIN = b"py_dist link proof v1"
#: what a link carries before both ends proved the cookie
KINDS = frozenset((Kind.HELLO, Kind.PROOF, Kind.BYE))
#: seconds a link may take to be admitted, however chatty its far end
ADMIT_TIMEOUT = 5.0
#: per-node cookies kept (erlang:set_cookie/2 is for a few special peers)
_MAX_PER_NODE = 4096


class HelloError(ValueError):
    pass


def encode_hello(nonce: bytes, name: bytes, endpoint: bytes) -> bytes:
    return nonce + name + b"\0" + endpoint


def decode_hello(payload: bytes) -> tuple[bytes, bytes, bytes]:
    """(nonce, name, endpoint) of a HELLO; :class:`HelloError` if it is none."""
    if len(payload) > MAX_HELLO:
        raise HelloError(f"HELLO of {len(payload)} bytes")
    nonce, rest = payload[:NONCE_SIZE], payload[NONCE_SIZE:]
    name, sep, endpoint = rest.partition(b"\0")
    if len(nonce) < NONCE_SIZE or not sep or not name:
        raise HelloError("HELLO without a nonce, a name or an endpoint")
    return nonce, name, endpoint


def proof(cookie: bytes, role: bytes, dialler: bytes, listener: bytes,
          dialler_nonce: bytes, listener_nonce: bytes) -> bytes:
    """What ``role`` sends to prove it holds ``cookie`` on this one link."""
    message = b"\0".join((_DOMAIN, role, _lv(dialler), _lv(listener),
                          dialler_nonce, listener_nonce))
    return hmac.new(cookie, message, hashlib.sha256).digest()


def verify(cookie: bytes | None, role: bytes, dialler: bytes, listener: bytes,
           dialler_nonce: bytes, listener_nonce: bytes, answer: bytes) -> bool:
    if not cookie or len(answer) != PROOF_SIZE:
        return False
    want = proof(cookie, role, dialler, listener, dialler_nonce, listener_nonce)
    return hmac.compare_digest(want, answer)


def _lv(field: bytes) -> bytes:
    """Length and value: names of any content cannot run into each other."""
    return len(field).to_bytes(2, "big") + field


class Cookies:
    """The node's own cookie, and the per-node ones the BEAM uses with a few
    peers. Never logged, printed or stored anywhere but here."""

    def __init__(self) -> None:
        self.own: bytes | None = None
        self._per_node: OrderedDict[bytes, bytes] = OrderedDict()

    def __repr__(self) -> str:
        return f"<Cookies own={'set' if self.own else 'unset'} per_node={len(self._per_node)}>"

    def set_own(self, cookie: bytes) -> None:
        self.own = cookie or None

    def use_with(self, peer: bytes, cookie: bytes) -> None:
        """The cookie the BEAM would use with ``peer``: kept if it is not
        the node's own (the own one may change later; this one stays)."""
        if not cookie or cookie == self.own:
            self._per_node.pop(peer, None)
            return
        self._per_node[peer] = cookie
        self._per_node.move_to_end(peer)
        if len(self._per_node) > _MAX_PER_NODE:
            self._per_node.popitem(last=False)

    def for_peer(self, peer: bytes) -> bytes | None:
        return self._per_node.get(peer, self.own)
