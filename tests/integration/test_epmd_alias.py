"""A host only the -epmd_module knows: select/1 asks it, as stock does."""

from __future__ import annotations

import subprocess
from pathlib import Path

from pydist_tools.cluster import Cluster

HELPER = Path(__file__).with_name("pd_alias_epmd.erl")


def test_a_host_known_only_to_the_epmd_module(cluster: Cluster, tmp_path: Path) -> None:
    ebin = tmp_path / "ebin"
    ebin.mkdir()
    subprocess.run(["erlc", "-o", str(ebin), str(HELPER)], check=True)
    args = ("-pa", str(ebin), "-epmd_module", "pd_alias_epmd")
    a = cluster.start("a", *args)
    b = cluster.start("b", *args, host="alias.test")
    assert b.node == "b@alias.test"
    assert a.eval("element(1, inet:getaddr(\"alias.test\", inet)).") == "error"  # not DNS
    assert a.eval("net_adm:ping('b@alias.test').") == "pong"
    assert a.eval("rpc:call('b@alias.test', erlang, node, []).") == "b@alias.test"
    assert b.eval("nodes().") == [a.node]
