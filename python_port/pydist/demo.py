"""The demo: a small py_dist cluster on this machine, exercised and described."""

from __future__ import annotations

import time
from typing import Any

import click

from pydist.cluster import Cluster


def run(count: int = 4) -> None:
    t0 = time.monotonic()
    with Cluster() as cluster:
        names = [chr(ord("a") + i) for i in range(count)]
        nodes = [cluster.start(n) for n in names]
        click.echo(f"started {count} nodes with -proto_dist py in "
                   f"{time.monotonic() - t0:.1f}s (private epmd on port {cluster.epmd_port})")
        first = nodes[0]
        for node in nodes[1:]:
            result = node.eval(f"net_adm:ping('{first.node}').")
            click.echo(f"  {node.node} pings {first.node}: {result}")
        others = sorted(n.node for n in nodes[1:])
        first.eval(f"ok = pd_agent:wait_for_nodes({others!r}, 10000).".replace('"', "'"))

        click.echo("\nmessages and calls between the nodes:")
        last = nodes[-1]
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
        global_node = nodes[1].eval("""
            yes = global:register_name(demo_service, spawn(fun() -> receive _ -> ok end end)),
            node().
        """)
        seen = last.eval("global:sync(), node(global:whereis_name(demo_service)).")
        click.echo(f"  global name registered on {global_node} is seen from {last.node} "
                   f"on {seen}")

        click.echo("\nwhat connected (py_dist:info/0 of each node):")
        for node in nodes:
            click.echo(describe(node.node, node.eval("py_dist:info().")))
        click.echo(f"\nstopping the nodes ({time.monotonic() - t0:.1f}s in all)")


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
    counters = ", ".join(f"{k.decode()}={v}" for k, v in sorted(port["stats"].items()))
    if counters:
        lines.append(f"    counters: {counters}")
    return "\n".join(lines)
