"""This node's end of the frames it sends: who it is, and how its frames
are made.

Every part of the node sends frames (:mod:`pydist.core.neighbours` its
HELLOs and goodbyes, :mod:`pydist.core.delivery` a channel's data, acks
and closes, :mod:`pydist.core.lanes` lane messages), and every frame names
this node, carries the hop limit, and, with node keys, is sealed for the
node at its far end. The :class:`Framer` is the one place that knows those
things: the parts hold a reference to it, not copies of the node's name
that a ``set_node`` would leave stale.
"""

from __future__ import annotations

import logging
from collections import Counter

from pydist.core import admission, frame
from pydist.core.channels import Channel, Link
from pydist.core.output import Out, Output
from pydist.core.trust import SealError, Trust
from pydist.core.wire import FLAG_SEALED, Kind, node_id

log = logging.getLogger("pydist.node")

#: per frame kind, the counter of frames this node sent of it (frames it
#: forwards for others count under ``forwarded``): what the control
#: traffic is made of
SENT = {int(kind): f"sent_{kind.name.lower()}" for kind in Kind}


class Framer:
    """This node's name and id (once the BEAM named it), the hop limit and
    the seal of what it sends, and the output its frames go to."""

    def __init__(self, max_hops: int, trust: Trust | None, out: Output,
                 stats: Counter[str]) -> None:
        self.name: bytes | None = None
        self.id = 0
        self.max_hops = max_hops
        #: node keys: frames that travel end to end are sealed (None: keys off)
        self.trust = trust
        #: FLAG_SEALED with node keys, else 0: or-ed into end-to-end headers
        self.sealed = 0 if trust is None else FLAG_SEALED
        self.out = out
        self.stats = stats

    def named(self, name: bytes) -> None:
        """The BEAM named this node. Say it loud when this node's key is not
        the one the cluster knows it by: every other node would refuse its
        links and frames."""
        self.name = name
        self.id = node_id(name)
        trust = self.trust
        if trust is None:
            return
        if trust.name != name:
            log.critical("the node key file is %s's, but this node is %s",
                         trust.name.decode(errors="replace"), name.decode(errors="replace"))
        elif not trust.registered(name):
            log.critical("the authorized keys do not list this node's key for %s; other "
                         "nodes will refuse its links", name.decode(errors="replace"))

    def send(self, link: Link, kind: Kind, ch: Channel | None, payload: bytes, now: float,
             seq: int = 0, flags: int = 0) -> None:
        """A frame on ``link``: for the far end of channel ``ch`` (sealed, with
        node keys), or for the neighbour itself (``ch`` None). Until the
        link is admitted, only the admission's own frames go."""
        if not link.up and kind not in admission.KINDS:
            return
        link.last_tx = now
        if ch is None:
            self.stats[SENT[kind]] += 1
            self.out.links.append((link.key, frame.join(frame.encode(kind, self.id, 0), payload)))
        else:
            header = frame.encode(kind, self.id, ch.peer_id, ch.epoch, seq=seq,
                                  flags=ch.flags | self.sealed | flags, hops=self.max_hops)
            self.out.links.append((link.key, self.routed(header, ch.peer_id, payload)))

    def routed(self, header: bytes, dst: int, payload: Out) -> list[Out]:
        """The parts of a frame that travels end to end, to node ``dst``."""
        self.stats[SENT[header[1]]] += 1
        if self.trust is not None:
            payload = self.trust.seal(dst, header, payload)
        return frame.join(header, payload)

    def unseal(self, hdr: frame.Header, head: Out, payload: Out) -> Out | None:
        """The payload of an end-to-end frame for us, if it is what it says
        it is; None (the frame dropped and counted) if not. A node in the
        middle may have forged it: the link it came on is not to blame."""
        try:
            if self.trust is None:
                raise SealError("a sealed frame, but this node has no keys")
            if not hdr.flags & FLAG_SEALED:
                raise SealError("a frame not sealed, but this node has keys")
            return self.trust.open(hdr.src, head, payload)
        except SealError as exc:
            self.stats["frames_forged"] += 1
            log.error("dropped a %s frame: %s", Kind(hdr.kind).name, exc)
            return None
