"""Benchmark: py_dist against stock over an impaired line (edge networks).

For each loss rate and delay of the grid, a fresh line of namespaces
(:mod:`pydist_tools.cluster.impaired_line`: two hops, each losing that
share of its packets both ways and delayed that long each way, jitter a
tenth of it), with py_dist a - b - c (b forwards) beside stock
``inet_tcp_dist`` a and c connected directly over the same two hops:

- throughput a -> c: one process sending 64 KiB binaries for ``seconds``
  (from a cold connection: both carriers ramp up in it), MB/s;
- round trip a -> c -> a of a small message, median of ``PINGS``.

Then, on a clean line, the time to notice a silently dead link: hop 2's
cable pulled (interface down, no FIN), until a sees nodedown for c,
py_dist with its defaults against stock with the default
``net_ticktime`` (60 s: it takes 45 to 75 s).

Not a test: run it as root (namespaces), on an idle machine if the
figures matter. The relays are Python: at 1 ms they bound both carriers'
throughput alike.
"""

from __future__ import annotations

import statistics
import sys
import time
from dataclasses import dataclass

from pydist_tools.cluster import Cluster, ErlNode, impair, netns
from pydist_tools.cluster.impaired_line import ImpairedLine

LOSSES = (0.0, 0.01, 0.05)
DELAYS_MS = (1, 50, 200)
PINGS = 11


@dataclass
class Row:
    loss: float
    delay_ms: int
    py_mbs: float
    stock_mbs: float
    py_rtt_ms: float
    stock_rtt_ms: float
    #: py_dist a's resend timeouts and the budget it ended with
    resend_timeouts: int
    budget: int


def throughput(a: ErlNode, c: ErlNode, seconds: float) -> float:
    """MB/s of 64 KiB messages a -> c for ``seconds``."""
    _, nbytes, micros = a.eval(
        f"Sink = rpc:call('{c.node}', pd_agent, sink, []), "
        f"pd_agent:throughput(Sink, 65536, 1, {int(seconds * 1000)}).",
        timeout=seconds + 180)
    return float(nbytes / micros)  # bytes per microsecond: MB/s


def channel_budget(a: ErlNode, c: ErlNode) -> tuple[int, int]:
    """The in-flight budget of a's connection to c and the least round
    trip it measured (us): (0, -1) when there is no connection."""
    found = a.eval(
        f"[{{B, R}} || #{{peer := P, inflight_budget := B, min_rtt_us := R}} <- "
        f"maps:get(channels, maps:get(port, py_dist:info())), P =:= <<\"{c.node}\">>].")
    return found[0] if found else (0, -1)


def _rtt_ms(a: ErlNode, c: ErlNode) -> float:
    rtts = a.eval(f"pd_agent:rtt('{c.node}', {PINGS}).", timeout=PINGS * 10 + 60)
    return float(statistics.median(rtts)) / 1000


def point(loss: float, delay_ms: int, seconds: float, py_args: tuple[str, ...] = ()) -> Row:
    with ImpairedLine(loss, delay_ms, delay_ms / 10, seed=7) as ln, Cluster() as cl:
        pa, _, pc = ln.start_py(cl, *py_args)
        sa, sc = ln.start_stock(cl)
        for x, y in ((pa, pc), (sa, sc)):
            if x.eval(f"net_adm:ping('{y.node}').") != "pong":
                raise RuntimeError(f"{x.node} cannot reach {y.node}")
        py_mbs = throughput(pa, pc, seconds)
        stock_mbs = throughput(sa, sc, seconds)
        stats = pa.eval("maps:get(stats, maps:get(port, py_dist:info())).")
        return Row(loss, delay_ms, py_mbs, stock_mbs, _rtt_ms(pa, pc), _rtt_ms(sa, sc),
                   stats.get(b"resend_timeouts", 0), channel_budget(pa, pc)[0])


def detection() -> tuple[float, float]:
    """Seconds from pulling hop 2's cable to a's nodedown for c: py_dist, stock."""
    with ImpairedLine() as ln, Cluster() as cl:
        pa, _, pc = ln.start_py(cl)
        sa, sc = ln.start_stock(cl)
        watch = []
        for x, y in ((pa, pc), (sa, sc)):
            assert x.eval(f"net_adm:ping('{y.node}').") == "pong"
            x.eval(f"persistent_term:put(pd_down, pd_agent:collect_nodedown('{y.node}')).")
            watch.append(x)
        cut = time.time()
        ln.net.set_link(2, False)
        took = []
        for x in watch:
            got = x.eval("persistent_term:get(pd_down) ! {get, self()}, "
                         "receive {nodedown, R} -> R after 120000 -> timeout end.", timeout=150)
            took.append(float("nan") if got == "timeout" else got[0] / 1e6 - cut)
        return took[0], took[1]


def run(seconds: float, losses: tuple[float, ...] = LOSSES,
        delays: tuple[int, ...] = DELAYS_MS) -> list[Row]:
    reason = netns.unavailable() or impair.unavailable()
    if reason is not None:
        raise SystemExit(f"--part edge needs network namespaces: {reason}")
    netns.reap_stale()
    rows = []
    for delay in delays:
        for loss in losses:
            row = point(loss, delay, seconds)
            print(f"  loss {loss:.0%}, {delay} ms: {row}", file=sys.stderr, flush=True)
            rows.append(row)
    return rows


def table(rows: list[Row], seconds: float) -> str:
    lines = [
        f"a -> c over two hops, each with the loss (both ways) and the delay (each way, "
        f"jitter a tenth of it); py_dist a-b-c, stock a-c direct over the same hops; "
        f"{seconds:g} s of 64 KiB messages from a cold connection; round trip: median of "
        f"{PINGS}",
        "",
        "| loss | delay per hop | py_dist MB/s | stock MB/s | py/stock | py_dist round trip "
        "| stock round trip | py/stock | py_dist resend timeouts | in-flight budget at the end |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.loss:.0%} | {r.delay_ms} ms | {r.py_mbs:.1f} | {r.stock_mbs:.1f} | "
            f"{r.py_mbs / r.stock_mbs:.2f} | {r.py_rtt_ms:.1f} ms | {r.stock_rtt_ms:.1f} ms | "
            f"{r.py_rtt_ms / r.stock_rtt_ms:.2f} | {r.resend_timeouts} | "
            f"{r.budget / 2**20:.1f} MiB |")
    return "\n".join(lines)


def detection_table(py: float, stock: float) -> str:
    return "\n".join([
        "",
        "a silently dead link (hop 2's interface down, no FIN), until a sees nodedown for c:",
        "",
        "| py_dist (defaults) | stock (net_ticktime 60 s) | stock / py_dist |",
        "|---:|---:|---:|",
        f"| {py:.2f} s | {stock:.1f} s | {stock / py:.0f}x |",
    ])


if __name__ == "__main__":  # a quick look: python -m pydist_tools.bench_edge [seconds]
    secs = float(sys.argv[1]) if len(sys.argv) > 1 else 8.0
    print(table(run(secs), secs))
    print(detection_table(*detection()))
