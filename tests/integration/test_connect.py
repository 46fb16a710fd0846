"""Connecting: ping, missing nodes, hidden nodes, wrong cookies."""

from __future__ import annotations

import os
import signal

import pytest

from pydist_tools.cluster import Cluster


def test_ping_pong_and_nodes(cluster: Cluster) -> None:
    a, b = cluster.start("a"), cluster.start("b")
    assert b.eval(f"net_adm:ping('{a.node}').") == "pong"
    assert b.eval("nodes().") == [a.node]
    assert a.eval("nodes().") == [b.node]
    # the connection really is py_dist's: the far side sees our protocol
    assert a.eval(f"element(4, element(2, net_kernel:node_info('{b.node}', address))).") == "py"


def test_ping_missing_node_is_pang_within_setuptime(cluster: Cluster) -> None:
    b = cluster.start("b")
    micros, result = b.eval("timer:tc(net_adm, ping, ['nobody@127.0.0.1']).")
    assert result == "pang"
    setuptime_s = b.eval("net_kernel:connecttime().") / 1000
    assert micros / 1e6 < setuptime_s


def test_ping_unresponsive_node_is_pang_within_setuptime(cluster: Cluster) -> None:
    """epmd knows the node but its port program does not answer."""
    a, b = cluster.start("a"), cluster.start("b")
    assert a.port_pid is not None
    os.kill(a.port_pid, signal.SIGSTOP)
    try:
        micros, result = b.eval(f"timer:tc(net_adm, ping, ['{a.node}']).")
    finally:
        os.kill(a.port_pid, signal.SIGCONT)
    assert result == "pang"
    assert micros / 1e6 < b.eval("net_kernel:connecttime().") / 1000
    # and once it answers again, the node is reachable
    assert b.eval(f"net_adm:ping('{a.node}').") == "pong"


def test_hidden_node_connects_but_stays_out_of_nodes(cluster: Cluster) -> None:
    a = cluster.start("a")
    h = cluster.start("h", "-hidden")
    assert h.eval(f"net_adm:ping('{a.node}').") == "pong"
    assert a.eval("nodes().") == []
    assert a.eval("nodes(hidden).") == [h.node]
    assert h.eval(f"rpc:call('{a.node}', erlang, node, []).") == a.node


def test_wrong_cookie_is_refused_and_logged(cluster: Cluster) -> None:
    a, b = cluster.start("a"), cluster.start("b")
    w = cluster.start("w")
    w.eval("erlang:set_cookie(node(), not_the_cookie).")
    assert w.eval(f"net_adm:ping('{a.node}').") == "pang"
    assert a.eval("nodes().") == []
    # as stock says it (the BEAM's logger), and the port program's own line
    assert a.logged("rejected", w.node), a.log_text()[-2000:]
    assert a.logged("refusing a link from", w.node, "wrong cookie"), a.log_text()[-2000:]
    assert w.logged("refuses our link: wrong cookie"), w.log_text()[-2000:]
    # nothing crashed: the same nodes still talk to good peers
    assert b.eval(f"net_adm:ping('{a.node}').") == "pong"
    assert a.eval("maps:get(restarts, py_dist:info()).") == 0
    assert w.alive() and a.alive()


@pytest.mark.parametrize("proto", ["inet_tcp", "py"])
def test_a_per_node_cookie_admits_that_node(cluster: Cluster, proto: str) -> None:
    """erlang:set_cookie(Node, C) on a before Node, whose own cookie is C,
    dials a (OTP's differing_cookies): a admits it with C, as stock does,
    and still refuses another node with C."""
    a = cluster.start("a", proto=proto)
    other = f"other_{proto.replace('_', '')}"
    a.eval(f"true = erlang:set_cookie('{other}@127.0.0.1', its_own_cookie), ok.")
    o = cluster.start(other, proto=proto)
    o.eval("erlang:set_cookie(node(), its_own_cookie).")
    assert o.eval(f"net_adm:ping('{a.node}').") == "pong"
    assert o.eval(f"rpc:call('{a.node}', erlang, node, []).") == a.node
    w = cluster.start(f"w_{proto.replace('_', '')}", proto=proto)
    w.eval("erlang:set_cookie(node(), its_own_cookie).")
    assert w.eval(f"net_adm:ping('{a.node}').") == "pang"


def test_reconnect_over_a_live_link_needs_no_epmd(cluster: Cluster) -> None:
    a, b = cluster.start("a"), cluster.start("b")
    assert b.eval(f"net_adm:ping('{a.node}').") == "pong"
    assert b.eval(f"erlang:disconnect_node('{a.node}').") is True
    assert cluster.epmd is not None
    cluster.epmd.terminate()
    cluster.epmd.wait(5)
    # the ZeroMQ link outlived the Erlang connection: b finds a through it
    assert b.eval(f"net_adm:ping('{a.node}').") == "pong"
    # without a link, and without epmd, there is nothing to find a node by
    assert b.eval("net_adm:ping('nobody@127.0.0.1').") == "pang"


def test_the_carriers_processes_answer_sys(cluster: Cluster) -> None:
    """sys:get_state/1 works on the port owner and on a connection's
    controller, as on any OTP process (operators and OTP's own tests
    look at them so)."""
    a, b = cluster.start("a"), cluster.start("b")
    assert b.eval(f"net_adm:ping('{a.node}').") == "pong"
    assert a.eval("element(1, sys:get_state(py_dist_port)).") == "state"
    assert a.eval(f"""
        erts_debug:set_internal_state(available_internal_state, true),
        Ctrl = erts_debug:get_internal_state({{dist_ctrl, '{b.node}'}}),
        element(1, sys:get_state(Ctrl)).""") == "out"
    # and it still carries the connection
    assert a.eval(f"rpc:call('{b.node}', erlang, node, []).") == b.node


def test_socket_options_as_net_kernel_sees_them(cluster: Cluster) -> None:
    """net_kernel:setopts/getopts, new connections and one connection:
    nodelay is kept and reported (OTP's erl_distribution_SUITE:setopts);
    options of TCP sockets the BEAM does not have are refused."""
    a, b = cluster.start("a"), cluster.start("b")
    assert a.eval("net_kernel:setopts(new, [{nodelay, false}]).") == "ok"
    assert a.eval(f"net_adm:ping('{b.node}').") == "pong"
    get = f"net_kernel:getopts('{b.node}', [nodelay])."
    assert a.eval(get) == ("ok", [("nodelay", False)])  # new connections took it
    assert a.eval(f"net_kernel:setopts('{b.node}', [{{nodelay, true}}]).") == "ok"
    assert a.eval(get) == ("ok", [("nodelay", True)])
    assert a.eval(f"net_kernel:setopts('{b.node}', [{{sndbuf, 4096}}]).") == (
        "error", "enotsup")
    assert a.eval("net_kernel:setopts(new, [{priority, 1}]).") == ("error", "enotsup")
    assert a.eval("net_kernel:getopts('nobody@127.0.0.1', [nodelay]).") == (
        "error", "noconnection")
