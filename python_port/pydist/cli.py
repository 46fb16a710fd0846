"""``pydist``: the command line for people, and the entry point the BEAM starts.

The demo, the benchmarks and ``info``/``routes`` (which join as a hidden
node) run on :mod:`pydist_tools`, a package of the checkout that a release
does not ship: those commands import it when they run, never at import
time, so ``pydist port`` (what the BEAM starts) needs only this package.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from pydist.core.config import Config, ConfigError
from pydist.launch import erl_flags


@click.group()
def main() -> None:
    """py_dist: Erlang distribution over ZeroMQ, carried by Python."""


@main.command()
def flags() -> None:
    """Print the erl arguments that make a node use py_dist: erl $(pydist flags) -sname a"""
    click.echo(" ".join(erl_flags()))


@main.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def erl(args: tuple[str, ...]) -> None:
    """Run erl with the py_dist flags, then ARGS."""
    argv = ["erl", *erl_flags(), *args]
    os.execvp("erl", argv)


def _joining(command: Callable[..., None]) -> Callable[..., None]:
    """The options of a command that joins NODE's cluster as a hidden node:
    the same credentials and the same way in as the cluster's own nodes."""
    options = [
        click.argument("node"),
        click.option("--cookie", default=None,
                     help="The cluster's cookie (default: ~/.erlang.cookie)."),
        click.option("--node-key", type=click.Path(exists=True, dir_okay=False), default=None,
                     help="A key pair's secret file (pydist keygen NAME@HOST); the asker "
                          "joins under that NAME@HOST, which NODE's authorized keys list."),
        click.option("--authorized-keys", type=click.Path(exists=True, dir_okay=False),
                     default=None, help="The cluster's authorized-keys file (with --node-key)."),
        click.option("--endpoint", default=None, metavar="HOST:PORT",
                     help="Where NODE listens: join without epmd, NODE as the seed."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


@main.command()
@_joining
def info(node: str, **join: Any) -> None:
    """Show the py_dist carrier of a running NODE: its port program and links."""
    from pydist_tools.demo import describe

    click.echo(describe(node, _ask_all(node, ["info"], **join)["info"]))


@main.command()
@_joining
def routes(node: str, **join: Any) -> None:
    """Show the link-state database and routing table of a running NODE."""
    from pydist_tools.demo import describe_topology

    click.echo(describe_topology(_ask_all(node, ["topology"], **join)["topology"]))


@main.command()
@_joining
@click.option("--format", "fmt", type=click.Choice(["dot", "svg", "png"]), default="svg",
              show_default=True, help="dot: Graphviz's text; svg, png: drawn by Graphviz.")
@click.option("--out", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Where to write it (default: NODE's name and the format, here).")
def topology(node: str, fmt: str, out: str | None, **join: Any) -> None:
    """Draw the cluster as a running NODE sees it: links, costs, its routes."""
    from pydist_tools.picture import PictureError, render, to_dot

    answers = _ask_all(node, ["topology", "info"], **join)
    if "error" in answers["topology"]:
        raise click.ClickException(f"{node}'s port program did not answer: "
                                   f"{answers['topology']['error']!r}")
    port = answers["info"].get("port") or {}
    try:
        picture = render(to_dot(answers["topology"], port.get("links")), fmt)
    except PictureError as exc:
        raise click.ClickException(str(exc)) from exc
    path = out or f"{node.replace('@', '_')}.{fmt}"
    with open(path, "wb") as f:
        f.write(picture)
    click.echo(path)


def _ask_all(node: str, functions: list[str], cookie: str | None = None,
             node_key: str | None = None, authorized_keys: str | None = None,
             endpoint: str | None = None) -> dict[str, dict[str, Any]]:
    """py_dist:FUNCTION() on NODE for each function, asked from a
    short-lived hidden node that joins over py_dist: through the machine's
    epmd, or with ``endpoint`` straight to NODE with no epmd at all; with
    ``node_key``, under the name that key is registered for."""
    from pydist_tools.cluster import Cluster, NodeError

    if not re.fullmatch(r"[^@'\\\s]+@[^@'\\\s]+", node):
        raise click.BadParameter("a node name looks like name@host", param_hint="NODE")
    name, host = f"pydist_{functions[0]}_{os.getpid()}", node.split("@", 1)[1]
    # never an epmd daemon left behind: the one the cluster uses, or none
    args: list[str] = ["-hidden", "-start_epmd", "false"]
    if node_key is not None:
        name, host = _key_owner(node_key)
        if authorized_keys is None:
            raise click.UsageError("--node-key needs --authorized-keys (NODE must be in it)")
        args += ["-py_dist", "node_key", node_key, "-py_dist", "authorized_keys", authorized_keys]
    elif authorized_keys is not None:
        raise click.UsageError("--authorized-keys needs --node-key")
    if endpoint is not None:
        args += ["-no_epmd", "-py_dist", "neighbours", _seed(node, endpoint)]
    answers: dict[str, dict[str, Any]] = {}
    with Cluster(cookie=cookie, private_epmd=False) as cluster:
        try:
            me = cluster.start(name, *args, host=host)
        except NodeError as exc:
            raise click.ClickException(
                f"cannot join {node}'s cluster ({exc}); without an epmd give "
                "--endpoint HOST:PORT") from exc
        if endpoint is not None:
            # without epmd, NODE's address comes with the seed link's link
            # state: not known the moment the node is up
            me.eval(f"Wait = fun W(0) -> pang; W(N) -> case net_adm:ping('{node}') of "
                    "pong -> pong; pang -> timer:sleep(200), W(N - 1) end end, Wait(50).",
                    timeout=30)
        for function in functions:
            try:
                result = me.eval(f"rpc:call('{node}', py_dist, {function}, [], 15000).",
                                 timeout=30)
            except NodeError as exc:
                raise click.ClickException(str(exc)) from exc
            if not isinstance(result, dict):
                raise click.ClickException(f"{node} did not answer: {result!r}")
            answers[function] = result
    return answers


def _key_owner(node_key: str) -> tuple[str, str]:
    """The node name a secret key file is for: ``pydist keygen`` names it
    ``NAME@HOST.key_secret``, and a key is bound to that one name."""
    owner = Path(node_key).name.removesuffix(".key_secret")
    name, _, host = owner.partition("@")
    if not name or not host or not Path(node_key).name.endswith(".key_secret"):
        raise click.BadParameter(f"{node_key} is not NAME@HOST.key_secret (pydist keygen "
                                 "writes that)", param_hint="--node-key")
    return name, host


def _seed(node: str, endpoint: str) -> str:
    """NODE as the one neighbour, in py_dist's neighbours syntax."""
    host, _, port = endpoint.rpartition(":")
    host = host.strip("[]")
    if (not host or any(c in host for c in "\\\"'{}") or not port.isdigit()
            or not 0 < int(port) < 65536):
        raise click.BadParameter(f"{endpoint!r} is not HOST:PORT", param_hint="--endpoint")
    return f"[{{'{node}', #{{endpoint => {{\"{host}\", {int(port)}}}}}}}]"


@main.command()
@click.option("--nodes", default=5, show_default=True, help="How many nodes to start.")
def demo(nodes: int) -> None:
    """Start a small py_dist cluster on this machine and show it working."""
    from pydist_tools import demo as demo_module

    demo_module.run(nodes)


@main.command()
@click.option("--seconds", default=2.0, show_default=True, help="Length of each timed case.")
@click.option("--rounds", default=3, show_default=True, help="Runs of each case per carrier.")
@click.option("--part",
              type=click.Choice(["all", "carrier", "routing", "sequencing", "lanes",
                                 "security", "scale", "hop", "ceilings", "edge",
                                 "performance"]),
              default="all", show_default=True,
              help="carrier: py_dist against inet_tcp; routing: a 2-hop route against a "
              "direct link, and reroute times; sequencing: this build against the "
              "foundation's, and a stream's stall at a cut link; lanes: round trips "
              "behind 64 MiB streams (head-of-line), py_dist against inet_tcp; security: "
              "py_dist with CurveZMQ against inet_tls_dist; scale (not in all): --nodes "
              "real nodes, py_dist sparse against a stock mesh; hop (not in all): what "
              "a forwarding node costs, against pyzmq alone and stock direct; ceilings "
              "(not in all): each stage a large message crosses, alone, beside the "
              "carriers' large-message figures; edge (not in all, root): py_dist a-b-c "
              "against stock a-c over lossy, delayed hops in network namespaces, and the "
              "time to notice a dead link; performance (not in all): the performance "
              "targets from one run (carriers, ceilings, head-of-line and its floor).")
@click.option("--nodes", default=100, show_default=True, help="Cluster size for --part scale.")
@click.option("--connect-all/--no-connect-all", default=True, show_default=True,
              help="--part scale: whether nodes run with -kernel connect_all (the logical mesh).")
def bench(seconds: float, rounds: int, part: str, nodes: int, connect_all: bool) -> None:
    """Compare py_dist with stock inet_tcp_dist, and routes with links, in one run."""
    from pydist_tools import bench as bench_module
    from pydist_tools import bench_lanes, bench_routing, bench_security, bench_sequencing

    if part == "hop":
        from pydist_tools import bench_hop

        click.echo(bench_hop.run(max(seconds, 5.0)))
        return
    if part == "ceilings":
        from pydist_tools import bench_ceilings

        ceilings, large = bench_ceilings.run(seconds, rounds)
        click.echo(f"\nmedians of {rounds} rounds, one run\n")
        click.echo(bench_ceilings.table(ceilings, large))
        return
    if part == "edge":
        from pydist_tools import bench_edge

        secs = max(seconds, 8.0)  # both carriers ramp up over long round trips
        click.echo(bench_edge.table(bench_edge.run(secs), secs))
        click.echo(bench_edge.detection_table(*bench_edge.detection()))
        return
    if part == "performance":
        from pydist_tools import bench_targets

        click.echo("measuring (one line per case):", err=True)
        click.echo(f"\nmedians of {rounds} rounds, one run\n")
        click.echo(bench_targets.table(bench_targets.run(seconds, rounds)))
        return
    if part == "scale":
        from pydist_tools import bench_scale

        figures = bench_scale.run(nodes, connect_all=connect_all)
        click.echo(bench_scale.table(nodes, figures, connect_all))
        click.echo(bench_scale.counters(figures))
        return
    click.echo("measuring (one line per case):", err=True)
    if part in ("all", "carrier"):
        rows = bench_module.run(seconds, rounds)
        click.echo(f"\nmedians of {rounds} rounds; ratio: how many times better py_dist is "
                   "(throughput py/tcp, times tcp/py)\n")
        click.echo(bench_module.table(rows))
    if part in ("all", "routing"):
        routed = bench_routing.run(seconds, rounds)
        times = bench_routing.reroute(rounds)
        click.echo(f"\nrouting, medians of {rounds} rounds: py_dist over a direct link and "
                   "over a route through a third node (ratio: routed vs direct)\n")
        click.echo(bench_routing.table(routed))
        click.echo(f"\nlink on the path lost -> traffic flowing the other way round: "
                   f"{times['unlink']:,.0f} ms after py_dist:unlink/1, "
                   f"{times['silent']:,.0f} ms after a silent failure (heartbeats)")
    if part in ("all", "sequencing"):
        rows = bench_sequencing.run(seconds, rounds)
        stall = bench_sequencing.stall(rounds)
        click.echo(f"\nsequencing, medians of {rounds} rounds: this build (sequence numbers, "
                   "acks, resending) against the foundation's, on a direct link\n")
        click.echo(bench_sequencing.table(rows))
        click.echo(f"\na stream across a link that is cut: longest stall {stall['stall_ms']:,.1f}"
                   " ms, every message delivered in order, no nodedown")
    if part in ("all", "lanes"):
        rows = bench_lanes.run(seconds, rounds)
        click.echo(f"\nhead-of-line, medians of {rounds} rounds: round trips of a third "
                   f"process while {bench_lanes.STREAMERS} processes stream "
                   f"{bench_lanes.STREAM >> 20} MiB messages to the same node\n")
        click.echo(bench_lanes.table(rows))
        f = bench_lanes.floor()
        click.echo(f"\nfloor: py_dist round trips while the streams go to a third node "
                   f"instead (same BEAMs and port programs busy, the pinged connection "
                   f"empty): p50 {f['other p50']:,.0f} us, p99 {f['other p99']:,.0f} us; "
                   f"with the streams to the pinged node, same run: p50 {f['same p50']:,.0f}"
                   f" us, p99 {f['same p99']:,.0f} us")
    if part in ("all", "security"):
        rows = bench_security.run(seconds, rounds)
        click.echo(f"\nencrypted links, medians of {rounds} rounds: py_dist with CurveZMQ "
                   "against stock inet_tls_dist\n")
        click.echo(bench_security.table(rows))
        p50, p99 = bench_module.zmq_floor()
        click.echo(f"\nfloor: round trip of bare ZeroMQ between two Python processes (no "
                   f"BEAM, pipe, protocol or encryption): p50 {p50:,.0f} us, p99 {p99:,.0f} us")


@main.command()
@click.argument("node")
@click.option("--dir", "directory", default=".", show_default=True,
              type=click.Path(file_okay=False, path_type=Path),
              help="Where to write NODE.key and NODE.key_secret.")
def keygen(node: str, directory: Path) -> None:
    """Write a node's key pair; print its authorized-keys line.

    Give the node its secret file with -py_dist node_key PATH, and every
    node of the cluster the same authorized-keys file (-py_dist
    authorized_keys PATH) holding every node's line.
    """
    from pydist.core.trust import TrustError
    from pydist.shell.curve import keygen as write_keys

    if "@" not in node:
        raise click.ClickException(f"{node!r} is not a node name (name@host)")
    try:
        public, secret, line = write_keys(directory, node)
    except TrustError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"public key:  {public}", err=True)
    click.echo(f"secret key:  {secret} (keep it on that node only)", err=True)
    click.echo(line)


@main.command()
@click.option("--set", "settings", multiple=True, metavar="KEY=VALUE",
              help="A configuration key, as py_dist_config hands it over.")
def port(settings: tuple[str, ...]) -> None:
    """The port program itself; started by the BEAM, not by people."""
    from pydist.shell.runtime import run

    try:
        config = Config.from_pairs(list(settings))
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    sys.exit(run(config))
