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
