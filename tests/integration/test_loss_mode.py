"""Loss told to the process (py_dist:loss_mode(notify)) and order per
process: two processes share a connection through a relay that drops one
process's message past repair (every copy of it)."""

from __future__ import annotations

import time

from pydist_tools.cluster import HOST, Cluster, ErlNode
from pydist_tools.cluster.zmtp_filter import ZmtpFilter

from .helpers import COLLECTOR, collected, port_stat

MARKER = b"py_dist-drop-me-past-repair"


def _through_filter(cluster: Cluster, flt_to: ErlNode, b: ErlNode) -> ZmtpFilter:
    """b's one link, to ``flt_to``, dialled through a filter that drops
    what carries MARKER."""
    flt = ZmtpFilter(flt_to.eval("maps:get(listen_port, py_dist:info())."), MARKER)
    assert b.eval(f"py_dist:link('{flt_to.node}', #{{endpoint => {{\"{HOST}\", {flt.port}}}}}).") \
        == "ok"
    deadline = time.monotonic() + 10
    while b.eval(f"net_adm:ping('{flt_to.node}').") != "pong":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    return flt


def _sender(mode: str, to: str) -> str:
    """A process in loss mode ``mode``: a message that the relay drops, and
    60 ms later one it lets through; it answers what it was told."""
    return (f"Self = self(), spawn(fun() -> nodedown = py_dist:loss_mode({mode}), "
            f"{to} ! {{p1, 1}}, {to} ! {{p1, 2, <<\"{MARKER.decode()}\">>}}, timer:sleep(60), "
            f"{to} ! {{p1, 3}}, "
            "Told = receive {py_dist_lost, N, C} -> {N, C} after 8000 -> none end, "
            "Self ! {p1, Told} end)")


#: a gap reported after 3 s, not 1 s: the other process's messages, sent
#: 0.2 s after the gap opened, have that long to show they are not held
#: behind it, however loaded the machine
SLOW_GAP = ("-py_dist", "gap_timeout", "6000")


def test_notify_gives_up_one_process_message_and_the_others_pass_it(cluster: Cluster) -> None:
    a, b = cluster.start("a", *SLOW_GAP), cluster.start("b", *SLOW_GAP)
    a.eval(COLLECTOR)
    with _through_filter(cluster, a, b):
        b.eval(f"erlang:monitor_node('{a.node}', true), ok.")
        a.eval(f"erlang:monitor_node('{b.node}', true), ok.")
        to = f"{{inbox, '{a.node}'}}"
        b.eval(_sender("notify", to) + ", ok.")
        time.sleep(0.2)  # p1's third message waits at a for the second
        b.eval(f"[{to} ! {{p2, I}} || I <- lists:seq(1, 20)], ok.")
        told = b.eval("receive {p1, T} -> T after 15000 -> timeout end.", timeout=20)
        assert told == (a.node, 1)
        deadline = time.monotonic() + 5
        while len(collected(a)) < 22:
            assert time.monotonic() < deadline, collected(a)
            time.sleep(0.05)
        got = collected(a)
        p1 = [m for m in got if m[0] == "p1"]
        assert p1 == [("p1", 1), ("p1", 3)]  # the second given up, the order kept
        # the other process's messages were not held up behind the gap:
        # all of them came before p1's third, which waited for it
        assert got.index(("p1", 3)) == len(got) - 1
        assert [m for m in got if m[0] == "p2"] == [("p2", i) for i in range(1, 21)]
        assert b.eval("receive {nodedown, _} = D -> D after 0 -> none end.") == "none"
        assert a.eval("receive {nodedown, _} = D -> D after 0 -> none end.") == "none"
        assert port_stat(b, "messages_given_up") == 1
        assert port_stat(a, "gaps_reported") >= 1
        # the connection carries on
        assert b.eval(f"rpc:call('{a.node}', erlang, node, []).") == a.node


def test_without_notify_a_loss_is_a_nodedown_then_a_nodeup(cluster: Cluster) -> None:
    a, b = cluster.start("a"), cluster.start("b")
    a.eval(COLLECTOR)
    with _through_filter(cluster, a, b):
        b.eval(f"erlang:monitor_node('{a.node}', true), ok.")
        to = f"{{inbox, '{a.node}'}}"
        b.eval(_sender("nodedown", to) + ", ok.")
        assert b.eval("receive {nodedown, N} -> N after 15000 -> timeout end.", timeout=20) \
            == a.node
        assert b.eval("receive {p1, T} -> T after 15000 -> timeout end.", timeout=20) == "none"
        assert port_stat(b, "messages_given_up") == 0
        assert b.eval(f"net_adm:ping('{a.node}').") == "pong"  # nodeup on the next use
        assert [m for m in collected(a) if m[0] == "p1"] == [("p1", 1)]
