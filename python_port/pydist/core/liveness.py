"""Link liveness: heartbeats that find a dead neighbour in well under a second.

Independent of ``net_ticktime``: a link is dead when nothing at all has
arrived on it for ``timeout`` seconds, and a link sends a heartbeat when it
has sent nothing for ``interval`` seconds. Any frame counts both ways, so a
busy link carries no heartbeats.
"""

from __future__ import annotations

import enum
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

    def verdict(self, now: float, last_rx: float, last_tx: float) -> Verdict:
        if now - last_rx >= self.timeout:
            return Verdict.DEAD
        if now - last_tx >= self.interval:
            return Verdict.SEND_HEARTBEAT
        return Verdict.ALIVE

    def deadline(self, last_rx: float, last_tx: float) -> float:
        """The next time :meth:`verdict` may change for this link."""
        return min(last_rx + self.timeout, last_tx + self.interval)
