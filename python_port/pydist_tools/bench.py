"""Benchmark: py_dist against stock ``inet_tcp_dist`` in the same run.

Not a test: numbers from this shared, noisy 2-core machine vary between
runs; the ratios of one run are what to compare.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

import zmq

from pydist_tools.cluster import Cluster, ErlNode
from pydist_tools.measure import (
    Case,
    Measure,
    Rows,
    alternate,
    carrier_pairs,
    compare,
    quantile,
    rtt,
    throughput,
)


def _setup(src: ErlNode, dst: ErlNode, seconds: float) -> list[float]:
    times = src.eval(f"""
        [begin
             true = erlang:disconnect_node('{dst.node}'),
             timer:sleep(20),
             {{T, pong}} = timer:tc(net_adm, ping, ['{dst.node}']),
             T
         end || _ <- lists:seq(1, {max(5, int(seconds * 10))})].
    """, timeout=120)
    return [float(statistics.median(list(times)))]


_fresh = 0


def _first_connect(src: ErlNode, dst: ErlNode, seconds: float) -> list[float]:
    """A connection to a node never talked to: lookup, link and handshake."""
    global _fresh
    times = []
    for _ in range(3):
        _fresh += 1
        node = src.cluster.start(f"bench_new_{_fresh}_{src.proto.replace('_', '')}",
                                 proto=src.proto)
        node.eval("timer:sleep(200).")  # let both kinds of node finish booting alike
        micros, result = src.eval(f"timer:tc(net_adm, ping, ['{node.node}']).")
        assert result == "pong"
        times.append(float(micros))
        node.stop()
        src.cluster.nodes.remove(node)
    return [float(statistics.median(times))]


CASES: list[tuple[list[Case], Measure]] = [
    ([Case("100 B msgs, 1 sender", "msg/s", True)], throughput(100, 1, "msg")),
    ([Case("100 B msgs, 8 senders", "msg/s", True)], throughput(100, 8, "msg")),
    ([Case("1 MiB msgs", "MB/s", True)], throughput(1 << 20, 1, "byte")),
    ([Case("64 MiB msgs", "MB/s", True)], throughput(64 << 20, 1, "byte")),
    ([Case("round trip p50", "us", False), Case("round trip p99", "us", False)], rtt),
    ([Case("reconnect (disconnect, ping)", "us", False)], _setup),
    ([Case("first connection to a new node", "us", False)], _first_connect),
]


def run(seconds: float = 2.0, rounds: int = 3) -> Rows:
    """Each case, ``rounds`` times, alternating the carriers; medians."""
    with Cluster() as cluster:
        return alternate(CASES, carrier_pairs(cluster, "bench"), seconds, rounds)


def table(rows: Rows) -> str:
    return compare(rows, "inet_tcp", "py", ("inet_tcp", "py_dist", "py vs inet_tcp"))


#: a ZeroMQ echo in a process of its own: prints its port, answers each
#: message with itself
ECHO = """
import sys, zmq
sock = zmq.Context().socket(zmq.ROUTER)
port = sock.bind_to_random_port("tcp://127.0.0.1")
print(port, flush=True)
while True:
    sock.send_multipart(sock.recv_multipart())
"""


def bound_program(script: str, *args: str) -> tuple[subprocess.Popen[str], int]:
    """``python -c script args``, a program that binds a ZeroMQ socket on
    loopback and prints its port first: the process, and that port."""
    proc = subprocess.Popen([sys.executable, "-c", script, *args],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    return proc, int(proc.stdout.readline())


def zmq_floor(count: int = 5000) -> tuple[float, float]:
    """Round trip p50 and p99 (us) of 100-byte ZeroMQ messages between two
    Python processes on loopback, nothing else: the least a round trip
    through two port programs costs on this machine, before any BEAM, pipe,
    protocol or encryption."""
    echo, port = bound_program(ECHO)
    ctx = zmq.Context()
    try:
        sock = ctx.socket(zmq.DEALER)
        sock.connect(f"tcp://127.0.0.1:{port}")
        samples = []
        for _ in range(count):
            start = time.perf_counter()
            sock.send(b"x" * 100)
            sock.recv()
            samples.append((time.perf_counter() - start) * 1e6)
        return quantile(samples, 0.5), quantile(samples, 0.99)
    finally:
        ctx.destroy(linger=0)
        echo.kill()
        echo.wait()
