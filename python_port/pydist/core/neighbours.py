"""Links to neighbours: dialling, the HELLO that names the node at the far
end (checked against its key and against the live nodes the link state
knows), the PROOFs of the cookie that admit a link
(:mod:`pydist.core.admission`), goodbyes, garbage, and a link's end.

:class:`Neighbours` is the part of :class:`pydist.core.node.Node` that
deals with one link at a time; what travels over links is the node's (and
its :class:`~pydist.core.delivery.Delivery` and
:class:`~pydist.core.lanes.LanePath` halves') business.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable

from pydist.core import admission, frame, port_codec
from pydist.core.admission import Cookies
from pydist.core.channels import ChannelTable, Link, LinkKey
from pydist.core.config import Config
from pydist.core.etf import Atom
from pydist.core.liveness import Liveness
from pydist.core.output import Command, Dial, Forget, HangUp
from pydist.core.router import Router
from pydist.core.trust import Trust
from pydist.core.wire import Kind

log = logging.getLogger("pydist.node")

Out = bytes | memoryview


class Neighbours:
    # state the node keeps, used here
    config: Config
    name: bytes | None
    id: int
    trust: Trust | None
    liveness: Liveness
    links: dict[LinkKey, Link]
    by_peer: dict[bytes, Link]
    channels: ChannelTable
    next_dial: int
    stats: Counter[str]
    deadline: float
    router: Router
    wanted: dict[bytes, int]
    authenticated: dict[LinkKey, bytes]
    cookies: Cookies
    entropy: Callable[[int], bytes]
    port_out: list[Out]
    link_out: list[tuple[LinkKey, list[Out]]]
    commands: list[Command]
    # the node's other halves
    _send: Callable[..., None]
    _tell_closed: Callable[[int, str], None]
    _forget: Callable[..., None]
    _lanes_link_down: Callable[[LinkKey], None]
    _settle: Callable[[float], None]
    _link_admitted: Callable[[Link, float], None]

    def _check_key(self, name: bytes) -> None:
        """Say it loud when this node's key is not the one the cluster knows
        it by: every other node would refuse its links and frames."""
        trust = self.trust
        if trust is None:
            return
        if trust.name != name:
            log.critical("the node key file is %s's, but this node is %s",
                         trust.name.decode(errors="replace"), name.decode(errors="replace"))
        elif not trust.registered(name):
            log.critical("the authorized keys do not list this node's key for %s; other "
                         "nodes will refuse its links", name.decode(errors="replace"))

    def _keep_link(self, peer: bytes, endpoint: str, cost: int, now: float) -> None:
        """A neighbour by configuration or ``py_dist:link/1``: dial it unless
        a link is up or on its way; the BEAM asks again after a failure."""
        old = self.wanted.get(peer)
        self.wanted[peer] = cost
        link = self.by_peer.get(peer)
        if link is None:
            self._dial(peer, endpoint, now)
        elif link.up:
            if old != cost:
                self.router.neighbour_up(peer, link.key, cost, now)
            # the neighbour dialled us first: tell the BEAM it is up
            self.port_out.append(port_codec.encode_ctrl((Atom("neighbour_up"), peer)))

    def _dial(self, peer: bytes, endpoint: str, now: float) -> Link:
        key = self.next_dial
        self.next_dial += 1
        link = Link(key, peer, endpoint, last_rx=now, last_tx=now, born=now,
                    nonce=self.entropy(admission.NONCE_SIZE))
        self.links[key] = link
        self.by_peer.setdefault(peer, link)
        self.commands.append(Dial(key, endpoint))
        self._send(link, Kind.HELLO, None, self._hello_payload(link), now)
        self.deadline = min(self.deadline, now + self.liveness.timeout)
        return link

    def _hello_payload(self, link: Link) -> bytes:
        """Our nonce, name, and where we listen: a node that already knows
        another live node of that name elsewhere refuses the link (see
        _hello)."""
        return admission.encode_hello(link.nonce, self.name or b"", self.router.endpoint)

    def _hello(self, link: Link, payload: bytes, now: float) -> None:
        """The far end's HELLO: its name and its nonce. The dialler answers
        with its proof, the listener with its own HELLO (its nonce); no
        name is taken for granted until the proofs are in (_proof)."""
        try:
            nonce, name, endpoint = admission.decode_hello(payload)
        except admission.HelloError as exc:
            self._bad_frame(link, link.key, str(exc), now)
            return
        if link.up or link.peer_nonce:
            self._bad_frame(link, link.key, "a second HELLO", now)
            return
        if link.dialled and name != link.peer:
            log.error("%s answers as %s; not the node we dialled",
                      link.endpoint, name.decode(errors="replace"))
            self._link_down(link, "wrong_node", now)
            return
        if self.name is None:  # the BEAM has not named this node yet
            self._link_down(link, "not_ready", now)
            return
        if name == self.name:
            self._bad_frame(link, link.key, "HELLO with our own name", now)
            return
        claimed = self.authenticated.get(link.key)
        if claimed is not None and claimed != name:
            log.error("refusing a link from %s: its key is registered for %s",
                      name.decode(errors="replace"), claimed.decode(errors="replace"))
            self.stats["names_refused"] += 1
            self._send(link, Kind.BYE, None, b"wrong_key", now)
            self._link_down(link, "wrong_node", now)
            return
        taken = None if link.dialled else self._taken_at(name, endpoint)
        if taken is not None:
            log.error("refusing a link from %s at %s: a live node of that name listens at %s",
                      name.decode(errors="replace"), endpoint.decode(errors="replace"),
                      taken.decode(errors="replace"))
            self.stats["names_taken"] += 1
            self._send(link, Kind.BYE, None, b"name_taken", now)
            self._link_down(link, "name_taken", now)
            return
        link.peer_nonce = nonce
        if link.dialled:
            cookie = self.cookies.for_peer(name)
            if cookie is None:
                self._refuse_link(link, name, "this node has no cookie yet", now)
                return
            self._send(link, Kind.PROOF, None, admission.proof(
                cookie, admission.DIALLER, self.name, name, link.nonce, nonce), now)
        else:
            link.claimed = name
            link.nonce = self.entropy(admission.NONCE_SIZE)
            self._send(link, Kind.HELLO, None, self._hello_payload(link), now)

    def _proof(self, link: Link, answer: bytes, now: float) -> None:
        """The far end's proof that it holds the cookie we would use with
        it. The dialler proves first; the listener answers a good proof
        with its own, so both ends admit the link, and a bad one with a
        goodbye."""
        me = self.name
        if link.up or not link.peer_nonce or me is None:
            self._bad_frame(link, link.key, "PROOF out of turn", now)
            return
        if link.dialled:
            assert link.peer is not None
            peer, dialler, listener = link.peer, me, link.peer
            nonces = (link.nonce, link.peer_nonce)
        else:
            assert link.claimed is not None
            peer, dialler, listener = link.claimed, link.claimed, me
            nonces = (link.peer_nonce, link.nonce)
        role = admission.DIALLER if not link.dialled else admission.LISTENER
        cookie = self.cookies.for_peer(peer)
        if not admission.verify(cookie, role, dialler, listener, *nonces, answer):
            self._refuse_link(link, peer, "wrong cookie", now)
            return
        if not link.dialled:
            assert cookie is not None
            self._send(link, Kind.PROOF, None, admission.proof(
                cookie, admission.LISTENER, dialler, listener, *nonces), now)
        self._admit(link, peer, now)

    def _refuse_link(self, link: Link, peer: bytes, why: str, now: float) -> None:
        """A peer that did not prove the cookie: told why (a BYE), logged,
        counted, and, when it dialled us, reported to the BEAM, whose
        logger says it as dist_util says a refused connection attempt."""
        name = peer.decode(errors="replace")
        self.stats["links_refused_cookie"] += 1
        if link.dialled:  # what answers at the neighbour's endpoint is not it
            log.error("refusing the link to %s: %s", name, why)
        else:
            log.error("refusing a link from %s: %s", name, why)
            self.port_out.append(port_codec.encode_ctrl(
                (Atom("link_refused"), peer[:255], Atom("wrong_cookie"))))
        self._send(link, Kind.BYE, None, b"wrong_cookie", now)
        self._link_down(link, "wrong_cookie", now)

    def _admit(self, link: Link, peer: bytes, now: float) -> None:
        """Both ends proved the cookie: the link carries traffic from now on."""
        link.up = True
        link.peer = peer
        link.claimed = None
        self.stats["links_admitted"] += 1
        # The newest link to a neighbour carries its traffic: a neighbour
        # dials again when its old link died, maybe before we noticed.
        self.by_peer[peer] = link
        self.router.neighbour_up(peer, link.key, self.wanted.get(peer, self.config.link_cost), now)
        if peer in self.wanted:
            self.port_out.append(port_codec.encode_ctrl((Atom("neighbour_up"), peer)))
        self._link_admitted(link, now)

    def _early(self, link: Link, kind: int) -> None:
        """A frame before admission: dropped, counted, and logged once per
        link. Nothing but HELLO, PROOF and BYE may come before the proofs."""
        self.stats["frames_before_proof"] += 1
        if not link.early_logged:
            link.early_logged = True
            who = link.peer or link.claimed or b"?"
            log.error("dropping frames of kind %s from %s before it proved the cookie",
                      Kind(kind).name if kind in Kind._value2member_map_ else kind,
                      who.decode(errors="replace"))

    def _bye(self, link: Link, why: bytes, now: float) -> None:
        if why == b"wrong_cookie" and not link.up:
            log.error("%s refuses our link: wrong cookie",
                      (link.peer or link.claimed or b"?").decode(errors="replace"))
            self.stats["links_refused_by_peer_cookie"] += 1
            self._link_down(link, "wrong_cookie", now)
        elif why == b"name_taken" and link.dialled and not link.up:
            log.error("%s refuses us: another live node is named %s",
                      link.endpoint, (self.name or b"").decode(errors="replace"))
            self.port_out.append(port_codec.encode_ctrl((Atom("name_taken"), link.peer or b"")))
            self._link_down(link, "name_taken", now)
        else:
            self._link_down(link, "unlinked" if why == b"unlinked" and link.up else "peer_exit",
                            now)

    def _taken_at(self, name: bytes, endpoint: bytes) -> bytes | None:
        """Where a live node of ``name`` listens, if not at ``endpoint``: the
        link state knows it, reachable, elsewhere. A former life of a node
        that restarted elsewhere is unreachable (its neighbours dropped
        their links to it), so it does not count."""
        lsp = self.router.db.get(name)
        if (endpoint and lsp is not None and lsp.endpoint and lsp.endpoint != endpoint
                and name in self.router.via):
            return lsp.endpoint
        return None

    def _unknown_link(self, key: LinkKey, hdr: frame.Header, payload: bytes, now: float) -> None:
        if hdr.kind == Kind.HELLO and isinstance(key, bytes):
            if len(self.links) >= self.config.max_links:
                log.error("refusing a link: max_links (%d) reached", self.config.max_links)
                self.stats["links_refused"] += 1
                return
            if len(payload) > admission.MAX_HELLO:
                self.stats["frame_errors"] += 1
                return
            link = Link(key, None, None, last_rx=now, last_tx=now, born=now)
            self.links[key] = link
            self.deadline = min(self.deadline, now + self.liveness.timeout)
            self._hello(link, payload, now)
        elif hdr.kind != Kind.BYE and isinstance(key, bytes):
            # A neighbour still talking on a link we dropped (or from before
            # a restart): tell it, so it drops its channels now, not after a
            # heartbeat timeout.
            self.stats["frames_unknown_link"] += 1
            self.link_out.append((key, [frame.encode(Kind.BYE, self.id, hdr.src)]))

    def link_failed(self, key: LinkKey, why: str, now: float) -> None:
        """The shell could not handle a message from this link (a bug, not
        bad input, which :meth:`link_message` handles): drop only the link."""
        self._bad_frame(self.links.get(key), key, why, now)
        self._settle(now)

    def _bad_frame(self, link: Link | None, key: LinkKey, why: str, now: float) -> None:
        """Garbage takes down at most the link it came on."""
        self.stats["frame_errors"] += 1
        peer = (link.peer.decode(errors="replace") if link and link.peer
                else (key.hex()[:16] if isinstance(key, bytes) else str(key)))
        log.error("bad frame from %s: %s; dropping the link", peer, why)
        if link is not None:
            self._link_down(link, "protocol_error", now)

    def _link_down(self, link: Link, reason: str, now: float) -> None:
        if self.links.pop(link.key, None) is None:
            return
        link.down_reason = reason
        self._lanes_link_down(link.key)
        self.authenticated.pop(link.key, None)
        if link.peer is not None and self.by_peer.get(link.peer) is link:
            del self.by_peer[link.peer]
            other = next((ln for ln in self.links.values() if ln.peer == link.peer and ln.up),
                         None)
            if other is not None:
                self.by_peer[link.peer] = other
                self.router.neighbour_up(link.peer, other.key,
                                         self.wanted.get(link.peer, self.config.link_cost), now)
            elif link.up:
                self.router.neighbour_down(link.peer, now)
        if link.channels or link.up:
            log.warning("link to %s down: %s (%d channels)",
                        (link.peer or b"?").decode(errors="replace"), reason, len(link.channels))
        self.stats[f"links_down_{reason}"] += 1
        for chan in sorted(link.channels):
            ch = self.channels[chan]
            # A channel over a link that never came up, or to a neighbour
            # whose node said goodbye, is done; the others follow the
            # route (see _settle), if one is left.
            if not link.up or (reason == "peer_exit" and ch.peer == link.peer):
                self._tell_closed(chan, reason)
                self._forget(ch, told=False)
        if link.channels:
            self.router.dirty = True  # _settle moves them, or closes them
        key = link.key
        self.commands.append(HangUp(key) if isinstance(key, int) else Forget(key))
        if link.peer in self.wanted and link.peer not in self.by_peer:
            self.port_out.append(port_codec.encode_ctrl((Atom("neighbour_down"), link.peer)))
