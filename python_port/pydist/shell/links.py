"""ZeroMQ sockets: one ROUTER that neighbours dial, one DEALER per link we dial.

A link is one TCP connection used both ways, so a node holds one socket per
neighbour it dialled plus its listener. Sends never block the event loop:
a message that meets a full queue waits in a per-link backlog. A link with
a backlog is *congested*: the core pauses the connections that use it, so
one slow neighbour holds up only its own traffic.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Any

import zmq

from pydist.core.channels import LinkKey
from pydist.core.frame import JOIN_MAX
from pydist.core.trust import Trust
from pydist.core.wire import HEADER_SIZE
from pydist.shell.curve import ZAP_ENDPOINT

log = logging.getLogger("pydist.links")

#: below this size a copy is cheaper than ZeroMQ's zero-copy bookkeeping
ZERO_COPY_MIN = JOIN_MAX


class Links:
    def __init__(self, ctx: zmq.Context[Any], address: str, port: int, hwm: int,
                 max_frame: int, trust: Trust | None = None) -> None:
        self.ctx = ctx
        self.hwm = hwm
        self.max_msg = max_frame + HEADER_SIZE + 64
        self.trust = trust
        #: answers ZeroMQ's authentication requests (ZAP) when links are encrypted
        self.zap: zmq.Socket[Any] | None = None
        self.router = ctx.socket(zmq.ROUTER)
        self._tune(self.router)
        if trust is not None:
            self.zap = ctx.socket(zmq.REP)
            self.zap.bind(ZAP_ENDPOINT)  # before any peer can connect
            self.router.curve_server = True
            self._curve(self.router)
        self.router.setsockopt(zmq.ROUTER_MANDATORY, 1)
        #: the connections the listener accepts and loses (pydist.shell.accepted)
        self.monitor: zmq.Socket[Any] = self.router.get_monitor_socket(
            zmq.EVENT_ACCEPTED | zmq.EVENT_DISCONNECTED)
        self.router.bind(f"tcp://{address}:{port}")
        endpoint = self.router.getsockopt(zmq.LAST_ENDPOINT)
        assert isinstance(endpoint, bytes)
        self.port = int(endpoint.rsplit(b":", 1)[1])
        self.dealers: dict[int, zmq.Socket[Any]] = {}
        self.backlog: dict[LinkKey, deque[list[Any]]] = {}
        self.backlog_bytes = 0  # all links'
        self.link_backlog: dict[LinkKey, int] = {}  # bytes, per link

    def _tune(self, sock: zmq.Socket[Any]) -> None:
        sock.setsockopt(zmq.LINGER, 200)
        sock.setsockopt(zmq.SNDHWM, self.hwm)
        sock.setsockopt(zmq.RCVHWM, self.hwm)
        sock.setsockopt(zmq.MAXMSGSIZE, self.max_msg)
        sock.setsockopt(zmq.TCP_KEEPALIVE, 1)

    def _curve(self, sock: zmq.Socket[Any]) -> None:
        assert self.trust is not None
        sock.curve_secretkey = self.trust.curve_secret
        sock.curve_publickey = self.trust.curve_public

    def dial(self, key: int, endpoint: str, peer: bytes | None = None) -> zmq.Socket[Any]:
        """A DEALER connected to ``endpoint``; with encryption on, only if
        the authorized keys name ``peer``'s key (else it stays unconnected,
        and the core's connect timeout ends the link)."""
        sock: zmq.Socket[Any] = self.ctx.socket(zmq.DEALER)
        self._tune(sock)
        self.dealers[key] = sock
        if self.trust is not None:
            server_key = self.trust.curve_by_name.get(peer or b"")
            if server_key is None:
                log.error("not dialling %s at %s: no key for it in the authorized keys",
                          (peer or b"?").decode(errors="replace"), endpoint)
                return sock
            self._curve(sock)
            sock.curve_serverkey = server_key
        sock.connect(endpoint)
        return sock

    def hangup(self, key: int) -> zmq.Socket[Any] | None:
        self._drop_backlog(key)
        sock = self.dealers.pop(key, None)
        if sock is not None:
            sock.close()  # LINGER lets a last BYE out, for a little while
        return sock

    def forget(self, key: LinkKey) -> None:
        """The core dropped a link a neighbour dialled: so do we."""
        self._drop_backlog(key)

    def _drop_backlog(self, key: LinkKey) -> None:
        self.backlog.pop(key, None)
        self.backlog_bytes -= self.link_backlog.pop(key, 0)

    def send(self, key: LinkKey, parts: list[Any], limit: int | None = None) -> bool:
        """Send now, or queue in the link's backlog; with ``limit``, a message
        that would take that backlog past it is dropped instead (False)."""
        queued = self.backlog.get(key)
        if queued is None and self._try_send(key, parts):
            return True
        size = _size(parts)
        held = self.link_backlog.get(key, 0)
        if limit is not None and held + size > limit:
            return False
        if queued is None:
            queued = self.backlog[key] = deque()
        queued.append(parts)
        self.link_backlog[key] = held + size
        self.backlog_bytes += size
        return True

    def _try_send(self, key: LinkKey, parts: list[Any]) -> bool:
        copy = len(parts[-1]) < ZERO_COPY_MIN
        try:
            if isinstance(key, int):
                sock = self.dealers.get(key)
                if sock is None:
                    return True  # hung up: the core already closed its channels
                sock.send_multipart(parts, flags=zmq.NOBLOCK, copy=copy)
            else:
                self.router.send_multipart([key, *parts], flags=zmq.NOBLOCK, copy=copy)
        except zmq.Again:
            return False
        except zmq.ZMQError as exc:
            if exc.errno == zmq.EHOSTUNREACH:  # that neighbour's connection is gone
                return True
            raise
        return True

    def retry(self) -> None:
        """Push backlogs out as far as the queues allow."""
        for key in list(self.backlog):
            queued = self.backlog[key]
            while queued and self._try_send(key, queued[0]):
                size = _size(queued.popleft())
                self.backlog_bytes -= size
                self.link_backlog[key] -= size
            if not queued:
                del self.backlog[key]
                del self.link_backlog[key]

    def close(self) -> None:
        for sock in self.dealers.values():
            sock.close()
        self.router.disable_monitor()
        self.monitor.close(linger=0)
        self.router.close()
        if self.zap is not None:
            self.zap.close()


def _size(parts: list[Any]) -> int:
    return sum(len(p) for p in parts)
