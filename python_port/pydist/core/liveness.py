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
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass


class Verdict(enum.Enum):
    ALIVE = 0
    SEND_HEARTBEAT = 1
    DEAD = 2


@dataclass(frozen=True)
class Liveness:
    interval: float
    timeout: float

    def __post_init__(self) -> None:
        if not 0 < self.interval < self.timeout:
            raise ValueError("need 0 < heartbeat_interval < heartbeat_timeout")

    def next_beat(self, now: float) -> float:
        """The first beat strictly after ``now``."""
        beat = (math.floor(now / self.interval) + 1) * self.interval
        return beat if beat > now else beat + self.interval

    def verdict(self, now: float, last_rx: float, last_tx: float) -> Verdict:
        """What a link is due at a beat ``now``. Each test is the same sum
        as :meth:`deadline` uses, so a timer woken at that deadline finds
        it reached (a difference of floats may fall short of it)."""
        if now >= last_rx + self.timeout:
            return Verdict.DEAD
        if now >= last_tx + self.interval / 2:
            return Verdict.SEND_HEARTBEAT
        return Verdict.ALIVE

    def deadline(self, now: float, last_rx: float) -> float:
        """The next time :meth:`verdict` may change for a link: its silence
        bound, or the next beat."""
        return min(last_rx + self.timeout, self.next_beat(now))
