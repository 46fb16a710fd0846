"""Edge networks, with real nodes in network namespaces made here: a link
that flaps beside a stable path is dampened (see Routing in the README).
Skipped, with the reason, where namespaces cannot be made."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from pydist_tools.cluster import Cluster, ErlNode, netns, wait_routes

#: the port every node listens on; each namespace has its own
PORT = 9200
#: a flap penalty that halves in 10 s, not the default 5: with 2 s down
#: and 1.8 s up the default decays to just over the suppress threshold by
#: the fourth failure (2.14 against 2), and a failure the link was not yet
#: back up for counts nothing, so the default made this test depend on
#: reconnect timing (it failed about one run in three)
DAMPING = ("-py_dist", "flap_half_life", "10000")


def via(node: ErlNode, dest: ErlNode) -> str:
    routes = node.eval(f"[V || #{{dest := D, via := V}} <- py_dist:routes(), "
                       f"D =:= <<\"{dest.node}\">>].")
    return routes[0].decode() if routes else "none"


@pytest.mark.usefixtures("need_netns")
def test_a_flapping_link_beside_a_stable_path(tmp_path: Path) -> None:
    """A ring a-b-c-d in namespaces, each link its own veth pair; a reaches
    c through b or d (equal cost: b by name). The a-b cable is pulled for
    2 s and put back for 2 s, ten times, while a streams numbered messages
    to c: after the first failures a routes to c through d even while a-b
    is up, every message arrives in order, and nobody sees a nodedown."""
    ring = [("a", "b"), ("b", "c"), ("c", "d"), ("d", "a")]
    with netns.Net("abcd", ring) as net, Cluster(tmp_path / "cluster") as cl:
        # each dials the next round the ring, at its address on their link
        nodes: dict[str, ErlNode] = {}
        names = {n: f"{n}@{net.address(n)}" for n in "abcd"}
        for k, (left, right) in enumerate(ring, start=1):
            far = f"{net.base}.{k}.2"
            nodes[left] = cl.start(
                left, "-py_dist", "listen_port", str(PORT), *DAMPING,
                "-py_dist", "neighbours",
                f"[{{'{names[right]}', #{{endpoint => {{\"{far}\", {PORT}}}}}}}]",
                netns=net.ns(left), host=net.address(left))
        a, c = nodes["a"], nodes["c"]
        for node in nodes.values():
            wait_routes(node, 3, degree=2)
        assert a.eval(f"net_adm:ping('{c.node}').") == "pong"
        assert via(a, c) == names["b"]
        a.eval("persistent_term:put(pd_watch, pd_agent:watch_nodes()).")
        count = 40 * 500
        c.eval(f"persistent_term:put(pd_recv, pd_agent:ordered_receiver(pd_ordered, "
               f"{{1, {count}}})).")
        a.eval(f"""spawn(fun() ->
            [begin
                 [{{pd_ordered, '{c.node}'}} ! {{1, B * 500 + I}} || I <- lists:seq(1, 500)],
                 timer:sleep(100)
             end || B <- lists:seq(0, 39)] end), ok.""")
        # after each failure: a's route to c, whether a-b is up, and whether
        # a has damped a link yet
        seen = []
        for _ in range(10):
            net.set_link(1, False)
            time.sleep(2)
            net.set_link(1, True)
            time.sleep(1.8)
            ab = a.eval(f"lists:keyfind('{names['b']}', 1, py_dist:neighbours()).")
            damped_yet = a.eval("maps:get(stats, maps:get(port, py_dist:info())).").get(
                b"links_damped", 0) >= 1
            seen.append((via(a, c), ab == (names["b"], "up"), damped_yet))
        print("a routes to c, a-b up, a-b damped, each time a-b is back:", seen)
        result = c.eval("persistent_term:get(pd_recv) ! {get, self()}, "
                        "receive {result, R} -> R after 60000 -> timeout end.", timeout=90)
        assert result == ("ok", 1)
        assert a.eval("pd_agent:nodedowns(persistent_term:get(pd_watch)).") == []
        damped = a.eval("maps:get(stats, maps:get(port, py_dist:info())).").get(
            b"links_damped", 0)
        assert damped >= 1, seen
        # up again, but kept out: a-b damped by the sixth failure (the fourth
        # when every failure counts; one that comes before the link is back
        # up counts nothing, and lets the penalty decay), and from the sixth
        # look on a routes to c through d every time, with a-b up at three
        # looks at least. Earlier looks say little on a loaded machine: a
        # route through d there may be a-b not back yet, or a's routes not
        # settled, and one through b a penalty that decayed in between.
        first = next((i for i, (_, _, damped_yet) in enumerate(seen) if damped_yet), len(seen))
        assert first <= 5, seen
        assert all(route == names["d"] for route, _, _ in seen[5:]), seen
        assert sum(ab_up for _, ab_up, _ in seen[5:]) >= 3, seen
        assert a.eval(f"lists:keyfind('{names['b']}', 1, py_dist:neighbours()).") == (
            names["b"], "up")
