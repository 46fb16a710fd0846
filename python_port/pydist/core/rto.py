"""How long a sender waits for an acknowledgement before sending again.

A fixed wait is wrong on both sides of it: on a path whose round trip is
longer (a satellite or cellular hop, or port programs queueing under
load: the 100-node mesh counted thousands of resends of frames that were
merely slow), every frame goes twice, adding load where there is too much
already; on a fast path a real loss waits longer than it needs to. So each
connection measures its round trip as TCP does (RFC 6298): one frame at a
time is timed from its sending to the ack that covers it, a smoothed mean
and deviation are kept, and the wait is ``srtt + 4 * rttvar``, never below
``floor`` (``resend_timeout``, which stays the wait until a first sample)
nor above ``ceiling``. Karn's rule: a frame sent again is not timed, since
its ack may answer either copy; so, as in TCP, a wait that ran out is
doubled (up to ``ceiling``) and kept until a frame sent once is acked,
or a path slower than ``floor`` would never be measured. Acks wait up to
``ack_delay`` (10 ms) at the far end; the samples include that, as TCP's
include delayed acks.
"""

from __future__ import annotations


class Rto:
    def __init__(self, floor: float, ceiling: float) -> None:
        self.floor = floor
        self.ceiling = ceiling
        #: smoothed round trip and its mean deviation (None: no sample yet)
        self.srtt: float | None = None
        self.rttvar = 0.0
        #: the wait for an ack now
        self.timeout = floor
        self._timed: tuple[int, float] | None = None  # (sequence, sent at)

    def sent(self, seq: int, now: float) -> None:
        """Frame ``seq`` went out for the first time."""
        if self._timed is None:
            self._timed = (seq, now)

    def resent(self) -> None:
        """Frames went out again: the one timed may be among them."""
        self._timed = None

    def expired(self) -> None:
        """No ack came within the wait: wait longer, until a sample says."""
        self.timeout = min(self.timeout * 2, self.ceiling)

    def acked(self, upto: int, now: float) -> float | None:
        """The far end has every frame below ``upto``: the round trip this
        measured, if it measured one."""
        timed = self._timed
        if timed is None or upto <= timed[0]:
            return None
        self._timed = None
        sample = max(0.0, now - timed[1])
        if self.srtt is None:
            self.srtt, self.rttvar = sample, sample / 2
        else:
            self.rttvar = 0.75 * self.rttvar + 0.25 * abs(self.srtt - sample)
            self.srtt = 0.875 * self.srtt + 0.125 * sample
        self.timeout = min(max(self.srtt + 4 * self.rttvar, self.floor), self.ceiling)
        return sample
