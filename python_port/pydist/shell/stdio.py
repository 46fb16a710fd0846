"""The stdio pipe to the BEAM: large reads, gathered writes, bigger pipes."""

from __future__ import annotations

import fcntl
import logging
import os
from collections.abc import Sequence

log = logging.getLogger("pydist.stdio")

F_SETPIPE_SZ = 1031  # from linux/fcntl.h; not exported by Python's fcntl on 3.11
_IOV_MAX = 1024


def enlarge_pipe(fd: int, size: int) -> None:
    """A bigger pipe means fewer wake-ups per megabyte; not fatal if refused."""
    if size <= 0:
        return
    try:
        fcntl.fcntl(fd, F_SETPIPE_SZ, size)
    except OSError as exc:
        log.debug("F_SETPIPE_SZ(%d) on fd %d refused: %s", size, fd, exc)


def set_nonblocking(fd: int) -> None:
    os.set_blocking(fd, False)


def read_into(fd: int, buffer: memoryview) -> int | None:
    """Read what is available into ``buffer``: the count, 0 at end of file,
    ``None`` if nothing is there yet."""
    try:
        return os.readv(fd, [buffer])
    except BlockingIOError:
        return None


class Writer:
    """Non-blocking, gathered writes to the BEAM, with a bounded backlog.

    The event loop must never block on the pipe: a BEAM that reads slowly
    for a moment would otherwise stop our heartbeats, and neighbours would
    take this node for dead. What the pipe does not take waits here; the
    runtime stops reading from links while more than its bound waits.
    """

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._pending: list[memoryview] = []
        self.pending_bytes = 0

    def write(self, chunks: Sequence[bytes | memoryview]) -> None:
        for chunk in chunks:
            if len(chunk):
                view = memoryview(chunk)
                self._pending.append(view)
                self.pending_bytes += len(view)
        self.flush()

    def flush(self) -> None:
        """Write as much as the pipe takes now."""
        pending = self._pending
        while pending:
            batch = pending[:_IOV_MAX]
            try:
                written = os.writev(self.fd, batch)
            except BlockingIOError:
                return
            self.pending_bytes -= written
            # drop whole chunks written, then cut into the first partial one
            i = 0
            while i < len(batch) and written >= len(batch[i]):
                written -= len(batch[i])
                i += 1
            del pending[:i]
            if written:
                pending[0] = pending[0][written:]
                return  # the pipe is full

    def drain(self) -> None:
        """Block until everything is written (only at shutdown)."""
        os.set_blocking(self.fd, True)
        self.flush()
