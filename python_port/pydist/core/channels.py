"""Links, channels, and the table that names channels both ways.

A *link* is one ZeroMQ connection to a neighbour node; its key is an
``int`` for a link this node dialled and the ROUTER routing id (``bytes``)
for a link a neighbour dialled. A *channel* is one Erlang distribution
connection: ``chan`` is its id on the port, and between nodes it is named
by (peer, epoch, which side opened it), so that the frames of an old
connection never reach a new one.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from pydist.core.budget import Budget
from pydist.core.outbox import Outbox
from pydist.core.rto import Rto
from pydist.core.sequencing import Receiver, Sender
from pydist.core.wire import FLAG_INITIATOR, PY_CHAN_BASE

LinkKey = int | bytes
#: (peer node id, epoch, whether this node opened the channel)
RemoteKey = tuple[int, int, bool]

_RECENT_CLOSED = 1024


@dataclass(eq=False)
class Link:
    key: LinkKey
    peer: bytes | None
    endpoint: str | None
    last_rx: float
    last_tx: float
    #: the longest gap between two frames received lately, fading (see
    #: pydist.core.liveness): how long a silence this link has shown is
    #: no sign of its end
    gap: float = 0.0
    #: silent past heartbeat_timeout, spared by the stretch (counted once)
    suspected: bool = False
    #: whether the link was the only way to its neighbour when its current
    #: silence began (judged once it is longer than a clean link shows;
    #: None while frames come: see pydist.core.neighbours)
    only_way: bool | None = None
    #: admitted: both ends proved the cookie (see pydist.core.admission);
    #: until then the link carries nothing but HELLO, PROOF and BYE
    up: bool = False
    congested: bool = False
    channels: set[int] = field(default_factory=set)
    #: why the link went down (None while it lives)
    down_reason: str | None = None
    #: the nonces of the admission: ours, and the far end's (from its HELLO)
    nonce: bytes = b""
    peer_nonce: bytes = b""
    #: the name the far end's HELLO gave, until admission makes it ``peer``
    claimed: bytes | None = None
    #: a dialler's proof that did not verify with the cookie we had for it,
    #: kept while the BEAM is asked for the one it uses with that peer
    #: (asked once per link: ``cookie_asked``)
    parked_proof: bytes | None = None
    cookie_asked: bool = False
    #: when the link was made: admitted by ``born + ADMIT_TIMEOUT`` or closed
    born: float = 0.0
    #: frames that came before admission were logged once already
    early_logged: bool = False

    @property
    def dialled(self) -> bool:
        return isinstance(self.key, int)


@dataclass(eq=False)
class Channel:
    chan: int
    peer: bytes
    peer_id: int
    epoch: int
    initiator: bool
    link: Link
    #: set by the node for channels it carries; None only in unit tests of this table
    sender: Sender | None = None
    receiver: Receiver | None = None
    #: what the BEAM handed over and is not sent yet, by flow
    outbox: Outbox | None = None
    #: the wait for an ack before sending again, from the measured round trip
    rto: Rto | None = None
    #: the bytes it may have unacknowledged, from the path's measured
    #: bandwidth and delay
    budget: Budget | None = None
    #: whether the BEAM was told to hold this channel's data (outbox full,
    #: link congested, or the retransmit window full)
    paused: bool = False
    #: frames are out and none was acknowledged for the ``rto``'s wait: the
    #: far end does not take what is sent (its BEAM frozen, say)
    stalled: bool = False
    #: OPEN went to the far end (a channel this node opens waits for an
    #: admitted link: no frame of it may go before its OPEN)
    opened: bool = True
    #: a tick from the controller waits for the link (congested, or the
    #: channel not opened yet): it goes out with the next pump
    tick_pending: bool = False
    #: the distribution handshake over it completed (the BEAM said so): the
    #: peer proved the cookie end to end, and its lane messages are delivered
    live: bool = False
    #: one past the highest sequence the far end said it received (past a
    #: gap), and whether that moved since the resend timer last fired: a
    #: flow waits on a gap, but the channel is not stalled
    peer_seen: int = 0
    moving: bool = False

    @property
    def remote_key(self) -> RemoteKey:
        return (self.peer_id, self.epoch, self.initiator)

    @property
    def flags(self) -> int:
        """Header flags of the frames this node sends on the channel."""
        return FLAG_INITIATOR if self.initiator else 0


def received_key(src: int, epoch: int, flags: int) -> RemoteKey:
    """Our name of the channel a received frame belongs to: the sender
    opened it exactly when we did not."""
    return (src, epoch, not flags & FLAG_INITIATOR)


class ChannelTable(Mapping[int, Channel]):
    """Channels by port id, and by their name between nodes."""

    def __init__(self, rng: random.Random) -> None:
        self._by_chan: dict[int, Channel] = {}
        self._by_remote: dict[RemoteKey, Channel] = {}
        self._per_peer: Counter[int] = Counter()
        self._closed: dict[RemoteKey, None] = {}  # bounded, oldest first
        self._next_py = PY_CHAN_BASE
        self._rng = rng

    def __getitem__(self, chan: int) -> Channel:
        return self._by_chan[chan]

    def __iter__(self) -> Iterator[int]:
        return iter(self._by_chan)

    def __len__(self) -> int:
        return len(self._by_chan)

    def has_peer(self, peer_id: int) -> bool:
        """Whether any channel (up or on its way) goes to ``peer_id``."""
        return peer_id in self._per_peer

    def remote(self, key: RemoteKey) -> Channel | None:
        return self._by_remote.get(key)

    def add(self, ch: Channel) -> None:
        self._by_chan[ch.chan] = ch
        self._by_remote[ch.remote_key] = ch
        self._per_peer[ch.peer_id] += 1
        ch.link.channels.add(ch.chan)

    def remove(self, ch: Channel, told: bool = True) -> None:
        """Forget ``ch``. Unless the far end was ``told`` (a CLOSE sent, or
        it sent one), its later frames are answered with a CLOSE."""
        if self._by_chan.pop(ch.chan, None) is not None:
            self._per_peer[ch.peer_id] -= 1
            if self._per_peer[ch.peer_id] <= 0:
                del self._per_peer[ch.peer_id]
        self._by_remote.pop(ch.remote_key, None)
        ch.link.channels.discard(ch.chan)
        if told:
            self.remember_closed(ch.remote_key)

    def new_epoch(self, peer_id: int) -> int:
        """A random epoch not in use towards ``peer_id`` for a channel we open."""
        while True:
            epoch = self._rng.randrange(1, 1 << 32)
            if (peer_id, epoch, True) not in self._by_remote:
                return epoch

    def new_py_chan(self) -> int:
        """A port id for an accepted channel, from the range Python owns."""
        chan = self._next_py
        while chan in self._by_chan:
            chan = PY_CHAN_BASE + (chan + 1 - PY_CHAN_BASE) % PY_CHAN_BASE
        self._next_py = PY_CHAN_BASE + (chan + 1 - PY_CHAN_BASE) % PY_CHAN_BASE
        return chan

    def remember_closed(self, key: RemoteKey) -> None:
        self._closed[key] = None
        if len(self._closed) > _RECENT_CLOSED:
            del self._closed[next(iter(self._closed))]

    def recently_closed(self, key: RemoteKey) -> bool:
        return key in self._closed
