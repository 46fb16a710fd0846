"""Accepted connections: each must carry an admitted link, or be closed.

ZeroMQ's ROUTER accepts every TCP connection and keeps it until the far
end closes it; it has no call to close one peer's connection. Stock
distribution closes an accepted socket whose handshake has not finished
within ``net_setuptime`` (7 s). Without the same here, an outsider that
never proves the cookie (or never says anything past ZeroMQ's greeting)
could keep as many connections, file descriptors of the port program, as
it likes, for as long as it likes.

The listener's monitor tells each accepted connection's descriptor; a
link's first message tells which descriptor carries it (ZeroMQ's
``SRCFD``). At a connection's deadline, if no link on it is admitted, it
is shut down (``shutdown(2)``, not closed: ZeroMQ sees the end of the
stream and frees the connection itself). The deadlines: ``ADMIT_TIMEOUT``
plus ``GRACE`` after it was accepted, and ``GRACE`` after the core forgot a
link it carried, so that the link's last words (a BYE that says why it was
refused) have that long to leave. A descriptor is shut down only if it is
still the same connection (both ends' addresses, read when it was first
seen): the numbers are reused once ZeroMQ closes one.

:class:`AcceptWatch` is the bookkeeping, without I/O; :func:`ident` and
:func:`shut_down` are the two system calls.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydist.core.admission import ADMIT_TIMEOUT
from pydist.core.channels import LinkKey

log = logging.getLogger("pydist.accepted")

#: seconds a refused link's last frames get to leave before its
#: connection is shut down
GRACE = 1.0
#: seconds between two looks at the deadlines: none is sharper than this
CHECK_EVERY = 0.5

_NEVER = float("inf")

#: both ends of a TCP connection: (far address, near address)
Ident = tuple[Any, Any]


@dataclass
class _Conn:
    due: float
    ident: Ident


class AcceptWatch:
    def __init__(self) -> None:
        self.conns: dict[int, _Conn] = {}
        #: the descriptor each link the core holds came in on
        self.by_key: dict[LinkKey, int] = {}
        self.next_check = _NEVER

    def _due(self, conn: _Conn, due: float) -> None:
        conn.due = due
        self.next_check = min(self.next_check, due)

    def accepted(self, fd: int, ident: Ident, now: float) -> None:
        """The listener took a connection (or one was first seen carrying
        a link: the monitor's word and the first message come in either
        order)."""
        conn = self.conns.get(fd)
        if conn is not None and conn.ident == ident:
            return
        # new, or a new connection on a reused number: the old one is gone
        self.conns[fd] = conn = _Conn(_NEVER, ident)
        self._due(conn, now + ADMIT_TIMEOUT + GRACE)

    def knows(self, key: LinkKey) -> bool:
        return key in self.by_key

    def carries(self, key: LinkKey, fd: int, ident: Ident | None, now: float) -> None:
        """The link ``key``, which the core now holds, came in on ``fd``
        (whose ends could not be read if None: it is then not watched,
        since it could never be told apart from a reuse of its number)."""
        self.by_key[key] = fd
        if ident is not None:
            self.accepted(fd, ident, now)

    def disconnected(self, fd: int) -> None:
        self.conns.pop(fd, None)

    def forgot(self, key: LinkKey, now: float) -> None:
        """The core dropped the link ``key``: its connection is looked at
        again once its last frames had time to leave."""
        fd = self.by_key.pop(key, None)
        conn = self.conns.get(fd) if fd is not None else None
        if conn is not None:
            self._due(conn, min(conn.due, now + GRACE))

    def expired(self, now: float,
                admitted: Callable[[LinkKey], bool]) -> list[tuple[int, Ident]]:
        """The connections to shut down now: past their deadline with no
        admitted link. One with an admitted link is not looked at again
        until a link on it is forgotten. Links are matched to connections
        by descriptor number alone, so a link of a connection gone and one
        on its reused number count for both: the doubt keeps a connection
        open for longer, never closes an admitted one."""
        if now < self.next_check:
            return []
        self.next_check = _NEVER
        gone = []
        for fd, conn in list(self.conns.items()):
            if conn.due > now:
                self.next_check = min(self.next_check, conn.due)
            elif any(f == fd and admitted(key) for key, f in self.by_key.items()):
                conn.due = _NEVER
            else:
                del self.conns[fd]
                gone.append((fd, conn.ident))
        self.next_check = max(self.next_check, now + CHECK_EVERY)
        return gone


def ident(fd: int) -> Ident | None:
    """Both ends of the TCP connection on ``fd``, None if it is none."""
    try:
        sock = socket.socket(fileno=fd)
    except OSError:
        return None
    try:
        return sock.getpeername(), sock.getsockname()
    except OSError:
        return None
    finally:
        sock.detach()  # ZeroMQ's descriptor: never close it here


def shut_down(fd: int, expected: Ident) -> bool:
    """Shut the connection on ``fd`` down if it is still ``expected``."""
    try:
        sock = socket.socket(fileno=fd)
    except OSError:
        return False
    try:
        if (sock.getpeername(), sock.getsockname()) != expected:
            return False
        sock.shutdown(socket.SHUT_RDWR)
        return True
    except OSError:
        return False
    finally:
        sock.detach()
