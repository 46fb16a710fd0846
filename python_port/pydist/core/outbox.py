"""What a channel has to send, and in which order.

Erlang orders signals per pair of processes, not per connection: with the
header atom cache off (see README, "Lanes"), the BEAM's controller tags each
distribution packet with its *flow*, the process that sent it, and packets
of different flows may pass each other. :class:`Outbox` holds a channel's
packets by flow and hands them out by deficit round robin
(:class:`pydist.core.scheduler.Scheduler`), so a ping queued behind the
fragments of a 64 MiB message goes next, not after them.

Two flows are special. A *barrier* (flow 0: a packet whose sender the
controller could not tell, or a handshake packet) keeps its place against
everything: what came before it goes first, what comes after waits
behind it until it is out. *Ticks* (flow 1) are empty packets that only
prove the connection alive; the node sends them at once, outside the
sequence (:meth:`pydist.core.delivery.Delivery.send_data`), and should one
come here it goes first, like a realtime item.

Nothing is refused here: the BEAM has handed the bytes over. Two bounds
hold it back instead. A flow with ``flow_bytes`` queued is *held*: the node
asks the controller to suspend that one sending process (as erts's
busy_dist_port would suspend every sender), and to resume it once half is
sent; so the controller keeps pulling and a small sender is never
suspended behind a large one. And past ``queue_bytes`` for the whole
channel (many heavy senders at once) the node pauses the controller (see
:mod:`pydist.core.delivery`). Holding single senders makes sense only while
the channel moves: once it stalls, the node lets every held sender go
(:meth:`Outbox.stop_holding`) and pauses the whole channel, so erts's own
busy handling applies as with stock distribution.
"""

from __future__ import annotations

from collections import deque

from pydist.core.frame import Payload, size
from pydist.core.scheduler import Scheduler

BARRIER = 0
TICK = 1

#: no bound from the scheduler itself: the node's pause bounds the outbox
_UNBOUNDED = 1 << 62


class Outbox:
    def __init__(self, quantum: int, flow_bytes: int = _UNBOUNDED) -> None:
        self.flow_bytes = flow_bytes
        self._sched: Scheduler[int, Payload] = Scheduler(quantum, _UNBOUNDED)
        #: bytes queued per sending flow (not barriers or ticks)
        self._per_flow: dict[int, int] = {}
        #: flows held, and the changes the node has yet to pass on
        self.held_flows: set[int] = set()
        #: whether flows past flow_bytes are held (not while the channel stalls)
        self.holding = True
        self.to_hold: list[int] = []
        self.to_release: list[int] = []
        #: packets that arrived behind a barrier still queued, in arrival order
        self._behind: deque[tuple[int, Payload]] = deque()
        self._behind_bytes = 0
        self._barrier_queued = False
        #: the flow of what the last pop returned
        self.last_flow = BARRIER

    def __len__(self) -> int:
        return len(self._sched) + len(self._behind)

    @property
    def queued_bytes(self) -> int:
        return self._sched.queued_bytes + self._behind_bytes

    @property
    def flows(self) -> int:
        return self._sched.flows

    def push(self, flow: int, payload: Payload) -> None:
        n = size(payload)
        if flow > TICK:
            queued = self._per_flow.get(flow, 0) + n
            self._per_flow[flow] = queued
            if queued >= self.flow_bytes and self.holding and flow not in self.held_flows:
                self.held_flows.add(flow)
                self.to_hold.append(flow)
        if self._behind or self._barrier_queued or (flow == BARRIER and len(self._sched)):
            self._behind.append((flow, payload))
            self._behind_bytes += n
        else:
            self._queue(flow, payload)

    def stop_holding(self) -> None:
        """Release every held flow, and hold none until :meth:`start_holding`."""
        self.holding = False
        self.to_release.extend(sorted(self.held_flows))
        self.held_flows.clear()

    def start_holding(self) -> None:
        self.holding = True

    def pop(self, limit: int | None = None, only: int | None = None) -> Payload | None:
        """The next packet run to send (its flow in :attr:`last_flow`);
        None if nothing is queued, or if the next one is larger than
        ``limit`` or not of flow ``only`` (it stays next)."""
        got = self._sched.pop(limit, only)
        if got is None:
            return None
        flow, payload = got
        self.last_flow = flow
        if flow > TICK:
            queued = self._per_flow[flow] - size(payload)
            if queued:
                self._per_flow[flow] = queued
            else:
                del self._per_flow[flow]
            if flow in self.held_flows and 2 * queued <= self.flow_bytes:
                self.held_flows.discard(flow)
                self.to_release.append(flow)
        elif flow == BARRIER:
            self._barrier_queued = False
        if self._behind and not self._barrier_queued:
            self._release()
        return payload

    def _queue(self, flow: int, payload: Payload) -> None:
        self._sched.push(flow, payload, size(payload), realtime=flow == TICK)
        if flow == BARRIER:
            self._barrier_queued = True

    def _release(self) -> None:
        """Move held packets into the scheduler, up to the next barrier that
        must wait for the queue to empty, or past the one that has its turn."""
        behind = self._behind
        while behind:
            flow, payload = behind[0]
            if self._barrier_queued or (flow == BARRIER and len(self._sched)):
                return
            behind.popleft()
            self._behind_bytes -= size(payload)
            self._queue(flow, payload)
