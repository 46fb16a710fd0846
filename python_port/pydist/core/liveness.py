"""Link liveness: heartbeats that find a dead neighbour in well under a second.

Independent of ``net_ticktime``: a link is dead when nothing at all has
arrived on it for ``timeout`` seconds. Heartbeats go out on *beats*, the
multiples of ``interval`` on the clock, and only on links that sent
nothing for half an interval: any frame counts both ways, so a busy link
carries none.

Why beats on a grid rather than one timer per link: an idle node then
wakes once per interval for all its links instead of once per link, and
nodes that share a clock (every node of one host; hosts only as closely
as their clocks agree) beat together, so a node's neighbours' heartbeats
arrive together too and cost it one wake-up more, not one per link. The
price: on a link that sent something just before a beat, the next
heartbeat comes up to one and a half intervals after it, still far inside
the timeout.

The silence bound of a link stretches with what the link has shown
(:meth:`Liveness.silence_bound`): ``timeout`` grows by the factor the
longest recent gap between two frames on it exceeds the longest a clean
link shows (one and a half intervals), up to ``max_timeout``. A clean
link, whose frames come at least every beat, is judged by ``timeout``; a
link (or a pair of nodes) that has been slow, an overloaded machine or a
lossy line whose TCP resends hold frames up, gets the room it showed it
needs, at once, and gives it back slowly (the gap remembered halves every
``GAP_HALF_LIFE``): a link that stutters is not declared dead over and
over, each time a reroute and maybe a nodedown, while one that dies
outright is still found in ``timeout``.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field

#: the longest gap between two frames on a clean idle link, in intervals:
#: a heartbeat skipped after traffic half an interval before a beat
CLEAN_GAP = 1.5
#: seconds in which the longest gap a link showed is half forgotten
GAP_HALF_LIFE = 10.0


class Verdict(enum.Enum):
    ALIVE = 0
    SEND_HEARTBEAT = 1
    DEAD = 2


@dataclass(frozen=True)
class Liveness:
    interval: float
    timeout: float
    #: the longest a stretched silence bound gets; at or below ``timeout``
    #: (a user who raised only ``heartbeat_timeout``): no stretch
    max_timeout: float = 0.0
    #: what the gap remembered is multiplied by at each beat
    decay: float = field(init=False)

    def __post_init__(self) -> None:
        if not 0 < self.interval < self.timeout:
            raise ValueError("need 0 < heartbeat_interval < heartbeat_timeout")
        object.__setattr__(self, "decay", 0.5 ** (self.interval / GAP_HALF_LIFE))

    @property
    def admit_silence(self) -> float:
        """How long a link on its way may be silent: the longest bound a
        link may stretch to, since nothing is known of it yet."""
        return max(self.max_timeout, self.timeout)

    @property
    def clean_gap(self) -> float:
        """The longest silence a clean link shows: longer is a sign."""
        return CLEAN_GAP * self.interval

    @property
    def suspect_after(self) -> float:
        """The silence past which a link is looked at more closely: longer
        than a clean link shows, and never later than half ``timeout``
        (with beats far apart, a clean gap may reach the timeout)."""
        return min(self.clean_gap, self.timeout / 2)

    def silence_bound(self, gap: float) -> float:
        """How long a link whose longest recent gap is ``gap`` may be silent."""
        stretched = self.timeout * gap / self.clean_gap
        return min(max(self.timeout, stretched), max(self.max_timeout, self.timeout))

    def next_beat(self, now: float) -> float:
        """The first beat strictly after ``now``."""
        beat = (math.floor(now / self.interval) + 1) * self.interval
        return beat if beat > now else beat + self.interval

    def verdict(self, now: float, last_rx: float, last_tx: float,
                bound: float | None = None) -> Verdict:
        """What a link is due at a beat ``now``, silent for at most
        ``bound`` (default: ``timeout``). Each test is the same sum as
        :meth:`deadline` uses, so a timer woken at that deadline finds it
        reached (a difference of floats may fall short of it)."""
        if now >= last_rx + (self.timeout if bound is None else bound):
            return Verdict.DEAD
        if now >= last_tx + self.interval / 2:
            return Verdict.SEND_HEARTBEAT
        return Verdict.ALIVE

    def deadline(self, now: float, last_rx: float, bound: float | None = None) -> float:
        """The next time :meth:`verdict` may change for a link: its silence
        bound, or the next beat."""
        return min(last_rx + (self.timeout if bound is None else bound), self.next_beat(now))
