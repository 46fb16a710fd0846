"""Benchmark: N real nodes on this machine, py_dist in a sparse topology
(a random 4-regular graph drawn from a fixed seed: four neighbours each)
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
import random
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from pydist_tools.cluster import HOST, Cluster, ErlNode, NodeError
from pydist_tools.simnet import regular

_TICKS = os.sysconf("SC_CLK_TCK")
#: how long each stage may take before it counts as not reached
WAIT_S = 600


def dialled(size: int, degree: int = 4, seed: int = 1) -> dict[int, list[int]]:
    """Whom each node dials: a random ``degree``-regular graph (the
    simulator's, from a fixed seed), each link dialled by its lower end.
    Random regular graphs have short paths (about 3.5 links on average at
    100 nodes, 6 at most), where a ring with chords of one length has 13
    and 25: every hop is a port program that wakes for the frame, so the
    path length multiplies what the mesh costs."""
    out: dict[int, list[int]] = {i: [] for i in range(size)}
    for u, v in regular(size, degree, random.Random(f"{seed}-bench")):
        out[u].append(v)
    return out


@dataclass
class Figures:
    #: None: not reached within WAIT_S
    mesh_s: float | None
    global_pg_s: float | None
    sockets: float
    memory_mb: float
    idle_cpu: float  # share of one core, the whole cluster
    #: py_dist: the port programs' counters summed over the cluster, at
    #: the end, and their growth per node per second while idle
    counters: dict[str, int] = field(default_factory=dict)
    idle_rates: dict[str, float] = field(default_factory=dict)


def _pids(node: ErlNode) -> list[int]:
    return [p for p in (node.pid, node.port_pid) if p is not None]


def cpu_seconds(pid: int) -> float:
    """CPU seconds (user and system) process ``pid`` has used."""
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


def _counters(nodes: list[ErlNode]) -> Counter[str]:
    """The port programs' counters, summed over ``nodes``."""
    total: Counter[str] = Counter()
    for node in nodes:
        pairs = node.eval("maps:to_list(maps:get(stats, maps:get(port, py_dist:info()))).")
        total.update({bytes(k).decode(): v for k, v in pairs})
    return total


def _check_ports(nodes: list[ErlNode]) -> None:
    """A port program that restarted is a bug to see, not to hide: say so,
    with the end of its node's log, and measure the one running now."""
    for node in nodes:
        pid = node.eval("maps:get(os_pid, py_dist:info()).")
        if pid != node.port_pid:
            _progress(f"{node.node}: the port program restarted ({node.port_pid} -> {pid}); "
                      f"the end of its log:\n{node.log_text()[-3000:]}")
            node.port_pid = pid


def _seen(nodes: list[ErlNode], size: int, connect_all: bool) -> float | None:
    """Seconds until the global name (with connect_all) and the pg group
    are seen as :func:`measure` says; None if not within WAIT_S."""
    start = time.monotonic()
    if connect_all:
        nodes[size // 2].eval("yes = global:register_name(pd_scale, spawn(fun() -> "
                              "receive stop -> ok end end)).")
    for node in nodes:
        node.eval("pg:start(pg), ok = pg:join(pd_scale_group, spawn(fun() -> "
                  "receive stop -> ok end end)).")
    for i, node in enumerate(nodes):
        members = size if connect_all or i == 0 else 2
        name = "global:whereis_name(pd_scale)" if connect_all else "self()"
        left = max(1, int((WAIT_S - (time.monotonic() - start)) / 0.02))
        try:
            found = node.eval(f"""
                Wait = fun W(0) -> timeout;
                           W(N) -> case {{{name}, length(pg:get_members(pd_scale_group))}} of
                                       {{P, {members}}} when is_pid(P) -> ok;
                                       _ -> timer:sleep(20), W(N - 1)
                                   end
                       end,
                Wait({left}).""", timeout=WAIT_S + 60)
        except NodeError:  # global:whereis_name/1 waits while global is locked
            found = "timeout"
        if found != "ok":
            _progress(f"{node.node}: the global name or pg group not seen in {WAIT_S} s")
            return None
    seen = time.monotonic() - start
    what = "global name and pg group" if connect_all else "pg group"
    _progress(f"{what} seen everywhere after {seen:.1f} s")
    return seen


def measure(cluster: Cluster, size: int, proto: str, idle_seconds: float = 20.0,
            connect_all: bool = True) -> Figures:
    """With ``connect_all`` false, nodes connect only to whom they talk to:
    node 0 pings every node (the first figure), then every node joins the
    pg group; seen means node 0 sees a member on every node, and every
    other node sees the members of the nodes it is connected to (itself
    and node 0). ``global`` keeps names only among fully connected nodes
    (it needs connect_all), so there is no global name to wait for."""
    tag = proto.replace("_", "")
    nodes: list[ErlNode] = []
    dials = dialled(size)
    for i in range(size):
        args: list[str] = [] if connect_all else ["-kernel", "connect_all", "false"]
        if proto == "py":
            seeds = ", ".join(f"'{tag}{j}@{HOST}'" for j in dials[i])
            args += ["-py_dist", "neighbours", f"[{seeds}]"]
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
    formed = True
    if connect_all:
        for node in nodes:
            others = [n for n in names if n != node.node]
            left = max(1, int(1000 * (WAIT_S - (time.monotonic() - start))))
            formed = node.eval(f"pd_agent:wait_for_nodes({others!r}, {left}).".replace('"', "'"),
                               timeout=WAIT_S + 60) == "ok"
            if not formed:
                break
    mesh = time.monotonic() - start if formed else None
    _progress(f"{proto}: {'full mesh' if connect_all else 'node 0 reached every node'} "
              + (f"after {mesh:.1f} s" if mesh is not None else f"not reached in {WAIT_S} s"))
    seen = _seen(nodes, size, connect_all) if formed else None
    time.sleep(2.0)
    counted = _counters(nodes) if proto == "py" else Counter()
    if proto == "py":
        _check_ports(nodes)
    pids = [p for n in nodes for p in _pids(n)]
    before = sum(cpu_seconds(p) for p in pids)
    time.sleep(idle_seconds)
    idle = (sum(cpu_seconds(p) for p in pids) - before) / idle_seconds
    after = _counters(nodes) if proto == "py" else Counter()
    rates = {k: (after[k] - counted[k]) / idle_seconds / size for k in after
             if after[k] != counted[k]}
    sockets = statistics.median(sum(tcp_sockets(p) for p in _pids(n)) for n in nodes)
    memory = statistics.median(sum(_rss_mb(p) for p in _pids(n)) for n in nodes)
    _progress(f"{proto}: idle CPU {idle:.0%} of a core")
    for node in nodes:
        node.stop()
    return Figures(mesh, seen, sockets, memory, idle, dict(after), rates)


def run(size: int, idle_seconds: float = 20.0, connect_all: bool = True) -> dict[str, Figures]:
    results = {}
    for proto in ("inet_tcp", "py"):
        with Cluster() as cluster:
            results[proto] = measure(cluster, size, proto, idle_seconds, connect_all)
    return results


#: the counters worth reading after a run: how the cluster formed
REPORTED = ("links_admitted", "links_down_heartbeat_timeout", "route_computations", "lsp_new",
            "rerouted_channels", "retransmitted", "resend_timeouts", "channels_stalled",
            "no_route", "forwarded")


def counters(results: dict[str, Figures]) -> str:
    """py_dist's counters: some totals over the cluster, and the frames
    each node sends per second while idle, by kind (forwarded: frames of
    others it passes on)."""
    ours = results["py"]
    totals = ", ".join(f"{k} {ours.counters.get(k, 0):,}" for k in REPORTED)
    idle = sorted(((k, v) for k, v in ours.idle_rates.items()
                   if k.startswith("sent_") or k == "forwarded"), key=lambda kv: -kv[1])
    rates = ", ".join(f"{k} {v:.2f}" for k, v in idle) or "none"
    return f"py_dist totals: {totals}\npy_dist idle, frames per node per second: {rates}"


def _figure(value: float | None) -> str:
    return f"not reached in {WAIT_S} s" if value is None else f"{value:,.1f}"


def table(size: int, results: dict[str, Figures], connect_all: bool = True) -> str:
    stock, ours = results["inet_tcp"], results["py"]
    first = ("every node connected to every other, after one pinged all" if connect_all
             else "one node connected to every other (connect_all false)")
    rows = [(first, "s",
             stock.mesh_s, ours.mesh_s, False),
            ("a global name and a pg group seen from every node" if connect_all
             else "a pg group seen from every node", "s",
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
        lines.append(f"| {label} | {unit} | {_figure(a)} | {_figure(b)} | {ratio:.2f}x |")
    return "\n".join(lines)


if __name__ == "__main__":
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    mesh = "--no-connect-all" not in sys.argv
    figures = run(count, connect_all=mesh)
    print(table(count, figures, mesh))
    print(counters(figures))
