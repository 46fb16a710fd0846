"""The small version of the scale benchmark: 30 real nodes in a sparse
topology (the benchmark's random 4-regular graph), four neighbours each,
form the full logical mesh, and ``global`` and ``pg`` see every node,
while each port program holds no more sockets than its links and its
listener."""

from __future__ import annotations

from pydist_tools.bench_scale import dialled as dialled_by
from pydist_tools.bench_scale import tcp_sockets
from pydist_tools.cluster import Cluster, ErlNode, wait_routes

from .test_routing import HOST, wait_for_mesh

SIZE = 30


def test_thirty_nodes_in_a_sparse_topology(cluster: Cluster) -> None:
    dialled = dialled_by(SIZE)
    linked = {i: {j for j in range(SIZE) if j in dialled[i] or i in dialled[j]}
              for i in range(SIZE)}
    assert max(len(v) for v in linked.values()) <= 4
    nodes: list[ErlNode] = []
    for i in range(SIZE):
        seeds = ", ".join(f"'n{j}@{HOST}'" for j in dialled[i])
        nodes.append(cluster.start(f"n{i}", "-py_dist", "neighbours", f"[{seeds}]"))
    for node in nodes:
        wait_routes(node, SIZE - 1, timeout_ms=60000)
    wait_for_mesh(nodes)
    for node in nodes:
        assert len(node.eval("nodes().")) == SIZE - 1
    # a global name and a pg group with a member on every node, seen everywhere
    nodes[7].eval("yes = global:register_name(pd_scale, spawn(fun() -> "
                  "receive stop -> ok end end)).")
    for node in nodes:
        node.eval("pg:start(pg), ok = pg:join(pd_scale_group, spawn(fun() -> "
                  "receive stop -> ok end end)).")
    for node in nodes:
        assert node.eval("global:sync(), node(global:whereis_name(pd_scale)).") == nodes[7].node
        members = node.eval(f"""
            Wait = fun W(0) -> length(pg:get_members(pd_scale_group));
                       W(N) -> case length(pg:get_members(pd_scale_group)) of
                                   {SIZE} -> {SIZE};
                                   _ -> timer:sleep(100), W(N - 1)
                               end
                   end,
            Wait(300).""")
        assert members == SIZE
    # A link that the load of 60 busy processes on two cores made miss its
    # heartbeats is redialled: each node must come back to its own links
    # (never to more sockets), not hold them at one instant.
    for i, node in enumerate(nodes):
        assert node.port_pid is not None
        want = sorted(f"n{j}@{HOST}" for j in linked[i])
        up = node.eval(f"""
            Up = fun() ->
                     #{{links := Ls}} = maps:get(port, py_dist:info()),
                     lists:sort([binary_to_list(P) || #{{peer := P, up := true}} <- Ls])
                 end,
            Wait = fun W(0) -> Up();
                       W(N) -> case Up() of
                                   {want!r} -> ok;
                                   _ -> timer:sleep(100), W(N - 1)
                               end
                   end,
            Wait(300).""".replace("'", '"'), timeout=60)
        assert up == "ok", f"{node.node}: links up {up}, wanted {want}, " \
            f"link losses {link_losses(node)}"
        assert tcp_sockets(node.port_pid) <= len(linked[i]) + 1


def link_losses(node: ErlNode) -> dict[bytes, int]:
    stats = node.eval("maps:get(stats, maps:get(port, py_dist:info())).")
    return {k: v for k, v in stats.items() if k.startswith(b"links_down_")}
