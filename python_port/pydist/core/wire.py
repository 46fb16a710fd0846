"""Byte layouts: the port packets shared with Erlang, and the inter-node frame.

The port constants have one Erlang copy, ``erlang/include/py_dist.hrl``;
``tests/core/test_wire.py`` parses both and checks that they agree.
"""

from __future__ import annotations

import enum
import hashlib
import struct

# --- BEAM <-> Python port packets ({packet, 4}) ---------------------------

OP_CTRL = 0
OP_DATA = 1
#: BEAM -> Python only: a channel's packets in groups, one flow (sender) each
OP_FLOWS = 2
#: BEAM -> Python: a message for a lane (py_dist:send/3); Python -> BEAM:
#: a message that arrived on one, to deliver
OP_LANE = 3
OP_DELIVER = 3
#: op, lane, deadline (ms, 0: none), length of the destination node's name
LANE_REQUEST = struct.Struct("!BBIH")
PY_CHAN_BASE = 0x80000000

#: outer length, op, channel: the prefix of a data packet written to the BEAM
PORT_DATA_PREFIX = struct.Struct("!IBI")
#: op, channel: the prefix of a data packet read from the BEAM
DATA_HEADER = struct.Struct("!BI")
#: flow, length: the prefix of one group inside a flows packet
FLOW_GROUP = struct.Struct("!QI")
#: length of one distribution packet inside a data packet
FRAME_LEN = struct.Struct("!I")
PORT_LEN = struct.Struct("!I")

#: why Python closed a channel; the atoms Erlang decodes ({closed, Chan, Reason})
CLOSE_REASONS = (
    "peer_closed", "peer_exit", "heartbeat_timeout", "connect_timeout",
    "wrong_node", "protocol_error", "sequence_gap", "not_ready",
    "duplicate_channel", "port_exit", "no_route", "path_lost", "unlinked",
    "gap_timeout", "reorder_overflow", "retransmit_overflow", "bad_ack", "name_taken",
    "wrong_cookie",
)

# --- Python <-> Python frames over ZeroMQ ---------------------------------

#: 2: links are admitted by a cookie proof (HELLO carries a nonce, PROOF);
#: 3: a connection's ticks travel unsequenced (TICK);
#: 4: DATA frames say what they come after (order per flow), skips, gap reports;
#: 5: acks carry the record of the skips taken (pydist.core.skips)
VERSION = 5


class Kind(enum.IntEnum):
    DATA = 1
    HELLO = 2
    HEARTBEAT = 3
    OPEN = 4
    CLOSE = 5
    BYE = 6
    LSP = 7
    SUMMARY = 8
    ACK = 9
    LANE = 10
    PROOF = 11
    #: a connection's tick: end to end like DATA, but outside its sequence,
    #: so nobody acknowledges it or sends it again
    TICK = 12


#: the lanes besides the reliable one (a frame header's lane byte)
UNORDERED = 1
UNRELIABLE = 2
REALTIME = 3
LANE_NAMES = {UNORDERED: "unordered", UNRELIABLE: "unreliable", REALTIME: "realtime"}


#: flag: the sender opened the channel (tells the two ends' ids apart)
FLAG_INITIATOR = 0x01
#: flag: the payload is sealed for the destination (see pydist.core.trust)
FLAG_SEALED = 0x02
#: flag, lane messages: the payload is a distribution packet for the
#: destination's connection with the source (a process's own lane), not
#: ``{To, Msg}`` (see pydist.core.process_opts)
FLAG_DIST = 0x04
#: flag, DATA: a barrier, delivered after every earlier frame of its
#: connection; any other DATA frame's chunk index is how many frames back
#: the one it comes after is (0: none), see pydist.core.sequencing
FLAG_BARRIER = 0x08
#: flag, DATA: a skip, standing in for a frame its sender gave up
FLAG_SKIP = 0x10
#: flag, ACK: a gap report, its payload the ranges missing
FLAG_GAP = 0x20

#: version, kind, flags, hop limit, lane, 3 pad, channel epoch,
#: source, destination, sequence, chunk index, chunk count
HEADER = struct.Struct("!BBBBB3xIQQQII")
HEADER_SIZE = HEADER.size
#: where the hop limit is in a header: the one byte nodes in the middle change
HOPS_OFFSET = 3

DEFAULT_HOPS = 32


def node_id(name: bytes) -> int:
    """The compact form of a node name that frames carry: 64 bits of BLAKE2b.

    A collision between two live node names is detected at HELLO time (the
    name travels whole there) and refused.
    """
    return int.from_bytes(hashlib.blake2b(name, digest_size=8).digest(), "big")
