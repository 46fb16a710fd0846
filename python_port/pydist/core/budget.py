"""How many bytes a connection may have on the way, unacknowledged.

A fixed in-flight budget caps a connection at ``budget / round trip``:
512 KiB on loopback (well under a millisecond) is no limit, and it keeps
the queues past the outbox short, so the outbox's flow scheduling decides
who waits; on a long path it is a collapse (512 KiB over a 400 ms round
trip is 1.3 MB/s, where stock TCP, whose window grows with the path,
moved 87 MB/s over the same test line). Growing it with the round trip
alone is wrong too: on a slow link (a 10 Mbit/s radio hop) a budget sized
for the delay queues seconds of data, which delays every small message
behind it and outruns the retransmission timeout's ceiling.

So the budget follows the path's bandwidth-delay product, as BBR sizes
its window: the round trip the path shows with no queue (the least one
measured, ``min_rtt``) times the fastest rate acknowledgements came in
lately (a maximum that halves every ``RATE_HALF_LIFE`` so a path that got
slower is believed within seconds), times ``GAIN`` = 2, so the path stays
full while an ack is on its way and at most one more round trip of data
waits in queues. The rate is sampled once per round trip of acks, so it
measures the path, not the burst of one ack. Starting from the floor,
each round trip in which the path delivers all it was given doubles the
budget (TCP's slow start, in effect), until the rate stops growing: the
bottleneck. The budget never goes below ``floor`` (``inflight_bytes``,
what a short path needs) nor above ``ceiling`` (half of ``window_bytes``,
where the sender pauses anyway). A loss that needed a timeout, or a route
change, starts it again from the floor: the new path's delay and rate are
unknown, and TCP does the same after a timeout.
"""

from __future__ import annotations

import math

#: the budget is this many bandwidth-delay products
GAIN = 2.0
#: seconds in which the fastest delivery rate seen is half forgotten
RATE_HALF_LIFE = 5.0
#: the shortest interval a rate is sampled over (loopback round trips are
#: shorter than the acks' own spacing)
MIN_SAMPLE = 0.005


class Budget:
    def __init__(self, floor: int, ceiling: int) -> None:
        self.floor = floor
        self.ceiling = max(floor, ceiling)
        #: the bytes a connection may have unacknowledged now
        self.limit = floor
        #: the least round trip measured on this path (None: none yet)
        self.min_rtt: float | None = None
        #: the fastest delivery rate lately, bytes a second, and when it was
        #: last brought up to date
        self.rate = 0.0
        self._rate_at = 0.0
        self._acked = 0  # bytes acknowledged, in all
        self._mark: tuple[float, int] | None = None  # the current sample's start

    def rtt(self, sample: float) -> None:
        """A round trip measured (by :class:`pydist.core.rto.Rto`)."""
        if sample > 0 and (self.min_rtt is None or sample < self.min_rtt):
            self.min_rtt = sample
            self._resize()

    def acked(self, nbytes: int, now: float) -> None:
        """The far end acknowledged ``nbytes`` more."""
        self._acked += nbytes
        mark = self._mark
        if mark is None:
            self._mark = (now, self._acked)
            return
        since = now - mark[0]
        # about once a round trip (a little less, or clock noise would
        # make it every other one)
        if since < max(0.9 * (self.min_rtt or 0.0), MIN_SAMPLE):
            return
        sample = (self._acked - mark[1]) / since
        self._mark = (now, self._acked)
        self.rate = max(sample, self._decayed(now))
        self._rate_at = now
        self._resize()

    def reset(self) -> None:
        """The path changed, or lost what was sent: measure it again."""
        self.limit = self.floor
        self.min_rtt = None
        self.rate = 0.0
        self._mark = None

    def _decayed(self, now: float) -> float:
        return self.rate * math.pow(0.5, (now - self._rate_at) / RATE_HALF_LIFE)

    def _resize(self) -> None:
        if self.min_rtt is None:
            return
        bdp = self.rate * self.min_rtt
        self.limit = round(min(max(GAIN * bdp, self.floor), self.ceiling))
