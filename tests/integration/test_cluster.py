"""Several nodes: full membership, global and pg, through py_dist."""

from __future__ import annotations

from pydist_tools.cluster import Cluster


def test_five_nodes_global_and_pg(cluster: Cluster) -> None:
    nodes = [cluster.start(f"n{i}") for i in range(1, 6)]
    names = sorted(n.node for n in nodes)
    for n in nodes[1:]:
        assert n.eval(f"net_adm:ping('{nodes[0].node}').") == "pong"
    # global's connect_all makes the mesh; every node must see all others
    for n in nodes:
        others = [x for x in names if x != n.node]
        assert n.eval(f"pd_agent:wait_for_nodes({others!r}, 10000).".replace('"', "'")) == "ok"
        assert sorted(n.eval("nodes().")) == others
    for n in nodes:
        n.eval("{ok, _} = pg:start(pg), ok.")
    owner = nodes[1]
    owner.eval("""
        P = spawn(fun() -> receive stop -> ok end end),
        yes = global:register_name(py_dist_test_name, P),
        ok = pg:join(py_dist_group, P),
        persistent_term:put(member, P).
    """)
    pid_node = owner.node
    for n in nodes:
        assert n.eval("global:sync(), node(global:whereis_name(py_dist_test_name)).") == pid_node
        assert n.eval("""
            Wait = fun W(0) -> [];
                       W(K) -> case pg:get_members(py_dist_group) of
                                   [] -> timer:sleep(50), W(K - 1);
                                   Ms -> [node(M) || M <- Ms]
                               end
                   end,
            Wait(100).
        """) == [pid_node]
