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


class Reader:
    """Non-blocking reads into one reused buffer.

    ``os.read(fd, n)`` allocates ``n`` bytes on every call, which for the
    large reads that keep throughput up costs more than the read itself.
    """

    def __init__(self, fd: int, size: int) -> None:
        self.fd = fd
        self._buf = bytearray(size)
        self._view = memoryview(self._buf)

    def read(self) -> bytes | None:
        """Bytes available now; ``b""`` at end of file; ``None`` if none yet."""
        try:
            n = os.readv(self.fd, [self._buf])
        except BlockingIOError:
            return None
        return bytes(self._view[:n])


def write_all(fd: int, chunks: Sequence[bytes | memoryview]) -> None:
    """Write every chunk with as few system calls as the pipe allows.

    The pipe to the BEAM is blocking: when the BEAM reads slowly we wait,
    which is the back-pressure we want (the port owner never blocks).
    """
    pending = [memoryview(c) for c in chunks if len(c)]
    while pending:
        batch = pending[:_IOV_MAX]
        written = os.writev(fd, batch)
        # drop whole chunks written, then cut into the first partial one
        i = 0
        while i < len(batch) and written >= len(batch[i]):
            written -= len(batch[i])
            i += 1
        del pending[:i]
        if written:
            pending[0] = pending[0][written:]
