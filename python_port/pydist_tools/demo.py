"""The demo: a small py_dist cluster on this machine, exercised and described."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

from pydist_tools.cluster import HOST, Cluster, wait_routes
from pydist_tools.picture import PictureError, render, to_dot


def run(count: int = 5) -> None:
    """``count`` nodes in a line, each linked to the next only: the ends
    talk through every node between them."""
    t0 = time.monotonic()
    with Cluster() as cluster:
        names = [chr(ord("a") + i) for i in range(count)]
        nodes = []
        for i, name in enumerate(names):
            nxt = [f"'{names[i + 1]}@{HOST}'"] if i + 1 < count else []
            nodes.append(cluster.start(name, "-py_dist", "neighbours", f"[{', '.join(nxt)}]"))
        first, last = nodes[0], nodes[-1]
        click.echo(f"started {count} nodes with -proto_dist py in {time.monotonic() - t0:.1f}s, "
                   f"each linked to the next: {' - '.join(names)}")
        wait_routes(first, count - 1)
        click.echo(f"  routing converged after {time.monotonic() - t0:.1f}s")

        click.echo(f"\n{first.node} pings every node; only {nodes[1].node} is a neighbour:")
        routes = {r["dest"].decode(): r for r in first.eval("py_dist:routes().")}
        for node in nodes[1:]:
            pong = first.eval(f"net_adm:ping('{node.node}').")
            via = routes[node.node]["via"].decode()
            how = "direct link" if via == node.node else f"routed via {via}"
            click.echo(f"  {node.node}: {pong} ({how}, path cost {routes[node.node]['cost']})")
        others = sorted(n.node for n in nodes[1:])
        first.eval(f"ok = pd_agent:wait_for_nodes({others!r}, 10000).".replace('"', "'"))

        click.echo(f"\n{first.node} and {last.node} share no link; their traffic is routed:")
        first.eval("register(demo_inbox, self()).")
        last.eval(f"{{demo_inbox, '{first.node}'}} ! {{hello, node(), <<\"over ZeroMQ\">>}}.")
        got = first.eval("receive M -> M after 5000 -> timeout end.")
        click.echo(f"  {first.node} received {got!r}")
        reply = last.eval(f"rpc:call('{first.node}', erlang, system_info, [otp_release]).")
        click.echo(f"  rpc from {last.node} to {first.node}: otp_release = {reply.decode()}")
        size = 16 << 20
        ok, ms = last.eval(f"""
            B = crypto:strong_rand_bytes({size}),
            T0 = erlang:monotonic_time(millisecond),
            Same = erlang:md5(B) =:= rpc:call('{first.node}', erlang, md5, [B]),
            {{Same, erlang:monotonic_time(millisecond) - T0}}.
        """)
        click.echo(f"  {size >> 20} MiB binary {last.node} -> {first.node}: "
                   f"checksum {'matches' if ok else 'DIFFERS'} ({ms} ms)")
        overtake(first, last)
        last.eval(f"py_dist:send({{demo_inbox, '{first.node}'}}, {{sample, node(), 42}}, "
                  f"[{{deadline, 100}}]).")
        got = first.eval("receive M -> M after 5000 -> timeout end.")
        click.echo(f"  realtime lane (py_dist:send/3, [{{deadline, 100}}]), {last.node} -> "
                   f"{first.node}: {got!r}, carried apart from the connection")
        global_node = nodes[1].eval("""
            yes = global:register_name(demo_service, spawn(fun() -> receive _ -> ok end end)),
            node().
        """)
        seen = last.eval("global:sync(), node(global:whereis_name(demo_service)).")
        click.echo(f"  global name registered on {global_node} is seen from {last.node} "
                   f"on {seen}")
        click.echo(f"  {first.node} is connected to {sorted(first.eval('nodes().'))}")

        click.echo(f"\nthe topology as {first.node} sees it (py_dist:topology/0, "
                   f"also: pydist routes NODE):")
        topology = first.eval("py_dist:topology().")
        click.echo(describe_topology(topology))
        click.echo(f"  drawn: {picture(topology, first.eval('py_dist:info().'))} "
                   f"(also: pydist topology NODE)")
        click.echo("\nwhat each node's carrier holds (py_dist:info/0):")
        for node in nodes:
            click.echo(describe(node.node, node.eval("py_dist:info().")))
        click.echo(f"\nstopping the nodes ({time.monotonic() - t0:.1f}s in all)")


def picture(topology: dict[str, Any], info: dict[str, Any]) -> Path:
    """The topology drawn by Graphviz into the working directory (its DOT
    text where Graphviz is missing)."""
    dot = to_dot(topology, (info.get("port") or {}).get("links"))
    try:
        path = Path("pydist-demo-topology.svg").resolve()
        path.write_bytes(render(dot, "svg"))
    except PictureError:
        path = Path("pydist-demo-topology.dot").resolve()
        path.write_text(dot)
    return path


def overtake(src: Any, dst: Any) -> None:
    """A small message sent after a 64 MiB one, by another process, on the
    same connection: it arrives first (scheduled per sender)."""
    size = 64 << 20
    order = dst.eval(f"""
        Self = self(),
        Inbox = spawn(fun() -> Got = [receive {{T, _}} -> {{T, erlang:monotonic_time(millisecond)}}
                                      end || _ <- [1, 2]],
                               Self ! {{order, Got}} end),
        rpc:call('{src.node}', erlang, apply, [fun() ->
            Big = binary:copy(<<1>>, {size}),
            spawn(fun() -> Inbox ! {{large, Big}} end),
            timer:sleep(5),
            spawn(fun() -> Inbox ! {{small, hello}} end), ok end, []]),
        receive {{order, O}} -> O after 60000 -> timeout end.
    """, timeout=90)
    (first, t1), (second, t2) = order
    click.echo(f"  a {size >> 20} MiB message, then a small one 5 ms later from another process, "
               f"{src.node} -> {dst.node}: the {first} one arrived first, "
               f"the {second} one {t2 - t1} ms later")


def describe(node: str, info: dict[str, Any]) -> str:
    """A few lines on one node's carrier, from ``py_dist:info/0``."""
    lines = [f"  {node}: port program pid {info['os_pid']}, ZeroMQ listener port "
             f"{info['listen_port']}, {info['channels']} connections, "
             f"{info['restarts']} restarts"]
    port = info.get("port")
    if port is None:
        lines.append("    (the port program did not answer)")
        return "\n".join(lines)
    for link in sorted(port["links"], key=lambda ln: ln["peer"]):
        how = "dialled" if link["dialled"] else "accepted"
        state = "up" if link["up"] else "connecting"
        lines.append(f"    link to {link['peer'].decode()}: {state}, {how}, "
                     f"{link['channels']} channels")
    for ch in sorted(port.get("channels", []), key=lambda c: c["peer"]):
        lines.append(f"    connection to {ch['peer'].decode()}: epoch {ch['epoch']}, "
                     f"sent {ch['next_seq']} (unacked {ch['unacked_bytes']} B), "
                     f"received {ch['expected']} (held early {ch['reorder_bytes']} B), "
                     f"queued {ch['queued_bytes']} B in {ch['flows']} flows"
                     f"{', paused' if ch['paused'] else ''}")
    stats = sorted(port["stats"].items())
    lanes = ", ".join(f"{k.decode()[5:]}={v}" for k, v in stats if k.startswith(b"lane_"))
    if lanes:
        lines.append(f"    lanes: {lanes}")
    counters = ", ".join(f"{k.decode()}={v}" for k, v in stats if not k.startswith(b"lane_"))
    if counters:
        lines.append(f"    counters: {counters}")
    return "\n".join(lines)


def describe_topology(topo: dict[str, Any]) -> str:
    """The link-state database and the routes, from ``py_dist:topology/0``."""
    if "error" in topo:
        return f"  (no answer from the port program: {topo['error']!r})"
    lines = ["  link-state database (origin, sequence, lifetime left: neighbours/cost):"]
    for lsp in topo["lsdb"]:
        nbrs = ", ".join(f"{n.decode()}/{c}" for n, c in lsp["neighbours"]) or "none"
        lines.append(f"    {lsp['origin'].decode()} #{lsp['seq']} {lsp['age_left'] / 1000:.0f}s: "
                     f"{nbrs}")
    lines.append("  routes (destination -> next hop, path cost):")
    for route in topo["routes"]:
        cost = "?" if route["cost"] < 0 else route["cost"]
        static = ", static" if route["static"] else ""
        lines.append(f"    {route['dest'].decode()} -> {route['via'].decode()} "
                     f"({cost}{static})")
    return "\n".join(lines)
