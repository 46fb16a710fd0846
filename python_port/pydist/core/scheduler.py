"""What a connection sends next: realtime items first, then the flows in turn.

Its one user is a channel's outbox (:mod:`pydist.core.outbox`): one
scheduler per Erlang connection, not per link. A connection carries the
messages of many processes. Sent in arrival order, the 64 KiB fragments of
one 100 MB message would hold up everything queued behind them; instead
each packet from the BEAM is queued under its flow (the process that sent
it) and :class:`Scheduler` takes from the flows in turn, by deficit round
robin: at its turn a flow gets ``quantum`` bytes of credit and sends its
items, oldest first, while its credit covers the next one; the credit left
over stays for its next turn (and is forgotten when the flow runs dry, so
that an idle flow saves nothing up). Flows share the connection by bytes,
not by items.

Realtime items (the outbox's ticks; heartbeats and acks do not come here,
the node sends them on the link at once) skip the turns: they go first, in
the order queued, and are charged to no flow. They are meant to be small
and few; the scheduler does not stop them from starving the rest.

Fairness: while two flows both stay backlogged, the bytes sent of each over
any stretch of pops differ by at most ``quantum + 2 * (largest item - 1)``.
Write a flow's bytes sent as ``quantum * turns - credit``: between two turns
of one flow the other has exactly one, and at the end of any pop the flow
that has the turn holds a credit in ``[0, quantum + largest - 1]`` and the
others one in ``[0, largest - 1]`` (their turns ended short of an item), so
the difference of two flows' sent bytes stays in ``[1 - largest, quantum +
largest - 1]``. Small cases searched exhaustively reach the bound, so
``quantum + largest`` does not hold for every stretch of pops.

Memory is bounded: :meth:`Scheduler.push` refuses what would take the
queued bytes past ``max_bytes``. The outbox sets no real bound here, since
the BEAM has handed its bytes over already: the node's pause of the
channel bounds it instead.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

F = TypeVar("F", bound=Hashable)
T = TypeVar("T")


class Scheduler(Generic[F, T]):
    """The items queued on one connection, by flow, and the order to send them in.

    Items are kept as given; ``size`` is what they weigh for the quantum and
    the byte limit (the outbox gives a packet's length).
    """

    def __init__(self, quantum: int, max_bytes: int) -> None:
        if quantum < 1 or max_bytes < 1:
            raise ValueError("need quantum >= 1 and max_bytes >= 1")
        self.quantum = quantum
        self.max_bytes = max_bytes
        self._bytes = 0
        self._items = 0
        self._realtime: deque[tuple[F, T, int]] = deque()
        #: the flows with items queued (realtime or not) and how many
        self._count: dict[F, int] = {}
        self._queues: dict[F, deque[tuple[T, int]]] = {}
        self._credit: dict[F, int] = {}
        #: the flows with non-realtime items, in turn order; the first has the turn
        self._turns: deque[F] = deque()
        self._granted = False  # the first of _turns has had its quantum this turn

    def __len__(self) -> int:
        return self._items

    @property
    def queued_bytes(self) -> int:
        return self._bytes

    @property
    def flows(self) -> int:
        """The flows with anything queued, realtime or not."""
        return len(self._count)

    def push(self, flow: F, item: T, size: int, realtime: bool = False) -> bool:
        """Queue ``item`` behind the others of its flow (or of the realtime
        ones); False, and nothing queued, if there is no room for it."""
        if size < 0:
            raise ValueError(f"item size {size}")
        if self._bytes + size > self.max_bytes:
            return False
        if realtime:
            self._realtime.append((flow, item, size))
        else:
            queue = self._queues.get(flow)
            if queue is None:
                queue = self._queues[flow] = deque()
                self._credit[flow] = 0
                self._turns.append(flow)
            queue.append((item, size))
        self._count[flow] = self._count.get(flow, 0) + 1
        self._bytes += size
        self._items += 1
        return True

    def pop(self, limit: int | None = None, only: F | None = None) -> tuple[F, T] | None:
        """The next item to send, with its flow; None if nothing is queued,
        or if the next item is larger than ``limit`` or not of flow
        ``only``: it stays next, and the following pop returns it (the
        turns may have moved on to it)."""
        if self._realtime:
            flow, item, size = self._realtime[0]
            if (limit is not None and size > limit) or (only is not None and flow != only):
                return None
            self._realtime.popleft()
            self._taken(flow, size)
            return flow, item
        if not self._turns:
            return None
        return self._next_turn_item(limit, only)

    def drop_flow(self, flow: F) -> int:
        """Forget everything queued for ``flow`` (its process gone, say);
        the bytes freed."""
        if flow not in self._count:
            return 0
        return self._remove(lambda f, _item: f == flow)

    def drop_if(self, predicate: Callable[[T], bool]) -> int:
        """Forget every item, realtime or not, that ``predicate`` picks (say,
        realtime items past their deadline); the bytes freed. It looks at
        every item queued: for occasional sweeps, not for every pop."""
        return self._remove(lambda _flow, item: predicate(item))

    def _next_turn_item(self, limit: int | None, only: F | None) -> tuple[F, T] | None:
        """Deficit round robin, one item at a time: the turn stays with a
        flow across pops until its credit is short of its next item."""
        turns, passes = self._turns, 0
        while True:
            flow = turns[0]
            queue = self._queues[flow]
            if not self._granted:
                self._credit[flow] += self.quantum
                self._granted = True
            item, size = queue[0]
            if size <= self._credit[flow]:
                if (limit is not None and size > limit) or (only is not None and flow != only):
                    return None
                queue.popleft()
                self._credit[flow] -= size
                if not queue:
                    self._retire(flow)
                self._taken(flow, size)
                return flow, item
            turns.rotate(-1)
            self._granted = False
            passes += 1
            if passes == len(turns):
                self._skip_rounds()
                passes = 0

    def _skip_rounds(self) -> None:
        """A whole round sent nothing (items much larger than the quantum):
        give every flow at once the credit of the rounds that would send
        nothing either, so that a pop costs at most two rounds of steps."""
        rounds = min(-(-(self._queues[f][0][1] - self._credit[f]) // self.quantum)
                     for f in self._turns)
        for f in self._turns:
            self._credit[f] += (rounds - 1) * self.quantum

    def _retire(self, flow: F) -> None:
        """``flow`` ran dry: out of the turns, its credit forgotten."""
        if self._turns[0] == flow:
            self._turns.popleft()
            self._granted = False
        else:
            self._turns.remove(flow)
        del self._queues[flow]
        del self._credit[flow]

    def _taken(self, flow: F, size: int) -> None:
        self._bytes -= size
        self._items -= 1
        left = self._count[flow] - 1
        if left:
            self._count[flow] = left
        else:
            del self._count[flow]

    def _remove(self, picked: Callable[[F, T], bool]) -> int:
        freed = 0
        kept: deque[tuple[F, T, int]] = deque()
        for flow, item, size in self._realtime:
            if picked(flow, item):
                self._taken(flow, size)
                freed += size
            else:
                kept.append((flow, item, size))
        self._realtime = kept
        for flow, queue in list(self._queues.items()):
            left: deque[tuple[T, int]] = deque()
            for item, size in queue:
                if picked(flow, item):
                    self._taken(flow, size)
                    freed += size
                else:
                    left.append((item, size))
            self._queues[flow] = left
            if not left:
                self._retire(flow)
        return freed
