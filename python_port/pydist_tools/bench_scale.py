"""Benchmark: N real nodes on this machine, py_dist in a sparse topology
(a ring with a chord from every third node: at most four neighbours each)
against stock ``inet_tcp_dist`` (a full mesh) in the same run.

Per carrier: the time until every node is connected to every other after
one node pinged them all, the time until a ``global`` name and a ``pg``
group with a member on every node are seen from every node, TCP sockets
and memory per node (the BEAM and, for py_dist, its port program), and the
CPU the idle cluster burns. Not a test: the figures of one run on this
shared machine are what to compare.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from pydist_tools.cluster import HOST, Cluster, ErlNode

_TICKS = os.sysconf("SC_CLK_TCK")


def neighbours(i: int, size: int) -> list[int]:
    """Whom node i dials: the next round the ring, and from every third node
    a chord across the ring."""
    out = [(i + 1) % size]
    if i % 3 == 0 and size > 6:
        out.append((i + size // 2) % size)
    return out


@dataclass
class Figures:
    mesh_s: float
    global_pg_s: float
    sockets: float
    memory_mb: float
    idle_cpu: float  # share of one core, the whole cluster


def _pids(node: ErlNode) -> list[int]:
    return [p for p in (node.pid, node.port_pid) if p is not None]


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime + stime


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def tcp_sockets(pid: int) -> int:
    """TCP sockets the process holds, from /proc: its socket inodes that
    /proc/net/tcp lists (listening or connected)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    tcp = set()
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            tcp.add(line.split()[9])
    return len(inodes & tcp)


def _progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def measure(cluster: Cluster, size: int, proto: str, idle_seconds: float = 20.0) -> Figures:
    tag = proto.replace("_", "")
    nodes: list[ErlNode] = []
    for i in range(size):
        args: list[str] = []
        if proto == "py":
            seeds = ", ".join(f"'{tag}{j}@{HOST}'" for j in neighbours(i, size))
            args = ["-py_dist", "neighbours", f"[{seeds}]"]
        nodes.append(cluster.start(f"{tag}{i}", *args, proto=proto))
    _progress(f"{proto}: {size} nodes started")
    names = [n.node for n in nodes]
    start = time.monotonic()
    # as a user would: a ping that fails while the cluster forms is retried
    nodes[0].eval(f"""
        Ping = fun P(N, 0) -> {{N, net_adm:ping(N)}};
                   P(N, T) -> case net_adm:ping(N) of
                                  pong -> ok;
                                  pang -> timer:sleep(500), P(N, T - 1)
                              end
               end,
        [ok = Ping(N, 240) || N <- {names[1:]!r}], ok.""".replace('"', "'"), timeout=900)
    for node in nodes:
        others = [n for n in names if n != node.node]
        assert node.eval(f"pd_agent:wait_for_nodes({others!r}, 600000).".replace('"', "'"),
                         timeout=660) == "ok"
    mesh = time.monotonic() - start
    _progress(f"{proto}: full mesh after {mesh:.1f} s")
    start = time.monotonic()
    nodes[size // 2].eval("yes = global:register_name(pd_scale, spawn(fun() -> "
                          "receive stop -> ok end end)).")
    for node in nodes:
        node.eval("pg:start(pg), ok = pg:join(pd_scale_group, spawn(fun() -> "
                  "receive stop -> ok end end)).")
    for node in nodes:
        found = node.eval(f"""
            Wait = fun W(0) -> timeout;
                       W(N) -> case {{global:whereis_name(pd_scale),
                                      length(pg:get_members(pd_scale_group))}} of
                                   {{P, {size}}} when is_pid(P) -> ok;
                                   _ -> timer:sleep(20), W(N - 1)
                               end
                   end,
            Wait(30000).""", timeout=660)
        assert found == "ok", node.node
    seen = time.monotonic() - start
    _progress(f"{proto}: global name and pg group seen everywhere after {seen:.1f} s")
    time.sleep(2.0)
    pids = [p for n in nodes for p in _pids(n)]
    before = sum(_cpu_seconds(p) for p in pids)
    time.sleep(idle_seconds)
    idle = (sum(_cpu_seconds(p) for p in pids) - before) / idle_seconds
    sockets = statistics.median(sum(tcp_sockets(p) for p in _pids(n)) for n in nodes)
    memory = statistics.median(sum(_rss_mb(p) for p in _pids(n)) for n in nodes)
    _progress(f"{proto}: idle CPU {idle:.0%} of a core")
    for node in nodes:
        node.stop()
    return Figures(mesh, seen, sockets, memory, idle)


def run(size: int, idle_seconds: float = 20.0) -> dict[str, Figures]:
    results = {}
    for proto in ("inet_tcp", "py"):
        with Cluster() as cluster:
            results[proto] = measure(cluster, size, proto, idle_seconds)
    return results


def table(size: int, results: dict[str, Figures]) -> str:
    stock, ours = results["inet_tcp"], results["py"]
    rows = [("every node connected to every other, after one pinged all", "s",
             stock.mesh_s, ours.mesh_s, False),
            ("a global name and a pg group seen from every node", "s",
             stock.global_pg_s, ours.global_pg_s, False),
            ("TCP sockets per node (median; py_dist: BEAM + port program)", "",
             stock.sockets, ours.sockets, False),
            ("memory per node (median RSS)", "MB", stock.memory_mb, ours.memory_mb, False),
            ("CPU of the idle cluster", "% of a core", 100 * stock.idle_cpu,
             100 * ours.idle_cpu, False)]
    lines = [f"N = {size} | unit | inet_tcp | py_dist | py vs inet_tcp |",
             "|---|---|---:|---:|---:|"]
    for label, unit, a, b, higher_better in rows:
        ratio = (b / a if higher_better else a / b) if a and b else float("nan")
        lines.append(f"| {label} | {unit} | {a:,.1f} | {b:,.1f} | {ratio:.2f}x |")
    return "\n".join(lines)


if __name__ == "__main__":
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    print(table(count, run(count)))
