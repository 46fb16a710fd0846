"""What processes ask of their own sends: a lane (``py_dist:set_lane/1``)
and to be told of losses (``py_dist:loss_mode/1``), by flow.

The loss mode is read where frames are numbered (a frame of a flow in
``notify`` may be given up: :mod:`pydist.core.sequencing`); the rest of
this module is about lanes.

``py_dist:set_lane/1`` puts a process's ordinary sends (``!``,
``gen_server:cast``) on a lane.

The controller tags every packet it hands over with its flow, the process
that sent it. For a flow whose process set a lane, each packet that is a
whole message send leaves as a lane message carrying the distribution
packet itself; its destination hands it to the BEAM on its connection
with the source, where erts delivers it as any message of that
connection (sender, registered name or alias as the packet says). The
lane's rules apply on the way (:mod:`pydist.core.lanes`): no order, and
drops under pressure, counted.

What stays on the connection, in order with the rest of it: signals
(links, monitors, exits, ``spawn_request``: their order is what Erlang
promises), a message erts cut into fragments (larger than its fragment
size, 64 KiB), and whatever the controller could not attribute to a
sender (a barrier). So a lane never reorders a signal against anything;
it only carries messages that a lost or overtaken copy of cannot confuse
erts about (a fragment would).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from pydist.core.port_codec import Groups
from pydist.core.wire import FRAME_LEN, LANE_NAMES

log = logging.getLogger("pydist.process_opts")

#: processes with a lane at once: the BEAM refuses past the same bound
MAX_PROCESSES = 1 << 16

#: a whole distribution packet with no atom cache references, whose
#: control message starts as a small tuple (erts' "Distribution Header")
_WHOLE = b"\x83D\x00h"
_SMALL_INTEGER_EXT = 97
#: SEND, REG_SEND, SEND_TT, REG_SEND_TT, SEND_SENDER, SEND_SENDER_TT,
#: ALIAS_SEND, ALIAS_SEND_TT: the operations that carry a message
SEND_OPS = frozenset((2, 6, 12, 16, 22, 23, 33, 34))

#: a packet for a lane: the lane, its deadline (ms, 0: the default), and
#: the packet with its length prefix, as the destination's BEAM reads it
LanePacket = tuple[int, int, memoryview]


def message_send(packet: memoryview | bytes) -> bool:
    """Whether a distribution packet is one whole message send."""
    return (len(packet) > 6 and packet[:4] == _WHOLE
            and packet[5] == _SMALL_INTEGER_EXT and packet[6] in SEND_OPS)


def messages_in(run: bytes | memoryview) -> int:
    """The messages in a run of length-prefixed distribution packets, if
    the run is whole and every packet in it is a message send; 0 if not
    (it holds something whose loss, or whose passing the connection's
    order, would break a link or leave erts half a message)."""
    view = memoryview(run)
    count = done = 0
    for start, end in _packets(view):
        if not message_send(view[start + FRAME_LEN.size : end]):
            return 0
        count, done = count + 1, end
    return count if done == len(view) else 0


class ProcessOpts:
    """The lane each process asked for, by flow (the reliable lane, the
    connection, for every other), and the flows that accept losses."""

    def __init__(self) -> None:
        self.by_flow: dict[int, tuple[int, int]] = {}
        #: flows whose processes accept losses of their messages, told to
        #: them, rather than a connection down (py_dist:loss_mode(notify))
        self.notify: set[int] = set()

    def __len__(self) -> int:
        return len(self.by_flow)

    def set_notify(self, flow: int, notify: bool) -> bool:
        """False, with nothing changed, for a table already full."""
        if not notify:
            self.notify.discard(flow)
        elif flow not in self.notify:
            if len(self.notify) >= MAX_PROCESSES:
                log.error("loss_mode: %d processes have asked already", MAX_PROCESSES)
                return False
            self.notify.add(flow)
        return True

    def set(self, flow: int, lane: int, deadline_ms: int) -> bool:
        """Lane 0 is the connection's: the process leaves its lane. False,
        with nothing changed, for a lane that does not exist or a table
        already full."""
        if lane == 0:
            self.by_flow.pop(flow, None)
            return True
        if lane not in LANE_NAMES or not 0 <= deadline_ms < 1 << 32:
            log.error("set_lane: no lane %d (deadline %d ms)", lane, deadline_ms)
            return False
        if flow not in self.by_flow and len(self.by_flow) >= MAX_PROCESSES:
            log.error("set_lane: %d processes have a lane already", MAX_PROCESSES)
            return False
        self.by_flow[flow] = (lane, deadline_ms)
        return True

    def split(self, groups: Groups) -> tuple[Groups, list[LanePacket]]:
        """The packets that stay on the connection (groups as they came,
        each flow's packets in order) and those that take their process's
        lane, in the order they came."""
        by_flow = self.by_flow
        if not by_flow:
            return groups, []
        kept: Groups = []
        lanes: list[LanePacket] = []
        for flow, body in groups:
            spec = by_flow.get(flow)
            if spec is None:
                kept.append((flow, body))
                continue
            lane, deadline_ms = spec
            run = 0  # where the current run of packets that stay began
            for start, end in _packets(body):
                if message_send(body[start + FRAME_LEN.size : end]):
                    if run < start:
                        kept.append((flow, body[run:start]))
                    lanes.append((lane, deadline_ms, body[start:end]))
                    run = end
            if run < len(body):
                kept.append((flow, body[run:]))
        return kept, lanes


def _packets(body: memoryview) -> Iterator[tuple[int, int]]:
    """Where each length-prefixed packet of a run starts and ends, up to
    a truncated tail if there is one (left to the connection, whose
    decoder reports it)."""
    pos, end, head = 0, len(body), FRAME_LEN.size
    while end - pos >= head:
        (n,) = FRAME_LEN.unpack_from(body, pos)
        if end - pos - head < n:
            return
        yield pos, pos + head + n
        pos += head + n
