"""Benchmark of sequencing: this build against the foundation's (before
routing and sequencing) in the same run, and what a cut link costs a
stream now: how long it stalls, and that nothing is lost.

The foundation build is made from git (the commit below) under
``_build/foundation`` the first time; its port program runs from that
tree's sources with this virtualenv's interpreter.
"""

from __future__ import annotations

import io
import statistics
import subprocess
import sys
import tarfile
from pathlib import Path

import click

from pydist.launch import repo_root
from pydist_tools.cluster import HOST, Cluster, ErlNode, wait_routes
from pydist_tools.measure import Case, Measure, Rows, alternate, compare, rtt, throughput

FOUNDATION = "44134380bc9838608b49d7ec09099b1474133ef3"
BUILDS = ("now", "foundation")

CASES: list[tuple[list[Case], Measure]] = [
    ([Case("100 B msgs, 1 sender", "msg/s", True)], throughput(100, 1, "msg")),
    ([Case("1 MiB msgs", "MB/s", True)], throughput(1 << 20, 1, "byte")),
    ([Case("64 MiB msgs", "MB/s", True)], throughput(64 << 20, 1, "byte")),
    ([Case("round trip p50", "us", False), Case("round trip p99", "us", False)], rtt),
]


def foundation_build() -> tuple[Path, Path]:
    """The foundation's ebin and Python sources, built once."""
    root = repo_root()
    tree = root / "_build" / "foundation"
    ebin = tree / "_build" / "default" / "lib" / "py_dist" / "ebin"
    if not (ebin / "py_dist.beam").exists():
        tree.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "-C", str(root), "archive", FOUNDATION],
                                 check=True, capture_output=True).stdout
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(tree, filter="data")
        subprocess.run(["rebar3", "compile"], cwd=tree, check=True, capture_output=True)
    return ebin, tree / "python_port"


def _start_pair(cluster: Cluster, build: str) -> tuple[ErlNode, ErlNode]:
    if build == "now":
        return cluster.start("bq_src_now"), cluster.start("bq_dst_now")
    ebin, sources = foundation_build()
    flags = ["-pa", str(ebin), "-proto_dist", "py", "-py_dist", "python", sys.executable]
    env = {"PYTHONPATH": str(sources)}  # the port program imports the old package
    return (cluster.start("bq_src_old", *flags, proto="foundation", env=env),
            cluster.start("bq_dst_old", *flags, proto="foundation", env=env))


def run(seconds: float = 2.0, rounds: int = 3) -> Rows:
    with Cluster() as cluster:
        pairs = {b: _start_pair(cluster, b) for b in BUILDS}
        for src, dst in pairs.values():
            assert src.eval(f"net_adm:ping('{dst.node}').") == "pong"
        return alternate(CASES, pairs, seconds, rounds)


def table(rows: Rows) -> str:
    return compare(rows, "foundation", "now", ("foundation", "now", "now vs foundation"))


def stall(rounds: int = 3, count: int = 50_000) -> dict[str, float]:
    """A ring of four: a paced stream of ``count`` numbered messages to the
    node opposite while the first link of its path is cut. The longest wait
    between two messages at the receiver (ms, median of rounds); every
    message must arrive, in order, with no nodedown."""
    stalls = []
    with Cluster() as cluster:
        ring = [cluster.start(f"bs{i}", "-py_dist", "neighbours", f"['bs{(i + 1) % 4}@{HOST}']")
                for i in range(4)]
        for node in ring:
            wait_routes(node, 3, degree=2)
        src, mid, dst = ring[0], ring[1], ring[2]
        for round_ in range(rounds):
            assert src.eval(f"net_adm:ping('{dst.node}').") == "pong"
            src.eval("persistent_term:put(w, pd_agent:watch_nodes()).")
            dst.eval(f"persistent_term:put(r, pd_agent:gap_receiver(pd_gaps, {count})).")
            src.eval(f"""spawn(fun() ->
                [begin [{{pd_gaps, '{dst.node}'}} ! {{1, B * 1000 + I}} || I <- lists:seq(1, 1000)],
                       timer:sleep(10) end || B <- lists:seq(0, {count // 1000 - 1})] end), ok.""")
            src.eval("timer:sleep(200).")
            assert src.eval(f"py_dist:unlink('{mid.node}').") == "ok"
            result = dst.eval("persistent_term:get(r) ! {get, self()}, "
                              "receive {result, R} -> R after 90000 -> timeout end.", timeout=120)
            assert result[0] == "ok", result
            assert src.eval("pd_agent:nodedowns(persistent_term:get(w)).") == []
            stalls.append(result[1] / 1000)
            click.echo(f"  cut under a stream, round {round_ + 1}: longest stall "
                       f"{stalls[-1]:,.1f} ms, {count} of {count} in order", err=True)
            assert src.eval(f"py_dist:link('{mid.node}').") == "ok"
            wait_routes(src, 3, degree=2)
    return {"stall_ms": statistics.median(stalls)}
