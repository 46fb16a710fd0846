"""Links to neighbours: dialling, the HELLO that names the node at the far
end (checked against its key and against the live nodes the link state
knows), the PROOFs of the cookie that admit a link
(:mod:`pydist.core.admission`), heartbeats and the silence that ends a
link (:mod:`pydist.core.liveness`), goodbyes, garbage, and a link's end.

:class:`Neighbours` owns the links and deals with one at a time; what
travels over them is the business of the node that owns it, which it
tells when a link is admitted or lost (:class:`Owner`), and of the
router, which it tells of its adjacencies.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from typing import Protocol

from pydist.core import admission, frame, port_codec
from pydist.core.admission import ADMIT_TIMEOUT, Cookies
from pydist.core.channels import Link, LinkKey
from pydist.core.config import Config
from pydist.core.etf import Atom
from pydist.core.framer import Framer
from pydist.core.liveness import Liveness, Verdict
from pydist.core.output import Dial, Forget, HangUp, Output
from pydist.core.router import Router
from pydist.core.wire import Kind

log = logging.getLogger("pydist.node")

_NEVER = float("inf")


class Owner(Protocol):
    """What :class:`Neighbours` needs of the node that owns it."""

    @property
    def router(self) -> Router:
        """Told of adjacencies; asked where this node listens and where a
        live node of a name listens (the node replaces it when named)."""
        ...

    def link_admitted(self, link: Link, now: float) -> None:
        """``link`` carries traffic from now on."""

    def link_lost(self, link: Link, reason: str, now: float) -> None:
        """``link`` is gone: what waited for it, and channels that cannot
        follow a route elsewhere, go with it."""


class Neighbours:
    """The links of this node: by key, and the one that carries each
    neighbour's traffic by name."""

    def __init__(self, config: Config, framer: Framer, out: Output, stats: Counter[str],
                 cookies: Cookies, entropy: Callable[[int], bytes], owner: Owner,
                 now: float) -> None:
        self.config = config
        self.framer = framer
        self.out = out
        self.stats = stats
        self.cookies = cookies
        #: the nonces of link admission: unpredictable, unlike the node's rng
        self.entropy = entropy
        self.owner = owner
        self.liveness = Liveness(config.heartbeat_interval, config.heartbeat_timeout,
                                 config.heartbeat_timeout_max)
        self.links: dict[LinkKey, Link] = {}
        self.by_peer: dict[bytes, Link] = {}
        self.next_dial = 1
        #: neighbours the BEAM asked to keep a link to: name -> cost
        self.wanted: dict[bytes, int] = {}
        #: with encrypted links, the node name each accepted link's key is
        #: registered for (see Node.link_authenticated); its HELLO must
        #: claim it
        self.authenticated: dict[LinkKey, bytes] = {}
        #: False while the shell is not reading links (the BEAM is behind):
        #: silence then is ours, not the neighbours', and kills no link
        self.receiving = True
        #: links the shell does not read for a while (a link it dialled, by
        #: key; None: the listener, which carries every link dialled to us)
        self.rx_held: set[LinkKey | None] = set()
        #: no later than the first heartbeat, silence or admission bound of
        #: a link (exact after :meth:`timer`, which the frames since only
        #: put off)
        self._due = _NEVER
        #: the next beat, when idle links get their heartbeat
        self._beat = self.liveness.next_beat(now)

    def deadline(self) -> float:
        """When :meth:`timer` may have something to do."""
        return self._due

    # ------------------------------------------------------------------
    # links the BEAM asks for

    def keep(self, peer: bytes, endpoint: str, cost: int, now: float) -> None:
        """A neighbour by configuration or ``py_dist:link/1``: dial it unless
        a link is up or on its way; the BEAM asks again after a failure."""
        old = self.wanted.get(peer)
        self.wanted[peer] = cost
        link = self.by_peer.get(peer)
        if link is None:
            self.dial(peer, endpoint, now)
        elif link.up:
            if old != cost:
                self.owner.router.neighbour_up(peer, link.key, cost, now)
            # the neighbour dialled us first: tell the BEAM it is up
            self.out.port.append(port_codec.encode_ctrl((Atom("neighbour_up"), peer)))

    def unlink(self, peer: bytes, now: float) -> None:
        """``py_dist:unlink/1``: the neighbour drops the link now, and
        reroutes what used it."""
        self.wanted.pop(peer, None)
        for link in [ln for ln in self.links.values() if ln.peer == peer]:
            self.framer.send(link, Kind.BYE, None, b"unlinked", now)
            self.link_down(link, "unlinked", now)

    def dial(self, peer: bytes, endpoint: str, now: float) -> Link:
        key = self.next_dial
        self.next_dial += 1
        link = Link(key, peer, endpoint, last_rx=now, last_tx=now, born=now,
                    nonce=self.entropy(admission.NONCE_SIZE))
        self.links[key] = link
        self.by_peer.setdefault(peer, link)
        self.out.commands.append(Dial(key, endpoint))
        self.framer.send(link, Kind.HELLO, None, self._hello_payload(link), now)
        self._due = min(self._due, now + self.liveness.timeout)
        return link

    def goodbye(self, now: float) -> None:
        """This node exits: a BYE on every link, so neighbours need not time out."""
        for link in self.links.values():
            self.framer.send(link, Kind.BYE, None, b"", now)

    def hold_rx(self, key: LinkKey | None, held: bool) -> None:
        if held:
            self.rx_held.add(key)
        else:
            self.rx_held.discard(key)

    # ------------------------------------------------------------------
    # admission

    def _hello_payload(self, link: Link) -> bytes:
        """Our nonce, name, and where we listen: a node that already knows
        another live node of that name elsewhere refuses the link (see
        hello)."""
        return admission.encode_hello(link.nonce, self.framer.name or b"",
                                      self.owner.router.endpoint)

    def hello(self, link: Link, payload: bytes, now: float) -> None:
        """The far end's HELLO: its name and its nonce. The dialler answers
        with its proof, the listener with its own HELLO (its nonce); no
        name is taken for granted until the proofs are in (proof)."""
        try:
            nonce, name, endpoint = admission.decode_hello(payload)
        except admission.HelloError as exc:
            self.bad_frame(link, link.key, str(exc), now)
            return
        if link.up or link.peer_nonce:
            self.bad_frame(link, link.key, "a second HELLO", now)
            return
        if link.dialled and name != link.peer:
            log.error("%s answers as %s; not the node we dialled",
                      link.endpoint, name.decode(errors="replace"))
            self.link_down(link, "wrong_node", now)
            return
        me = self.framer.name
        if me is None:  # the BEAM has not named this node yet
            self.link_down(link, "not_ready", now)
            return
        if name == me:
            self.bad_frame(link, link.key, "HELLO with our own name", now)
            return
        claimed = self.authenticated.get(link.key)
        if claimed is not None and claimed != name:
            log.error("refusing a link from %s: its key is registered for %s",
                      name.decode(errors="replace"), claimed.decode(errors="replace"))
            self.stats["names_refused"] += 1
            self.framer.send(link, Kind.BYE, None, b"wrong_key", now)
            self.link_down(link, "wrong_node", now)
            return
        taken = None if link.dialled else self._taken_at(name, endpoint)
        if taken is not None:
            log.error("refusing a link from %s at %s: a live node of that name listens at %s",
                      name.decode(errors="replace"), endpoint.decode(errors="replace"),
                      taken.decode(errors="replace"))
            self.stats["names_taken"] += 1
            self.framer.send(link, Kind.BYE, None, b"name_taken", now)
            self.link_down(link, "name_taken", now)
            return
        link.peer_nonce = nonce
        if link.dialled:
            cookie = self.cookies.for_peer(name)
            if cookie is None:
                self._refuse(link, name, "this node has no cookie yet", now)
                return
            self.framer.send(link, Kind.PROOF, None, admission.proof(
                cookie, admission.DIALLER, me, name, link.nonce, nonce), now)
        else:
            link.claimed = name
            link.nonce = self.entropy(admission.NONCE_SIZE)
            self.framer.send(link, Kind.HELLO, None, self._hello_payload(link), now)

    def proof(self, link: Link, answer: bytes, now: float) -> None:
        """The far end's proof that it holds the cookie we would use with
        it. The dialler proves first; the listener answers a good proof
        with its own, so both ends admit the link, and a bad one with a
        goodbye."""
        me = self.framer.name
        if link.up or not link.peer_nonce or me is None:
            self.bad_frame(link, link.key, "PROOF out of turn", now)
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
            if not link.dialled and not link.cookie_asked:
                # The BEAM may use a cookie of its own with this peer
                # (erlang:set_cookie/2), which it hands over only with the
                # connections and links it asks for: ask it, and check this
                # proof again with its answer (cookie_for), once.
                link.cookie_asked = True
                link.parked_proof = answer
                self.out.port.append(port_codec.encode_ctrl(
                    (Atom("cookie_please"), peer[:255])))
                return
            self._refuse(link, peer, "wrong cookie", now)
            return
        if not link.dialled:
            assert cookie is not None
            self.framer.send(link, Kind.PROOF, None, admission.proof(
                cookie, admission.LISTENER, dialler, listener, *nonces), now)
        self._admit(link, peer, now)

    def cookie_for(self, peer: bytes, cookie: bytes, now: float) -> None:
        """The BEAM's answer to a cookie_please: the cookie it uses with
        ``peer``. The proofs parked for it are checked again, for good."""
        self.cookies.use_with(peer, cookie)
        for link in list(self.links.values()):
            answer = link.parked_proof
            if answer is not None and not link.up and link.claimed == peer:
                link.parked_proof = None
                self.proof(link, answer, now)

    def _refuse(self, link: Link, peer: bytes, why: str, now: float) -> None:
        """A peer that did not prove the cookie: told why (a BYE), logged,
        counted, and, when it dialled us, reported to the BEAM, whose
        logger says it as dist_util says a refused connection attempt."""
        name = peer.decode(errors="replace")
        self.stats["links_refused_cookie"] += 1
        if link.dialled:  # what answers at the neighbour's endpoint is not it
            log.error("refusing the link to %s: %s", name, why)
        else:
            log.error("refusing a link from %s: %s", name, why)
            self.out.port.append(port_codec.encode_ctrl(
                (Atom("link_refused"), peer[:255], Atom("wrong_cookie"))))
        self.framer.send(link, Kind.BYE, None, b"wrong_cookie", now)
        self.link_down(link, "wrong_cookie", now)

    def _admit(self, link: Link, peer: bytes, now: float) -> None:
        """Both ends proved the cookie: the link carries traffic from now on."""
        link.up = True
        link.peer = peer
        link.claimed = None
        self.stats["links_admitted"] += 1
        if peer not in self.by_peer:  # (a newer link to a linked neighbour is no news)
            self.out.port.append(port_codec.encode_ctrl((Atom("link_up"), peer)))
        # The newest link to a neighbour carries its traffic: a neighbour
        # dials again when its old link died, maybe before we noticed.
        self.by_peer[peer] = link
        cost = self.wanted.get(peer, self.config.link_cost)
        self.owner.router.neighbour_up(peer, link.key, cost, now)
        if peer in self.wanted:
            self.out.port.append(port_codec.encode_ctrl((Atom("neighbour_up"), peer)))
        self.owner.link_admitted(link, now)

    def early(self, link: Link, kind: int) -> None:
        """A frame before admission: dropped, counted, and logged once per
        link. Nothing but HELLO, PROOF and BYE may come before the proofs."""
        self.stats["frames_before_proof"] += 1
        if not link.early_logged:
            link.early_logged = True
            who = link.peer or link.claimed or b"?"
            log.error("dropping frames of kind %s from %s before it proved the cookie",
                      Kind(kind).name if kind in Kind._value2member_map_ else kind,
                      who.decode(errors="replace"))

    def bye(self, link: Link, why: bytes, now: float) -> None:
        """Our neighbour's node exits, or just drops this link, or refuses it."""
        if why == b"wrong_cookie" and not link.up:
            log.error("%s refuses our link: wrong cookie",
                      (link.peer or link.claimed or b"?").decode(errors="replace"))
            self.stats["links_refused_by_peer_cookie"] += 1
            self.link_down(link, "wrong_cookie", now)
        elif why == b"name_taken" and link.dialled and not link.up:
            log.error("%s refuses us: another live node is named %s",
                      link.endpoint, (self.framer.name or b"").decode(errors="replace"))
            self.out.port.append(port_codec.encode_ctrl((Atom("name_taken"), link.peer or b"")))
            self.link_down(link, "name_taken", now)
        else:
            self.link_down(link, "unlinked" if why == b"unlinked" and link.up else "peer_exit",
                           now)

    def _taken_at(self, name: bytes, endpoint: bytes) -> bytes | None:
        """Where a live node of ``name`` listens, if not at ``endpoint``: the
        link state knows it, reachable, elsewhere. A former life of a node
        that restarted elsewhere is unreachable (its neighbours dropped
        their links to it), so it does not count."""
        router = self.owner.router
        lsp = router.db.get(name)
        if (endpoint and lsp is not None and lsp.endpoint and lsp.endpoint != endpoint
                and name in router.via):
            return lsp.endpoint
        return None

    # ------------------------------------------------------------------
    # garbage

    def unknown(self, key: LinkKey, hdr: frame.Header, payload: bytes, now: float) -> None:
        """A frame on a link we do not know: a neighbour dialling us (its
        HELLO), or talking on a link we dropped."""
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
            self._due = min(self._due, now + self.liveness.timeout)
            self.hello(link, payload, now)
        elif hdr.kind != Kind.BYE and isinstance(key, bytes):
            # A neighbour still talking on a link we dropped (or from before
            # a restart): tell it, so it drops its channels now, not after a
            # heartbeat timeout.
            self.stats["frames_unknown_link"] += 1
            self.out.links.append((key, [frame.encode(Kind.BYE, self.framer.id, hdr.src)]))

    def bad_frame(self, link: Link | None, key: LinkKey, why: str, now: float) -> None:
        """Garbage takes down at most the link it came on."""
        self.stats["frame_errors"] += 1
        peer = (link.peer.decode(errors="replace") if link and link.peer
                else (key.hex()[:16] if isinstance(key, bytes) else str(key)))
        log.error("bad frame from %s: %s; dropping the link", peer, why)
        if link is not None:
            self.link_down(link, "protocol_error", now)

    # ------------------------------------------------------------------
    # time, and a link's end

    def timer(self, now: float) -> None:
        """Heartbeats on links that sent nothing for a while; links silent
        too long, or admitted too slowly, go down."""
        due = _NEVER
        liveness, held = self.liveness, self.rx_held
        # heartbeats only on a beat: a timer run for another reason (a
        # silence bound, or another part's deadline) sends none
        beat = now >= self._beat
        if beat:
            self._beat = liveness.next_beat(now)
        for link in list(self.links.values()):
            if not self.receiving or (held and (link.key in held
                                                or (None in held and not link.dialled))):
                link.last_rx = now
            if not link.up:
                # On its way: a proof must follow the HELLO as any frame
                # follows another, and the whole admission has a bound. A
                # link with no history gets the most silence the config
                # allows: before its first frame come TCP's and ZeroMQ's
                # handshakes, several round trips, which on a long or lossy
                # hop (a 200 ms radio link) take more than the plain bound.
                bound = min(link.last_rx + liveness.admit_silence, link.born + ADMIT_TIMEOUT)
                if now >= bound:
                    self.link_down(link, "connect_timeout", now)
                else:
                    due = min(due, bound)
                continue
            if beat:
                link.gap *= liveness.decay
            bound = liveness.silence_bound(link.gap)
            if now <= link.last_rx + liveness.suspect_after:
                link.only_way = None
            elif link.only_way is None and link.peer is not None:
                # Judged at the first beat of a silence longer than a clean
                # link shows (so a clean link costs no search), from the
                # link state as it was then: a failure that cuts several
                # links at once (a partition) leaves each of them the only
                # way once the first ends to notice have told everyone, and
                # would keep every late one for heartbeat_timeout_max.
                link.only_way = not self.owner.router.detour(link.peer)
            if now >= link.last_rx + liveness.timeout and link.only_way:
                # The only way to the neighbour (and to whatever lies
                # behind it): cutting it costs nodedowns, not a lossless
                # reroute, so it gets all the room the config allows, as a
                # lossy link's first TCP stall needs before it has shown
                # any gap. A link with a detour is cut at its own bound.
                bound = liveness.admit_silence
            verdict = liveness.verdict(now, link.last_rx, link.last_tx, bound)
            if verdict is Verdict.DEAD:
                self.link_down(link, "heartbeat_timeout", now)
                continue
            if not link.suspected and now >= link.last_rx + liveness.timeout:
                # silent past the plain bound, spared by the stretch: seen
                # at the next beat, counted once per silence
                link.suspected = True
                self.stats["links_suspected"] += 1
            if verdict is Verdict.SEND_HEARTBEAT and beat:
                self.framer.send(link, Kind.HEARTBEAT, None, b"", now)
            due = min(due, liveness.deadline(now, link.last_rx, bound))
        self._due = due

    def link_down(self, link: Link, reason: str, now: float) -> None:
        if self.links.pop(link.key, None) is None:
            return
        link.down_reason = reason
        self.authenticated.pop(link.key, None)
        if link.peer is not None and self.by_peer.get(link.peer) is link:
            del self.by_peer[link.peer]
            router = self.owner.router
            other = next((ln for ln in self.links.values() if ln.peer == link.peer and ln.up),
                         None)
            if other is not None:
                self.by_peer[link.peer] = other
                router.neighbour_up(link.peer, other.key,
                                    self.wanted.get(link.peer, self.config.link_cost), now)
            elif link.up:
                router.neighbour_down(link.peer, now, failed=reason != "unlinked")
                self.out.port.append(port_codec.encode_ctrl(
                    (Atom("link_down"), link.peer, reason.encode())))
        if link.channels or link.up:
            log.warning("link to %s down: %s (%d channels)",
                        (link.peer or b"?").decode(errors="replace"), reason, len(link.channels))
        self.stats[f"links_down_{reason}"] += 1
        self.owner.link_lost(link, reason, now)
        key = link.key
        self.out.commands.append(HangUp(key) if isinstance(key, int) else Forget(key))
        if link.peer in self.wanted and link.peer not in self.by_peer:
            self.out.port.append(port_codec.encode_ctrl((Atom("neighbour_down"), link.peer)))
