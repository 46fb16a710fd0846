"""Links that flap are kept out of the routes for a while.

A link that fails and comes back again and again (a loose cable, a radio
at the edge of its range) would otherwise move every route through it at
each change: the traffic goes back to it as it comes up, and the next
failure sends it into a dead link until the heartbeats notice. The model
is the interface dampening of routers (Cisco's IP event dampening; RFC
2439 for BGP routes): each failure adds a penalty of 1 to the neighbour,
the penalty halves every ``half_life`` seconds, a neighbour whose penalty
reaches ``SUPPRESS`` is suppressed and stays so until it has decayed to
``REUSE``, and a ceiling bounds how long that can take (``max_suppress``
after the last failure).

Suppressed is not removed: the router gives the link a cost no path of
ordinary links reaches (:data:`DAMPED_COST`), so traffic takes any stable
path there is, and still this one where none is left; a flapping link to
a neighbour with no other way in costs no nodedown. With the defaults
(half-life 5 s, at most 20 s) a single failure or two in a row are acted
on at once; the fourth failure within about 15 s suppresses, and a link
that then stays up is used again after 5 to 20 s. Pure: times are given.
"""

from __future__ import annotations

import math

#: penalties, in failures: suppressed from, and used again below
SUPPRESS = 2.0
REUSE = 1.0
#: what a suppressed link adds to its cost: more than a path of 1,000
#: links of the largest cost people configure would
DAMPED_COST = 1 << 20
#: a penalty decayed below this is forgotten (the table stays bounded)
FORGET = 0.05
_NEVER = float("inf")


class Damping:
    def __init__(self, half_life: float, max_suppress: float) -> None:
        #: 0 turns dampening off
        self.half_life = half_life
        #: the penalty that decays to REUSE in max_suppress seconds
        self.ceiling = REUSE * 2 ** (max_suppress / half_life) if half_life > 0 else 0.0
        #: neighbour -> (penalty, when it was that)
        self._penalty: dict[bytes, tuple[float, float]] = {}
        self.suppressed: set[bytes] = set()

    def __len__(self) -> int:
        """How many neighbours it remembers a penalty of."""
        return len(self._penalty)

    def penalty(self, name: bytes, now: float) -> float:
        value, at = self._penalty.get(name, (0.0, now))
        return value * 2 ** (-(now - at) / self.half_life) if value else 0.0

    def failed(self, name: bytes, now: float) -> bool:
        """The link to ``name`` failed (not unlinked on purpose): whether
        that suppresses it."""
        if self.half_life <= 0:
            return False
        self._forget(now)
        value = min(self.penalty(name, now) + 1.0, self.ceiling)
        self._penalty[name] = (value, now)
        if value >= SUPPRESS and name not in self.suppressed:
            self.suppressed.add(name)
            return True
        return False

    def release(self, now: float) -> list[bytes]:
        """The suppressed neighbours whose penalty has decayed to REUSE by
        ``now``: no longer suppressed. Forgets penalties that decayed."""
        released = sorted(n for n in self.suppressed if self.reuse_at(n) <= now)
        self.suppressed.difference_update(released)
        self._forget(now)
        return released

    def _forget(self, now: float) -> None:
        # every failure and every release: so the table holds the
        # neighbours that failed lately, whatever came and went before
        for name in [n for n in self._penalty
                     if n not in self.suppressed and self.penalty(n, now) < FORGET]:
            del self._penalty[name]

    def deadline(self) -> float:
        """When the next suppressed neighbour is used again."""
        return min(map(self.reuse_at, self.suppressed), default=_NEVER)

    def reuse_at(self, name: bytes) -> float:
        """When suppressed ``name`` is used again, if it fails no more."""
        # the one formula for release and deadline: a release is never a
        # hair late, leaving a deadline passed and still pending
        value, at = self._penalty[name]
        return at + self.half_life * math.log2(value / REUSE)
