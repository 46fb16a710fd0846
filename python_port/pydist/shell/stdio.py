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
