"""When to redo a costly piece of work that changes keep asking for.

A route computation costs a pass over the whole link-state database, and
an origination of our link-state packet costs every node in the network a
packet; both are asked for once per change. Under churn (a cold start, a
flapping link) the changes come in bursts, and doing the work once per
change is what made a 1,000-node network spend minutes of CPU per node.
RFC 8405 (SPF back-off for IGPs) is the model: the first change after a
quiet period is acted on at once, so a single failure converges as fast
as it is detected; the next changes are coalesced, a short delay apart,
and a burst that lasts longer than ``learn`` is taken as churn, a long
delay apart; ``holddown`` seconds without a change and the network is
quiet again.

The one departure from RFC 8405 is the ``budget``: work is counted (in
whatever unit the owner gives, for routes the LSPs a computation runs
over), and while a burst has spent less than the budget the work is
still done at once. A recomputation over a database of five LSPs costs
microseconds, and holding it back would only make a small network wait;
over a thousand LSPs the budget is gone after a few runs. The schedule
is a pure function of the times it is given: no clock, no randomness.
"""

from __future__ import annotations

from dataclasses import dataclass

_NEVER = float("inf")


@dataclass
class Backoff:
    #: delay between two runs inside a burst
    short: float
    #: delay between two runs once the burst has lasted ``learn``
    long: float
    #: how long a burst may last before it counts as churn
    learn: float
    #: seconds without a change before the next one is acted on at once
    holddown: float
    #: work a burst may spend at once, before the delays apply
    budget: int = 0
    #: when the work asked for is due (never: nothing is asked for)
    due: float = _NEVER
    #: when the current burst began, and when it was last asked for
    began: float = -_NEVER
    asked: float = -_NEVER
    #: when the work was last done, and the work done at once in this burst
    ran: float = -_NEVER
    spent: int = 0

    def busy(self, now: float) -> None:
        """A burst begins at ``now``, as if the work had just run: what is
        asked in the next ``short`` seconds is done together, then."""
        self.began = self.asked = self.ran = now

    def ask(self, now: float) -> float:
        """Something changed that needs the work: when to do it. Asking
        again before it is done changes nothing (the run takes in every
        change made until then)."""
        if self.due == _NEVER:
            if now - self.asked >= self.holddown:
                self.began, self.spent = now, 0  # quiet until now: a new burst
                self.due = now
            elif self.spent < self.budget:
                self.due = now
            else:
                delay = self.short if now - self.began < self.learn else self.long
                self.due = max(now, self.ran + delay)
        self.asked = now
        return self.due

    @property
    def pending(self) -> bool:
        return self.due != _NEVER

    def done(self, now: float, work: int = 1) -> None:
        """The work ran at ``now`` and cost ``work``."""
        self.spent += work
        self.due, self.ran = _NEVER, now
