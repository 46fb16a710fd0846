"""What plain Erlang code does across nodes must work unchanged."""

from __future__ import annotations

from pydist_tools.cluster import Cluster


def connected(cluster: Cluster) -> tuple:  # type: ignore[type-arg]
    a, b = cluster.start("a"), cluster.start("b")
    assert b.eval(f"net_adm:ping('{a.node}').") == "pong"
    return a, b


def test_rpc_erpc_and_remote_spawn(cluster: Cluster) -> None:
    a, b = connected(cluster)
    assert b.eval(f"rpc:call('{a.node}', erlang, node, []).") == a.node
    assert b.eval(f"erpc:call('{a.node}', lists, seq, [1, 300]).") == list(range(1, 301))
    assert b.eval(f"""
        Self = self(),
        P = spawn('{a.node}', fun() -> Self ! {{hello_from, node()}} end),
        receive {{hello_from, N}} -> {{node(P), N}} after 5000 -> timeout end.
    """) == (a.node, a.node)
    # an error raised remotely comes back as an error, not a lost reply
    assert b.eval(f"""
        try erpc:call('{a.node}', erlang, error, [boom]) catch error:{{exception, R, _}} -> R end.
    """) == "boom"


def test_registered_name_send(cluster: Cluster) -> None:
    a, b = connected(cluster)
    a.eval("""
        Parent = self(),
        register(inbox, spawn(fun() -> receive M -> register(got, spawn(fun() ->
            receive {get, F} -> F ! M end end)) end end)).
    """)
    b.eval(f"{{inbox, '{a.node}'}} ! {{note, <<\"hello\">>, 42}}.")
    assert a.eval("""
        timer:sleep(50), got ! {get, self()}, receive M -> M after 5000 -> timeout end.
    """) == ("note", b"hello", 42)


def test_links_and_monitors_carry_exit_reasons(cluster: Cluster) -> None:
    a, b = connected(cluster)
    link_reason = b.eval(f"""
        process_flag(trap_exit, true),
        P = spawn_link('{a.node}', fun() -> receive go -> exit({{shutdown, linked}}) end end),
        P ! go,
        receive {{'EXIT', P, R}} -> R after 5000 -> timeout end.
    """)
    assert link_reason == ("shutdown", "linked")
    down_reason = b.eval(f"""
        P = spawn('{a.node}', fun() -> receive go -> exit(monitored_exit) end end),
        Ref = erlang:monitor(process, P),
        P ! go,
        receive {{'DOWN', Ref, process, P, R}} -> R after 5000 -> timeout end.
    """)
    assert down_reason == "monitored_exit"
    # a monitor on a name that is not registered: noproc, through the carrier
    assert b.eval(f"""
        Ref = erlang:monitor(process, {{no_such_name, '{a.node}'}}),
        receive {{'DOWN', Ref, process, _, R}} -> R after 5000 -> timeout end.
    """) == "noproc"


def test_monitor_nodes_sees_nodedown_with_reason(cluster: Cluster) -> None:
    a, b = connected(cluster)
    b.eval(f"persistent_term:put(w, pd_agent:collect_nodedown('{a.node}')).")
    a.eval(f"erlang:disconnect_node('{b.node}').")
    _, reason = b.eval("""
        persistent_term:get(w) ! {get, self()},
        receive {nodedown, R} -> R after 5000 -> timeout end.
    """)
    assert reason == "connection_closed"
    # and the next use connects again
    assert b.eval(f"net_adm:ping('{a.node}').") == "pong"


def test_raw_distribution_data_injected_through_the_controller(cluster: Cluster) -> None:
    """OTP's distribution suites write raw packets into a connection with
    `Ctrl ! {send, From, Ref, Data}` (gen_tcp_dist takes it "for testing
    only"): a REG_SEND so written arrives as a message, and the
    connection carries on. Data: a distribution header with no atom
    cache refs, a REG_SEND control message and the message, both without
    the version byte, as OTP's suites write them."""
    a, b = cluster.start("a"), cluster.start("b")
    b.eval("register(pd_inbox, self()).")
    assert a.eval(f"net_adm:ping('{b.node}').") == "pong"
    assert a.eval(f"""
        erts_debug:set_internal_state(available_internal_state, true),
        Ctrl = erts_debug:get_internal_state({{dist_ctrl, '{b.node}'}}),
        Ref = make_ref(),
        Ext = fun(T) -> <<131, E/binary>> = term_to_binary(T), E end,
        Data = [<<131, 68, 0>>, Ext({{6, self(), '', pd_inbox}}), Ext({{injected, 42}})],
        Ctrl ! {{send, self(), Ref, Data}},
        receive {{Ref, R}} -> R after 5000 -> timeout end.""") == "ok"
    assert b.eval("receive M -> M after 5000 -> nothing end.") == ("injected", 42)
    assert a.eval(f"rpc:call('{b.node}', erlang, node, []).") == b.node
