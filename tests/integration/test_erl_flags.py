"""py_dist flags in ERL_FLAGS reach every node, including those peer starts.

That is how a team runs its existing Common Test suites over py_dist.
"""

from __future__ import annotations

from pydist import launch
from pydist_tools.cluster import Cluster


def test_erl_flags_carry_over_to_peer_nodes(cluster: Cluster) -> None:
    env = {"ERL_FLAGS": " ".join(launch.erl_flags())}
    a = cluster.start("a", proto="env", env=env)
    assert isinstance(a.eval("py_dist:info()."), dict)
    node, proto, info, echoed = a.eval("""
        Cookie = atom_to_list(erlang:get_cookie()),
        {ok, Peer, Node} = peer:start_link(#{name => peer_of_a, host => "127.0.0.1",
                                            longnames => true,
                                            args => ["-setcookie", Cookie]}),
        Proto = element(4, element(2, net_kernel:node_info(Node, address))),
        Info = erpc:call(Node, py_dist, info, []),
        Echo = erpc:call(Node, erlang, binary_to_list, [<<"through py_dist">>]),
        peer:stop(Peer),
        {Node, Proto, Info, Echo}.
    """)
    assert node == "peer_of_a@127.0.0.1"
    assert proto == "py"
    assert info["node"] == b"peer_of_a@127.0.0.1"
    assert echoed == b"through py_dist"
