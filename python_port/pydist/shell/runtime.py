"""The event loop of the port program: stdin, stdout, ZeroMQ and the clock.

All protocol decisions are the core's (:class:`pydist.core.node.Node`);
this module only moves bytes between the core and the outside world and
tells the core the time.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import time
from typing import Any

import zmq
from zmq.utils.monitor import recv_monitor_message

from pydist.core.channels import LinkKey
from pydist.core.config import Config
from pydist.core.etf import Atom
from pydist.core.node import Node
from pydist.core.output import Dial, Forget, HangUp
from pydist.core.port_codec import PortDecoder, PortError, encode_ctrl
from pydist.core.trust import TrustError
from pydist.shell import accepted, curve, stdio
from pydist.shell.links import Links
from pydist.shell.transit import TransitGate

log = logging.getLogger("pydist.runtime")

READ_SIZE = 1024 * 1024
RECV_BUDGET = 256  # messages per socket per turn, so no link starves the rest
#: bytes waiting for the BEAM to read above which links are not read
PORT_BACKLOG_MAX = 2 * 1024 * 1024
#: bytes waiting for congested links above which the BEAM is not read: a
#: safety net, since pausing a congested link's connections bounds it first
LINK_BACKLOG_MAX = 64 * 1024 * 1024
#: frames in transit waiting for one congested link: past the first bound
#: the link they came from is not read for a while, past the second they
#: are dropped (see :mod:`pydist.shell.transit`)
TRANSIT_SOFT = 4 * 1024 * 1024
TRANSIT_BACKLOG_MAX = 16 * 1024 * 1024
TRANSIT_PATIENCE = 1.0  # seconds


class Runtime:
    def __init__(self, config: Config, stdin_fd: int = 0, stdout_fd: int = 1) -> None:
        self.config = config
        self.stdin_fd = stdin_fd
        self.stdout_fd = stdout_fd
        self.ctx: zmq.Context[Any] = zmq.Context()
        trust = curve.load(config.node_key, config.authorized_keys) if config.node_key else None
        self.links = Links(self.ctx, config.listen_address, config.listen_port,
                           config.link_hwm, config.max_frame, trust)
        self.watch = accepted.AcceptWatch()
        self.gate = TransitGate(self.links, TRANSIT_SOFT, TRANSIT_BACKLOG_MAX, TRANSIT_PATIENCE)
        self.node = Node(config, time.monotonic(), trust=trust)
        self.decoder = PortDecoder(config.max_frame + 1024, scratch=READ_SIZE)
        self.poller = zmq.Poller()
        self.sockets: dict[Any, LinkKey] = {}
        self.watched_out: set[int] = set()
        self.congested: set[LinkKey] = set()
        self.writer = stdio.Writer(stdout_fd)
        self.reading_stdin = False
        self.reading_links = True
        self.stopping = False

    def run(self) -> int:
        for fd in (self.stdin_fd, self.stdout_fd):
            stdio.enlarge_pipe(fd, self.config.pipe_size)
        stdio.set_nonblocking(self.stdin_fd)
        stdio.set_nonblocking(self.stdout_fd)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the BEAM owns ^C
        signal.signal(signal.SIGTERM, self._on_sigterm)
        self.poller.register(self.links.router, zmq.POLLIN)
        self.poller.register(self.links.monitor, zmq.POLLIN)
        if self.links.zap is not None:
            self.poller.register(self.links.zap, zmq.POLLIN)
        self._watch_stdin(True)
        self.writer.write([encode_ctrl((Atom("ready"), self.links.port))])
        log.info("listening on port %d", self.links.port)
        try:
            while not self.stopping:
                self._turn()
        except BrokenPipeError:
            pass
        finally:
            self._shutdown()
        return 0

    def _on_sigterm(self, _signum: int, _frame: Any) -> None:
        self.stopping = True

    def _watch_stdin(self, on: bool) -> None:
        if on and not self.reading_stdin:
            self.poller.register(self.stdin_fd, zmq.POLLIN)
        elif not on and self.reading_stdin:
            self.poller.unregister(self.stdin_fd)
        self.reading_stdin = on

    def _turn(self) -> None:
        node = self.node
        now = time.monotonic()
        # Rounded up: a deadline less than a millisecond away must not
        # become poll(0), or the loop spins until it passes.
        due = min(node.deadline, self.watch.next_check)
        timeout = math.ceil(max(0.0, due - now) * 1000)
        if self.links.backlog or self.gate.paused:
            timeout = min(timeout, 1)
        events = self.poller.poll(timeout)
        now = time.monotonic()
        for sock, _ in events:
            if sock == self.stdout_fd:
                self.writer.flush()
            elif sock == self.stdin_fd:
                self._read_stdin(now)
            elif sock is self.links.router:
                self._receive(sock, None, now)
            elif sock is self.links.zap:
                self._authenticate()
            elif sock is self.links.monitor:
                self._connections(now)
            else:
                self._receive(sock, self.sockets.get(sock), now)
        try:
            node.timer(now)
        except Exception:  # a bug: log it, keep serving; the next turn retries
            log.exception("failed in the timer")
        self._shut_unadmitted(now)
        self._flush()

    def _connections(self, now: float) -> None:
        """What the listener's monitor says: connections accepted and gone."""
        watch, monitor = self.watch, self.links.monitor
        while int(monitor.get(zmq.EVENTS)) & zmq.POLLIN:
            event = recv_monitor_message(monitor, zmq.NOBLOCK)
            fd = event["value"]
            if event["event"] == zmq.EVENT_ACCEPTED:
                ends = accepted.ident(fd)
                if ends is not None:
                    watch.accepted(fd, ends, now)
            else:
                watch.disconnected(fd)

    def _shut_unadmitted(self, now: float) -> None:
        links = self.node.links

        def admitted(key: LinkKey) -> bool:
            link = links.get(key)
            return link is not None and link.up

        for fd, ends in self.watch.expired(now, admitted):
            if accepted.shut_down(fd, ends):
                self.node.stats["connections_shut_unadmitted"] += 1
                log.info("closed a connection from %s:%s: no admitted link on it", *ends[0][:2])

    def _authenticate(self) -> None:
        links = self.links
        assert links.zap is not None and links.trust is not None
        curve.serve(links.zap, links.trust.names_by_curve)

    def _read_stdin(self, now: float) -> None:
        count = stdio.read_into(self.stdin_fd, self.decoder.buffer())
        if count is None:
            return
        if not count:
            self.stopping = True  # the BEAM is gone
            return
        try:
            packets = self.decoder.commit(count)
        except PortError as exc:
            # Our own BEAM wrote garbage: nothing after it can be trusted.
            log.critical("port stream from the BEAM is corrupt: %s", exc)
            self.stopping = True
            return
        for packet in packets:
            try:
                self.node.port_packet(packet, now)
            except Exception:  # a bug: keep every other connection going
                log.exception("failed on a packet from the BEAM; dropped it")

    def _receive(self, sock: Any, key: LinkKey | None, now: float) -> None:
        node = self.node
        for _ in range(RECV_BUDGET):
            # EVENTS instead of waiting for zmq.Again: an exception per turn
            # costs more than the question.
            if not sock.get(zmq.EVENTS) & zmq.POLLIN:
                return
            parts = sock.recv_multipart(zmq.NOBLOCK, copy=False)
            link = parts[0].bytes if key is None else key
            if key is None and self.links.trust is not None and link not in node.authenticated:
                # the node name the peer's key is registered for (ZAP user id)
                node.link_authenticated(link, parts[1].get("User-Id").encode())
            try:
                node.link_message(link, parts[1:] if key is None else parts, now)
            except Exception as exc:  # a bug: cost one link, not the node
                log.exception("failed on a message from a link")
                node.link_failed(link, f"internal error: {exc!r}", now)
            if key is None and not self.watch.knows(link) and link in node.links:
                self._carries(link, parts[1].get(zmq.SRCFD), now)
            forwarded = node.forwarded()
            if forwarded is not None:
                out, size = forwarded
                if not self.gate.admit(out, size):
                    self.gate.pause(sock, out, now)
                    self.poller.modify(sock, 0)
                    node.hold_rx(key, True)
                    return

    def _carries(self, link: LinkKey, fd: int, now: float) -> None:
        """A link the core took up came in on the connection ``fd``."""
        self.watch.carries(link, fd, accepted.ident(fd) if fd >= 0 else None, now)

    def _flush(self) -> None:
        """Carry out what the core asked for, then watch what is worth
        waiting for: stdout while output is pending, links while the BEAM
        keeps up, stdin while the links' backlog is bounded."""
        self._transmit()
        links = self.links
        if links.backlog:
            links.retry()
        if self.gate.busy:
            for sock in self.gate.resumable(time.monotonic()):
                self.poller.modify(sock, zmq.POLLIN if self.reading_links else 0)
                self.node.hold_rx(self.sockets.get(sock), False)
        self._report_congestion()
        self._watch_stdin(links.backlog_bytes <= LINK_BACKLOG_MAX)
        self._watch_stdout()

    def _transmit(self) -> None:
        """Everything the core asked for since the last time, carried out:
        links dialled before anything is sent on them, messages before
        frames in transit (which may be dropped when their link's backlog
        is full), links hung up after their last words (a BYE) are out, and
        then the bytes for the BEAM. The only place the shell takes the
        core's output."""
        node, links = self.node, self.links
        out = node.take_output()
        hangups: list[HangUp | Forget] = []
        for command in out.commands:
            match command:
                case Dial(dialled, endpoint):
                    link = node.links.get(dialled)
                    sock = links.dial(dialled, endpoint, link.peer if link is not None else None)
                    self.sockets[sock] = dialled
                    self.poller.register(sock, zmq.POLLIN if self.reading_links else 0)
                case HangUp() | Forget():
                    hangups.append(command)
        for key, parts in out.links:
            links.send(key, parts)
        for key, parts in out.transit:
            if not links.send(key, parts, TRANSIT_BACKLOG_MAX):
                node.transit_dropped(key)
        for command in hangups:
            match command:
                case Forget(key):
                    links.forget(key)
                    self.watch.forgot(key, time.monotonic())
                case HangUp(dialled):
                    old = links.hangup(dialled)
                    if old is not None:
                        self.poller.register(old, 0)  # unregisters, if it was
                        del self.sockets[old]
                        self.gate.paused.pop(old, None)
        if out.port:
            self.writer.write(out.port)

    def _report_congestion(self) -> None:
        if not self.links.backlog and not self.congested:
            return  # the usual case, on every turn
        congested = set(self.links.backlog)
        if congested == self.congested:
            return
        node, now = self.node, time.monotonic()
        for key in congested - self.congested:
            node.congestion(key, True, now)
        for key in self.congested - congested:
            node.congestion(key, False, now)  # sends what waited for the link
        self.congested = congested
        self._transmit()  # what waited for the link, and pauses for the BEAM

    def _watch_stdout(self) -> None:
        """Wait for the pipe to the BEAM while output is pending, and stop
        reading links while too much is (hysteresis: resume at half) or
        while the BEAM's port owner says it is behind."""
        pending = self.writer.pending_bytes
        stdout_watched = self.stdout_fd in self.watched_out
        if pending and not stdout_watched:
            self.poller.register(self.stdout_fd, zmq.POLLOUT)
            self.watched_out.add(self.stdout_fd)
        elif not pending and stdout_watched:
            self.poller.unregister(self.stdout_fd)
            self.watched_out.discard(self.stdout_fd)
        behind = self.node.beam_holds or (
            pending > PORT_BACKLOG_MAX // (1 if self.reading_links else 2))
        if self.reading_links == behind:
            self._watch_links(not behind)

    def _watch_links(self, on: bool) -> None:
        self.reading_links = on
        self.node.set_receiving(on)
        flags = zmq.POLLIN if on else 0
        for sock in (self.links.router, *self.sockets):
            self.poller.modify(sock, 0 if sock in self.gate.paused else flags)

    def _shutdown(self) -> None:
        """Say goodbye to every neighbour first (the usual reason to stop is
        a BEAM that is gone), then hand the BEAM what it may still read."""
        try:
            self.node.port_closed(time.monotonic())
            self._transmit()
            try:
                self.writer.drain()
            except OSError:
                pass  # the BEAM is gone: nobody to write to
        finally:
            self.links.close()
            self.ctx.term()


class RateLimit(logging.Filter):
    """At most ``burst`` records a second: a peer sending garbage in a loop
    must not turn into a disk-filling loop of log lines."""

    def __init__(self, burst: int = 20) -> None:
        super().__init__()
        self.burst = burst
        self.second = 0
        self.count = 0
        self.suppressed = 0

    def filter(self, record: logging.LogRecord) -> bool:
        second = int(record.created)
        if second != self.second:
            if self.suppressed:
                record.msg = f"({self.suppressed} log lines suppressed) {record.msg}"
            self.second, self.count, self.suppressed = second, 0, 0
        self.count += 1
        if self.count > self.burst:
            self.suppressed += 1
            return False
        return True


def run(config: Config) -> int:
    handler = logging.StreamHandler()  # stderr: stdout is the port pipe
    handler.setFormatter(logging.Formatter(
        f"pydist[{os.getpid()}] %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RateLimit())
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(getattr(logging, config.log_level.upper(), logging.WARNING))
    try:
        runtime = Runtime(config)
    except TrustError as exc:
        log.critical("cannot start: %s", exc)
        return 2
    return runtime.run()
