"""Malformed distribution data on a connection takes that connection down
the way stock distribution does, with erts's own report, and nothing else.

The bad bytes are written into the sending side's connection as OTP's
distribution suites write them: through the controller (py_dist's
``{send, From, Ref, Data}`` hook; for stock, the connection's port), so
they reach the receiving runtime exactly as a broken peer's would.
"""

from __future__ import annotations

import re
import time

import pytest

from pydist_tools.cluster import Cluster, ErlNode

CASES = {
    # a control message that is no valid external term
    "bad_term": "[<<131, 68, 0>>, <<131, 104, 2, 97, 6, 200, 200, 200>>]",
    # a control tuple of an operation that does not exist
    "bad_op": "[<<131, 68, 0>>, term_to_binary({{250, self(), x}})]",
    # a later fragment of a message whose first fragment never came
    "orphan_fragment": "[<<131, 70, 77:64, 1:64, 0>>, <<131, 106>>]",
}


def _inject(a: ErlNode, b: ErlNode, data: str) -> tuple[str, object]:
    """Write ``data`` into a's connection to b; what a then sees of b."""
    result: tuple[str, object] = a.eval(f"""
        B = '{b.node}',
        erlang:monitor_node(B, true),
        erts_debug:set_internal_state(available_internal_state, true),
        Data = {data},
        Sent = case erts_debug:get_internal_state({{dist_ctrl, B}}) of
                   Port when is_port(Port) ->
                       true = erlang:port_command(Port, Data), ok;
                   Ctrl when is_pid(Ctrl) ->
                       Ref = make_ref(),
                       Ctrl ! {{send, self(), Ref, Data}},
                       receive {{Ref, R}} -> R after 5000 -> no_answer end
               end,
        Down = receive {{nodedown, B}} -> down after 10000 -> up end,
        {{Sent, Down}}.""")
    return result


def _reports(node: ErlNode, since: int, names: dict[str, str]) -> list[str]:
    """The first line of each report ``node`` logged after offset
    ``since``, node names and numbers made generic."""
    lines = node.log_text()[since:].splitlines()
    firsts = [lines[i + 1] for i, line in enumerate(lines[:-1]) if "REPORT====" in line]
    out = []
    for text in firsts:
        for real, generic in names.items():
            text = text.replace(real, generic)
        out.append(re.sub(r"\d+", "N", text))
    return out


@pytest.mark.parametrize("case", sorted(CASES))
def test_malformed_data_takes_down_only_its_connection_as_stock_does(
        cluster: Cluster, case: str) -> None:
    seen = {}
    for proto in ("inet_tcp", "py"):
        a, b, c = (cluster.start(f"{n}_{case}_{proto.replace('_', '')}", proto=proto)
                   for n in "abc")
        for peer in (b, c):
            assert a.eval(f"net_adm:ping('{peer.node}').") == "pong"
        since = len(b.log_text())
        assert _inject(a, b, CASES[case]) == ("ok", "down"), proto
        time.sleep(0.5)  # erts writes its report as it closes the connection
        seen[proto] = _reports(b, since, {a.node: "A", b.node: "B"})
        # the other connection never noticed; the broken one comes back (it
        # may have already: global reconnects at once, with either carrier)
        assert c.node in a.eval("nodes()."), proto
        assert a.eval(f"rpc:call('{c.node}', erlang, node, []).") == c.node
        assert a.eval(f"net_adm:ping('{b.node}').") == "pong"
        assert a.eval(f"rpc:call('{b.node}', erlang, node, []).") == b.node
    # erts reports a corrupt term; a stray fragment it drops without a word
    assert bool(seen["inet_tcp"]) == (case != "orphan_fragment"), seen
    assert seen["py"] == seen["inet_tcp"]


#: a header that installs three atoms in the receiver's atom cache, then a
#: control message that refers to an entry never installed (OTP's
#: distribution_SUITE, bad_dist_ext_control)
ATOM_CACHE_HEADER = """begin
    <<131, Replace/binary>> = term_to_binary(replace),
    <<131, Ctl/binary>> = term_to_binary({6, self(), '', replace}),
    S = byte_size(Ctl) - byte_size(Replace),
    <<Begin:S/binary, Replace/binary>> = Ctl,
    A1 = <<"fake header atom 1">>, A2 = <<"atom 2">>, A3 = <<"atom 3">>,
    <<131, Msg/binary>> = term_to_binary({a, message}),
    [[131, $D, 3, 16#88, 16#08, 0, byte_size(A1), A1, 1, byte_size(A2), A2,
      2, byte_size(A3), A3], Begin, [$R, 137], Msg]
end"""

WATCH_REASONS = """spawn(fun() ->
    net_kernel:monitor_nodes(true, [nodedown_reason]),
    register(pd_downs, self()),
    Loop = fun L(Acc) ->
               receive
                   {nodedown, N, Info} ->
                       L([{N, proplists:get_value(nodedown_reason, Info)} | Acc]);
                   {get, From} -> From ! {downs, lists:reverse(Acc)}, L(Acc);
                   _ -> L(Acc)
               end
           end,
    Loop([]) end), ok."""


def _downs(node: ErlNode) -> object:
    return node.eval("pd_downs ! {get, self()}, receive {downs, D} -> D after 5000 -> none end.")


def test_atom_cache_references_kill_the_connection_not_the_vm(cluster: Cluster) -> None:
    """A py_dist connection has no atom cache (erts keeps none for a
    process controller), and OTP 25 would crash the whole VM writing
    through it: such a header takes down its connection with the reasons
    stock gives (killed here, connection_closed there), in erts's words,
    and the node and its other connections live on."""
    reasons = {}
    for proto in ("inet_tcp", "py"):
        tag = proto.replace("_", "")
        a, b, c = (cluster.start(f"{n}_cache_{tag}", proto=proto) for n in "abc")
        for node in (a, b):
            node.eval(WATCH_REASONS)
        assert b.eval(f"net_adm:ping('{c.node}').") == "pong"
        assert a.eval(f"net_adm:ping('{b.node}').") == "pong"
        since = len(b.log_text())
        _, down = _inject(a, b, ATOM_CACHE_HEADER)
        assert down == "down", proto
        time.sleep(0.5)
        assert b.alive(), proto
        reasons[proto] = (_downs(a), _downs(b))
        assert b.eval(f"rpc:call('{c.node}', erlang, node, []).") == c.node
        assert a.eval(f"net_adm:ping('{b.node}').") == "pong"
        if proto == "py":
            assert any("got a corrupted distribution header from" in r
                       for r in _reports(b, since, {}))
    generic = {proto: ([r for _, r in seen_a], [r for _, r in seen_b])
               for proto, (seen_a, seen_b) in reasons.items()}
    assert generic["py"] == generic["inet_tcp"] == (["connection_closed"], ["killed"])
