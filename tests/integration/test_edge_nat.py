"""Edge networks: a node behind NAT joins by dialling a gateway and is
reached by everyone through it. Real nodes in namespaces made here;
skipped, with the reason, where namespaces cannot be made::

    e 10.77.1.1 -- 10.77.1.2 nat 10.77.2.1 -- 10.77.2.2 g 10.77.3.1 -- 10.77.3.2 x
      (default route            (masquerades out,         (gateway)        (the rest of
       through nat)              drops what dials in)                       the cluster)

e dials g; x dials g. Nobody can dial e: g's packets for e's subnet go to
the router, which drops and counts what nobody inside asked for, and x
has no route there at all.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from pydist_tools.cluster import Cluster, ErlNode, impair, nat, netns, wait_routes

from .helpers import port_stats

PORT = 9200


def endpoint_of(node: ErlNode, origin: ErlNode) -> bytes:
    found = node.eval(f"[E || #{{origin := O, endpoint := E}} <- "
                      f"maps:get(lsdb, py_dist:topology()), O =:= <<\"{origin.node}\">>].")
    return found[0] if found else b""


@pytest.mark.usefixtures("need_netns")
def test_a_node_behind_nat_is_reached_through_its_gateway(tmp_path: Path) -> None:
    reason = impair.unavailable()
    if reason is not None:
        pytest.skip(reason)
    links = [("e", "nat"), ("nat", "g"), ("g", "x")]
    with netns.Net(["e", "nat", "g", "x"], links) as net, Cluster(tmp_path / "cluster") as cl:
        router = net.ns("nat")
        nat.masquerade(router, net.interfaces(2)[0])  # its side of the link to g
        nat.default_route(net.ns("e"), net.addresses("nat")[0])
        # a dial from g to e would reach the router, to be refused and counted
        nat.route(net.ns("g"), f"{net.base}.1.0/24", net.addresses("nat")[1])
        g_on_e_side, g_on_x_side = net.addresses("g")
        gw = cl.start("g", "-py_dist", "listen_port", str(PORT),
                      netns=net.ns("g"), host=g_on_e_side)
        nodes = {}
        for name, g_addr in (("e", g_on_e_side), ("x", g_on_x_side)):
            nbrs = f"[{{'{gw.node}', #{{endpoint => {{\"{g_addr}\", {PORT}}}}}}}]"
            nodes[name] = cl.start(name, "-py_dist", "listen_port", str(PORT),
                                   "-py_dist", "neighbours", nbrs,
                                   netns=net.ns(name), host=net.address(name))
        e, x = nodes["e"], nodes["x"]
        for node in (e, gw, x):
            wait_routes(node, 2)
        # e advertises where it listens, an address nobody outside can reach
        assert endpoint_of(x, e) == f"{e.node.split('@')[1]}:{PORT}".encode()

        assert x.eval(f"net_adm:ping('{e.node}').") == "pong"
        assert x.eval(f"rpc:call('{e.node}', erlang, node, []).") == e.node
        e.eval("Pid = spawn(fun() -> receive stop -> ok end end), "
               "yes = global:register_name(pd_edge, Pid), ok.")
        seen = x.eval("""Wait = fun W(T) ->
                              case global:whereis_name(pd_edge) of
                                  undefined when T > 0 -> timer:sleep(50), W(T - 50);
                                  P -> P
                              end
                          end,
                          P = Wait(20000), if is_pid(P) -> node(P); true -> P end.""",
                      timeout=40)
        assert seen == e.node
        assert x.eval(f"rpc:call('{e.node}', global, whereis_name, [pd_edge]) =:= "
                      "global:whereis_name(pd_edge).") is True

        # e leaves (its cable pulled): the others drop it and do not go
        # looking for it at the endpoint it advertised
        e_was = e.node
        x.eval(f"persistent_term:put(pd_down, pd_agent:collect_nodedown('{e_was}')).")
        net.set_link(1, False)
        down = x.eval("persistent_term:get(pd_down) ! {get, self()}, "
                      "receive {nodedown, R} -> R after 30000 -> timeout end.", timeout=40)
        assert down != "timeout"
        time.sleep(3)
        for node in (gw, x):
            counts = port_stats(node)
            # each dialled one link at most (x to g), and none failed to connect
            assert counts.get(b"links_down_connect_timeout", 0) == 0, (node.node, counts)
            assert counts.get(b"sent_hello", 0) <= 2, (node.node, counts)
        assert nat.unsolicited(router) == 0, "someone dialled the node behind NAT"
        # and the count is no blind spot: a dial from g is seen (and lost)
        net.set_link(1, True)
        assert net.probe("g", net.address("e"), PORT, timeout=1.0) == "timeout"
        assert nat.unsolicited(router) > 0
