"""Benchmark: what one forwarding hop costs, against its floor.

A frame through a route wakes the port program of every node it crosses;
at scale (the 100-node mesh of ``--part scale``) that is most of the work.
Three measures in one run, each with K ping-pongs in flight (K = 1: every
frame is a wake-up of its own; K = 20: frames share wake-ups):

- py_dist: a - b - c (b forwards; a's processes ping an echo on c): round
  trips a second, and the CPU of b's port program per frame forwarded;
- the floor: the same shape with nothing but pyzmq: a DEALER, a ROUTER in
  and DEALER out in b, a ROUTER echoing in c, each in its own process;
- stock ``inet_tcp_dist``, a and c direct (it has no hop): round trips a
  second, for the ratio a user sees.

Not a test: the figures move with how idle the other core is.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from pydist_tools.bench import ECHO, bound_program
from pydist_tools.bench_scale import cpu_seconds
from pydist_tools.cluster import HOST, Cluster, ErlNode, wait_routes

#: b: forwards a's messages to c and c's back to a (one client: a)
_FORWARDER = """
import sys, zmq
ctx = zmq.Context()
front = ctx.socket(zmq.ROUTER); port = front.bind_to_random_port("tcp://127.0.0.1")
back = ctx.socket(zmq.DEALER); back.connect(f"tcp://127.0.0.1:{sys.argv[1]}")
print(port, flush=True)
poller = zmq.Poller(); poller.register(front, zmq.POLLIN); poller.register(back, zmq.POLLIN)
client = None
while True:
    for sock, _ in poller.poll():
        while sock.get(zmq.EVENTS) & zmq.POLLIN:
            parts = sock.recv_multipart(zmq.NOBLOCK)
            if sock is front:
                client = parts[0]; back.send_multipart(parts[1:])
            else:
                front.send_multipart([client, *parts])
"""


@dataclass
class Hop:
    inflight: int
    round_trips: float  # a second
    #: CPU microseconds of the middle process per frame it forwarded (None: no middle)
    middle_us: float | None


def floor(inflight: int, seconds: float) -> Hop:
    import zmq

    echo, echo_port = bound_program(ECHO)
    middle, port = bound_program(_FORWARDER, str(echo_port))
    ctx = zmq.Context()
    try:
        sock = ctx.socket(zmq.DEALER)
        sock.connect(f"tcp://127.0.0.1:{port}")
        for _ in range(inflight):
            sock.send(b"x" * 60)
        for _ in range(inflight * 50):  # warm up
            sock.recv()
            sock.send(b"x" * 60)
        count, cpu0, start = 0, cpu_seconds(middle.pid), time.monotonic()
        while time.monotonic() - start < seconds:
            sock.recv()
            sock.send(b"x" * 60)
            count += 1
        elapsed, cpu = time.monotonic() - start, cpu_seconds(middle.pid) - cpu0
        return Hop(inflight, count / elapsed, 1e6 * cpu / (2 * count))
    finally:
        ctx.destroy(linger=0)
        for proc in (middle, echo):
            proc.kill()
            proc.wait()


def _ping_pong(a: ErlNode, c: ErlNode, inflight: int, seconds: float) -> int:
    """Round trips done by ``inflight`` processes of a, each pinging an echo on c."""
    count: int = a.eval(f"""
        E = rpc:call('{c.node}', pd_agent, echo, []), Self = self(),
        End = erlang:monotonic_time(millisecond) + {int(seconds * 1000)},
        Loop = fun L(N) -> case erlang:monotonic_time(millisecond) < End of
                   true -> E ! {{self(), p}}, receive {{E, p}} -> L(N + 1) end;
                   false -> N
               end end,
        Ps = [spawn(fun() -> Self ! {{n, Loop(0)}} end) || _ <- lists:seq(1, {inflight})],
        lists:sum([receive {{n, X}} -> X end || _ <- Ps]).""", timeout=seconds + 60)
    return count


def carriers(inflights: list[int], seconds: float) -> tuple[list[Hop], list[Hop]]:
    """py_dist through b, and stock direct, for each number in flight."""
    routed, direct = [], []
    with Cluster() as cluster:
        c = cluster.start("hop_c")
        b = cluster.start("hop_b", "-py_dist", "neighbours", f"['hop_c@{HOST}']")
        a = cluster.start("hop_a", "-py_dist", "neighbours", f"['hop_b@{HOST}']")
        wait_routes(a, 2)
        assert b.port_pid is not None
        _ping_pong(a, c, 1, 0.5)  # the connection up, the path warm
        for k in inflights:
            cpu0, start = cpu_seconds(b.port_pid), time.monotonic()
            count = _ping_pong(a, c, k, seconds)
            elapsed, cpu = time.monotonic() - start, cpu_seconds(b.port_pid) - cpu0
            routed.append(Hop(k, count / elapsed, 1e6 * cpu / (2 * count)))
        sa, sc = (cluster.start(n, proto="inet_tcp") for n in ("hop_sa", "hop_sc"))
        _ping_pong(sa, sc, 1, 0.5)
        for k in inflights:
            start = time.monotonic()
            count = _ping_pong(sa, sc, k, seconds)
            direct.append(Hop(k, count / (time.monotonic() - start), None))
    return routed, direct


def run(seconds: float = 5.0, inflights: tuple[int, ...] = (1, 20)) -> str:
    routed, direct = carriers(list(inflights), seconds)
    floors = [floor(k, seconds) for k in inflights]
    lines = ["| in flight | stock a-c direct, round trips/s | py_dist a-b-c | pyzmq a-b-c (floor) "
             "| b's CPU per frame, py_dist | floor | py_dist / floor |",
             "|---:|---:|---:|---:|---:|---:|---:|"]
    for s, p, f in zip(direct, routed, floors, strict=True):
        assert p.middle_us is not None and f.middle_us is not None
        lines.append(f"| {p.inflight} | {s.round_trips:,.0f} | {p.round_trips:,.0f} | "
                     f"{f.round_trips:,.0f} | {p.middle_us:.0f} us | {f.middle_us:.0f} us | "
                     f"{p.middle_us / f.middle_us:.1f}x |")
    return "\n".join(lines)
