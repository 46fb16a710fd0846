"""The network-namespace harness: a line a - b - c where a cannot reach c.

Stock distribution (inet_tcp) shows the limits are real: a reaches b, b
reaches c, but a cannot reach c, since nothing routes between the links.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from pydist_tools.cluster import Cluster, netns, pid_alive


@pytest.mark.usefixtures("need_netns")
def test_line_addresses_and_reachability(tmp_path: Path) -> None:
    started = time.monotonic()
    with netns.Line(["a", "b", "c"]) as line:
        created = time.monotonic() - started
        names = [line.ns(n) for n in "abc"]
        assert all(ns.startswith(netns.prefix()) for ns in names)
        assert set(names) <= set(netns.list_namespaces())
        assert line.addresses("a") == ["10.77.1.1"]
        assert line.addresses("b") == ["10.77.1.2", "10.77.2.1"]
        assert line.addresses("c") == ["10.77.2.2"]
        assert line.address("b") == "10.77.1.2"
        assert line.exec_prefix("a") == ["ip", "netns", "exec", names[0]]
        # nothing listens on port 9: refused counts as reachable, no route not
        assert line.probe("a", line.address("b"), 9) == "refused"
        assert line.can_connect("a", line.address("b"), 9)
        assert line.can_connect("c", line.addresses("b")[1], 9)
        assert line.probe("a", line.address("c"), 9) == "unreachable"
        assert not line.can_connect("a", line.address("c"), 9)
        assert not line.can_connect("a", line.addresses("b")[1], 9)  # b's far side
        assert not line.can_connect("c", line.address("a"), 9)
    assert netns.leftovers() == []
    print(f"creating a 3-namespace line took {created:.3f}s")


@pytest.mark.usefixtures("need_netns")
def test_stock_nodes_in_a_line(tmp_path: Path) -> None:
    with netns.Line(["a", "b", "c"]) as line, Cluster(tmp_path / "cluster") as c:
        # Without -connect_all false, global (OTP 25+, prevent_overlapping_
        # partitions) sees that a and c cannot connect and makes b drop c.
        a, b, cc = (c.start(n, "-connect_all", "false", proto="inet_tcp",
                            netns=line.ns(n), host=line.address(n)) for n in "abc")
        assert a.node == "a@10.77.1.1"
        assert set(c.netns_epmds) == {line.ns(n) for n in "abc"}
        # Popen's pid is erl's own (ip netns exec execs), in the namespace
        for n in (a, b, cc):
            assert Path(f"/proc/{n.pid}/comm").read_text().strip() != "ip"
            assert (Path(f"/proc/{n.pid}/ns/net").readlink()
                    != Path("/proc/self/ns/net").readlink())
        for epmd in c.netns_epmds.values():
            assert Path(f"/proc/{epmd.pid}/comm").read_text().strip() == "epmd"
        # each registered with the epmd of its own namespace
        for n, short in ((a, "a"), (b, "b"), (cc, "c")):
            assert n.eval("{ok, Ns} = net_adm:names(), [list_to_atom(N) || {N, _} <- Ns].") \
                == [short]
        # b's epmd answers on b's address only from a neighbour
        epmd_port = c.epmd_port
        assert line.probe("a", line.address("b"), epmd_port) == "connected"
        assert line.probe("a", line.address("c"), epmd_port) == "unreachable"

        assert a.eval(f"net_adm:ping('{b.node}').") == "pong"
        assert b.eval(f"net_adm:ping('{cc.node}').") == "pong"
        t0 = time.monotonic()
        assert a.eval(f"net_adm:ping('{cc.node}').") == "pang"
        pang_took = time.monotonic() - t0
        assert sorted(b.eval("nodes().")) == sorted([a.node, cc.node])
        # stock distribution does not route: a never gets to c, not even via b
        a.eval("timer:sleep(500).")
        assert a.eval("nodes().") == [b.node]
        assert cc.eval("nodes().") == [b.node]
        pids = [n.pid for n in (a, b, cc)] + [e.pid for e in c.netns_epmds.values()]
    assert netns.leftovers() == []
    assert [p for p in pids if pid_alive(p)] == []
    print(f"a -> c pang after {pang_took:.3f}s")


@pytest.mark.usefixtures("need_netns")
def test_line_cleans_up_after_errors() -> None:
    with pytest.raises(RuntimeError, match="boom"), netns.Line(["x", "y"]) as line:
        assert line.can_connect("x", line.address("y"), 9)
        raise RuntimeError("boom")
    assert netns.leftovers() == []
    # a failure half way through creating the line deletes what was made
    with pytest.raises(netns.NetnsError, match="addr add"), netns.Line(["x", "y"], base="10.300"):
        pass
    assert netns.leftovers() == []
