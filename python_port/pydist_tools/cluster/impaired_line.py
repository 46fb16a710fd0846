"""Three namespaces in a line whose two hops lose, delay and limit traffic.

Used by the edge tests and ``scripts/bench --part edge``::

    a 10.77.1.1 ---- 10.77.1.2 b 10.77.2.1 ---- 10.77.2.2 c
          hop 1 (loss, delay)         hop 2 (loss, delay)

Each hop loses ``loss`` of the packets crossing its veth pair, both ways
(iptables in b's namespace, on both of its interfaces), may be limited to
``rate_mbit`` each way (tbf at both ends), and is delayed by a relay
(:mod:`~pydist_tools.cluster.relay`) at its far end: the relay listens on
that end's address and hands what it holds to the node there over
loopback. So a node that dials through a hop dials its relay's port.

- py_dist: a dials b through hop 1 (``RELAY_PORT`` in b), b dials c
  through hop 2 (``RELAY_PORT`` in c); a reaches c only through b.
- stock ``inet_tcp_dist``, for comparison over the same path: stock a
  dials stock c directly, through both hops' relays chained (hop 1's in
  b hands to hop 2's in c, which hands to stock c on loopback). Stock
  nodes find each other without epmd (``-erl_epmd_port``: every node
  listens on ``STOCK_PORT``), and stock c is named after the address of
  hop 1's relay, where a connection to it starts.

The relays terminate TCP: each TCP connection spans one hop's wire, and
sees that hop's loss with a short round trip (the delay is in the relay,
not in the wire), so TCP repairs a loss sooner than on a real long path.
Both carriers cross the same relays, so they compare fairly.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from types import TracebackType

from pydist_tools.cluster import Cluster, ErlNode, impair, netns, wait_routes
from pydist_tools.cluster.relay import Relay

#: py_dist nodes listen here; each hop's relay for them listens on RELAY_PORT
PORT = 9200
RELAY_PORT = 9201
#: stock nodes listen here (a, and c on loopback); hop 2's stock relay on
#: STOCK_PORT + 1
STOCK_PORT = 9300


class ImpairedLine:
    def __init__(self, loss: float = 0.0, delay_ms: float = 0.0, jitter_ms: float = 0.0,
                 rate_mbit: float | None = None, seed: int = 1,
                 log_dir: Path | None = None) -> None:
        self.loss, self.delay_ms, self.jitter_ms = loss, delay_ms, jitter_ms
        self.rate_mbit, self.seed, self.log_dir = rate_mbit, seed, log_dir
        self.net = netns.Line(["a", "b", "c"])
        self.relays: list[Relay] = []

    # addresses: a's, b's on hop 1 and hop 2, c's
    @property
    def a_addr(self) -> str:
        return self.net.addresses("a")[0]

    @property
    def b_addr(self) -> str:
        return self.net.addresses("b")[0]

    @property
    def c_addr(self) -> str:
        return self.net.addresses("c")[0]

    def __enter__(self) -> ImpairedLine:
        self.net.create()
        try:
            b = self.net.ns("b")
            hop_ifaces = [self.net.interfaces(1)[1], self.net.interfaces(2)[0]]  # b's two
            for iface in hop_ifaces:
                impair.loss(b, iface, self.loss)
            if self.rate_mbit is not None:
                for k in (1, 2):
                    left, right = self.net.links[k - 1]
                    impair.rate(self.net.ns(left), self.net.interfaces(k)[0], self.rate_mbit)
                    impair.rate(self.net.ns(right), self.net.interfaces(k)[1], self.rate_mbit)
            self._relay("b", f"{self.b_addr}:{RELAY_PORT}", f"127.0.0.1:{PORT}", 1)
            self._relay("c", f"{self.c_addr}:{RELAY_PORT}", f"127.0.0.1:{PORT}", 2)
            self._relay("b", f"{self.b_addr}:{STOCK_PORT}", f"{self.c_addr}:{STOCK_PORT + 1}", 3)
            self._relay("c", f"{self.c_addr}:{STOCK_PORT + 1}", f"127.0.0.1:{STOCK_PORT}", 4)
        except BaseException:
            self.close()
            raise
        return self

    def _relay(self, name: str, listen: str, to: str, k: int) -> None:
        log = str(self.log_dir / f"relay{k}.log") if self.log_dir else None
        self.relays.append(Relay(self.net.ns(name), listen, to, self.delay_ms, self.jitter_ms,
                                 seed=self.seed * 10 + k, log=log))

    def close(self) -> None:
        """Relays first (by pid), then the namespaces; nodes in them must be
        stopped already (the Cluster is left before the line)."""
        while self.relays:
            self.relays.pop().stop()
        self.net.delete()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        with contextlib.suppress(netns.NetnsError):
            self.close()

    # --- nodes --------------------------------------------------------------

    def start_py(self, cluster: Cluster, *args: str, prefix: str = "") -> list[ErlNode]:
        """py_dist nodes a, b, c (names prefixed), a linked to b and b to c
        through the hops, with routes converged; ``args`` go to every node."""
        names = {n: f"{prefix}{n}@{addr}" for n, addr in
                 (("a", self.a_addr), ("b", self.b_addr), ("c", self.c_addr))}
        via = {"a": ("b", self.b_addr), "b": ("c", self.c_addr)}
        nodes = []
        for n in "cba":
            nbrs = "[]"
            if n in via:
                far, addr = via[n]
                nbrs = (f"[{{'{names[far]}', #{{endpoint => "
                        f"{{\"{addr}\", {RELAY_PORT}}}}}}}]")
            nodes.append(cluster.start(
                f"{prefix}{n}", "-py_dist", "listen_port", str(PORT),
                "-py_dist", "neighbours", nbrs, *args,
                netns=self.net.ns(n), host=names[n].split("@")[1]))
        nodes.reverse()
        for node in nodes:
            wait_routes(node, 2, timeout_ms=60000)
        return nodes

    def start_stock(self, cluster: Cluster, *args: str, prefix: str = "s") -> list[ErlNode]:
        """Stock nodes a and c; a reaches c directly over both hops."""
        common = ["-erl_epmd_port", str(STOCK_PORT), *args]
        c = cluster.start(f"{prefix}c", *common, "-kernel", "inet_dist_use_interface",
                          "{127,0,0,1}", proto="inet_tcp", netns=self.net.ns("c"),
                          host=self.b_addr)
        a = cluster.start(f"{prefix}a", *common, proto="inet_tcp", netns=self.net.ns("a"),
                          host=self.a_addr)
        return [a, c]
