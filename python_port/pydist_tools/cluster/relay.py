"""A TCP relay that delays what it carries: delay and jitter for test links.

This machine's kernel has no ``netem``, so a link's delay is made in user
space: the relay listens, and for each connection it accepts it dials the
real far end and copies the bytes both ways, holding each chunk it reads
for a drawn time before writing it on. Each direction keeps its order (a
chunk is never written before the one read before it, so a draw shorter
than the last one's waits for it), as on a real path, where a TCP stream
sees jitter as uneven arrival, not as reordering.

Run inside the namespace between two nodes (started, and stopped by its
pid, with :class:`Relay`)::

    python -m pydist_tools.cluster.relay --listen 10.77.1.2:9200 \\
        --to 10.77.2.2:9200 --delay 100 --jitter 20 --seed 1

Delays are drawn uniformly from ``delay +- jitter`` milliseconds, per
chunk and direction, from a seeded generator. What one direction holds is
bounded (``--buffer`` bytes): past it the relay stops reading that side,
and TCP's own flow control pushes back on the sender. A connection the far
end refuses or does not answer (``--connect-timeout``) is closed at once,
as a router that cannot forward would; an end's FIN is passed on after
what came before it, and a reset or error closes both sides.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import subprocess
import sys
import time
from collections import deque
from types import TracebackType

from pydist_tools.cluster import stop_proc
from pydist_tools.cluster.netns import exec_prefix

CHUNK = 64 * 1024


class Direction:
    """One way of one connection: chunks read, each with the time it may go."""

    def __init__(self, delay: float, jitter: float, rng: random.Random, buffer: int) -> None:
        self.delay, self.jitter, self.rng, self.buffer = delay, jitter, rng, buffer
        self.queue: deque[tuple[float, bytes]] = deque()
        self.held = 0
        self.last_release = 0.0
        self.eof = False
        self.changed = asyncio.Event()  # something queued, taken, or the end

    def release_time(self, now: float) -> float:
        drawn = max(0.0, self.rng.uniform(self.delay - self.jitter, self.delay + self.jitter))
        # order kept: never before the chunk read before this one
        self.last_release = max(now + drawn, self.last_release)
        return self.last_release

    async def read(self, reader: asyncio.StreamReader) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                while self.held >= self.buffer:
                    self.changed.clear()
                    await self.changed.wait()
                data = await reader.read(CHUNK)
                if not data:
                    break
                self.queue.append((self.release_time(loop.time()), data))
                self.held += len(data)
                self.changed.set()
        finally:
            self.eof = True
            self.changed.set()

    async def write(self, writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while not self.queue:
                if self.eof:
                    if writer.can_write_eof():
                        writer.write_eof()  # the FIN, after what came before it
                    return
                self.changed.clear()
                await self.changed.wait()
            due, data = self.queue[0]
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            self.queue.popleft()
            self.held -= len(data)
            self.changed.set()
            writer.write(data)
            await writer.drain()


async def _serve(args: argparse.Namespace) -> None:
    rng = random.Random(args.seed)
    far_host, far_port = _address(args.to)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            far_reader, far_writer = await asyncio.wait_for(
                asyncio.open_connection(far_host, far_port), args.connect_timeout)
        except (OSError, TimeoutError):
            writer.close()
            return
        ways = [Direction(args.delay / 1000, args.jitter / 1000, rng, args.buffer)
                for _ in range(2)]
        tasks = [asyncio.create_task(c) for c in (
            ways[0].read(reader), ways[0].write(far_writer),
            ways[1].read(far_reader), ways[1].write(writer))]
        try:
            # both writers done (each side's FIN passed on), or an error
            writers = asyncio.gather(tasks[1], tasks[3])
            await writers
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            for task in tasks:
                task.cancel()
            for w in (writer, far_writer):
                w.close()

    host, port = _address(args.listen)
    server = await asyncio.start_server(handle, host, port, reuse_address=True)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--listen", required=True, help="HOST:PORT to accept on")
    parser.add_argument("--to", required=True, help="HOST:PORT to dial for each connection")
    parser.add_argument("--delay", type=float, default=0.0, help="milliseconds, each way")
    parser.add_argument("--jitter", type=float, default=0.0, help="+- milliseconds, uniform")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--buffer", type=int, default=16 * 1024 * 1024,
                        help="bytes one direction holds at most")
    parser.add_argument("--connect-timeout", type=float, default=2.0, help="seconds")
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args))


class Relay:
    """A relay process in namespace ``ns`` (None: here), stopped by its pid."""

    def __init__(self, ns: str | None, listen: str, to: str, delay_ms: float = 0.0,
                 jitter_ms: float = 0.0, seed: int = 1, buffer: int = 16 * 1024 * 1024,
                 log: str | None = None) -> None:
        prefix = exec_prefix(ns) if ns is not None else []
        self.listen, self.to = listen, to
        self._log = open(log, "a") if log else subprocess.DEVNULL
        # `ip netns exec` execs python: the pid is the relay's own
        self.proc = subprocess.Popen(
            [*prefix, sys.executable, "-m", "pydist_tools.cluster.relay", "--listen", listen,
             "--to", to, "--delay", str(delay_ms), "--jitter", str(jitter_ms),
             "--seed", str(seed), "--buffer", str(buffer)],
            stdout=subprocess.PIPE, stderr=self._log, start_new_session=True)
        self.pid = self.proc.pid
        assert self.proc.stdout is not None
        deadline = time.monotonic() + 20
        line = b""
        while time.monotonic() < deadline and self.proc.poll() is None:
            line = self.proc.stdout.readline()
            if line.strip() == b"ready":
                return
        self.stop()
        raise RuntimeError(f"relay {listen} -> {to} did not start ({line!r})")

    def stop(self) -> None:
        stop_proc(self.proc)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        if not isinstance(self._log, int):
            self._log.close()

    def __enter__(self) -> Relay:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


if __name__ == "__main__":
    main()
