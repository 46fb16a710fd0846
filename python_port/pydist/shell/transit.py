"""Back-pressure for frames in transit: a node in the middle of a route
must neither buffer without bound nor drop what a short burst brings.

A node's own connections are paused when their link congests (see
:mod:`pydist.shell.links`); frames it forwards for others have no such
brake. So when a frame in transit meets a congested link whose backlog is
past ``soft`` bytes, the link socket it came from is not read for a while:
its ZeroMQ queue fills, the upstream link congests, and the pressure moves
back hop by hop to the node that sends, whose connection is paused.

Reading resumes once the congested link's backlog is below half of
``soft``. A link that does not drain for ``patience`` seconds is treated
as a failing path instead: reading resumes (two nodes that forward to each
other could otherwise wait for each other for ever, and the node's own
traffic on the paused links would wait with them), and what would take
that link's backlog beyond ``hard`` is dropped and counted until it
drains. The ends repair a lost DATA frame or ack, not this node: a sender
whose frames get no ack within ``resend_timeout`` sends them again, and
the receiver drops the copies (:mod:`pydist.core.sequencing`). Only a gap
that stays open for ``gap_timeout`` closes the connection: loud, never
silent. A dropped lane chunk is not resent: its message expires at the
destination. Memory stays bounded either way.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from pydist.core.channels import LinkKey
from pydist.shell.links import Links


class TransitGate:
    def __init__(self, links: Links, soft: int, hard: int, patience: float) -> None:
        self.links = links
        self.soft = soft
        self.hard = hard
        self.patience = patience
        #: link socket not read -> (the congested link it fed, since when)
        self.paused: dict[Any, tuple[LinkKey, float]] = {}
        #: congested links that ran out of patience: their transit is dropped
        #: past ``hard`` rather than held back
        self.failing: set[LinkKey] = set()
        self._turn: Counter[LinkKey] = Counter()  # transit bytes this turn, per link

    def admit(self, out: LinkKey, size: int) -> bool:
        """A frame in transit for link ``out`` was just read: may the socket
        it came from be read further this turn?"""
        if out in self.failing:
            return True
        # Frames of this turn count too: they are sent when the turn ends,
        # and how many the link's ZeroMQ queue takes is not known before.
        self._turn[out] += size
        return self.links.link_backlog.get(out, 0) + self._turn[out] <= self.soft

    @property
    def busy(self) -> bool:
        """Whether :meth:`resumable` has anything to do this turn."""
        return bool(self.paused or self.failing or self._turn)

    def pause(self, sock: Any, out: LinkKey, now: float) -> None:
        self.paused.setdefault(sock, (out, now))

    def resumable(self, now: float) -> list[Any]:
        """Sockets to read again (forgotten here); call once per turn."""
        self._turn.clear()
        self.failing = {out for out in self.failing
                        if self.links.link_backlog.get(out, 0) >= self.soft // 2}
        ready = []
        for sock, (out, since) in list(self.paused.items()):
            if self.links.link_backlog.get(out, 0) < self.soft // 2:
                ready.append(sock)
            elif now - since >= self.patience:
                self.failing.add(out)
                ready.append(sock)
        for sock in ready:
            del self.paused[sock]
        return ready
