"""A TCP relay that drops whole ZeroMQ messages carrying a marker: a fault
injected in the middle of a link, for tests of losses past repair.

It reads ZMTP 3 as ZeroMQ writes it on a plaintext link (the 64-byte
greeting each way, then frames: a flags byte, MORE 0x01, LONG 0x02,
COMMAND 0x04, and a 1- or 8-byte size), passes commands (READY,
heartbeats) and every message on, and drops, in both directions, each
message one of whose parts holds the marker: every copy of it, so no
resend repairs it. It cannot see into a link with node keys (CurveZMQ).

    python -m pydist_tools.cluster.zmtp_filter --to 127.0.0.1:9200 --drop 44524f50

prints the port it listens on (loopback), and to stderr one line per
message dropped; stopped by its pid (:class:`ZmtpFilter`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import sys
from pathlib import Path
from types import TracebackType

from pydist_tools.cluster import stop_proc

GREETING = 64
_MORE, _LONG, _COMMAND = 0x01, 0x02, 0x04


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                marker: bytes, way: str) -> None:
    # the greeting as it comes: ZeroMQ sends its first bytes and waits for
    # the other end's before it sends the rest
    left = GREETING
    while left:
        chunk = await reader.read(left)
        if not chunk:
            raise EOFError
        writer.write(chunk)
        await writer.drain()
        left -= len(chunk)
    parts: list[bytes] = []
    while True:
        flags = (await reader.readexactly(1))[0]
        size_bytes = await reader.readexactly(8 if flags & _LONG else 1)
        body = await reader.readexactly(int.from_bytes(size_bytes, "big"))
        frame = bytes((flags,)) + size_bytes + body
        if flags & _COMMAND:
            writer.write(frame)
        else:
            parts.append(frame)
            if not flags & _MORE:
                if any(marker in p for p in parts):
                    print(f"zmtp_filter: dropped {way} {sum(map(len, parts))} bytes",
                          file=sys.stderr, flush=True)
                else:
                    writer.write(b"".join(parts))
                parts = []
        await writer.drain()


async def _serve(to: tuple[str, int], marker: bytes) -> None:
    async def accepted(c_reader: asyncio.StreamReader, c_writer: asyncio.StreamWriter) -> None:
        try:
            s_reader, s_writer = await asyncio.open_connection(*to)
        except OSError:
            c_writer.close()
            return
        tasks = [asyncio.create_task(_pipe(c_reader, s_writer, marker, "in")),
                 asyncio.create_task(_pipe(s_reader, c_writer, marker, "out"))]
        with contextlib.suppress(Exception):
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            task.cancel()
        for w in (c_writer, s_writer):
            w.close()

    server = await asyncio.start_server(accepted, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--to", required=True, help="HOST:PORT of the far end")
    parser.add_argument("--drop", required=True, help="the marker, in hex")
    args = parser.parse_args()
    host, port = args.to.rsplit(":", 1)
    asyncio.run(_serve((host, int(port)), bytes.fromhex(args.drop)))


class ZmtpFilter:
    """The filter as a child process, stopped by its pid on exit."""

    def __init__(self, to_port: int, marker: bytes) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pydist_tools.cluster.zmtp_filter",
             "--to", f"127.0.0.1:{to_port}", "--drop", marker.hex()],
            stdout=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
        assert self.proc.stdout is not None
        self.port = int(self.proc.stdout.readline())

    def __enter__(self) -> ZmtpFilter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        stop_proc(self.proc)


if __name__ == "__main__":
    main()
