"""What ``py_dist:info/0`` and ``py_dist:topology/0`` show: the node's
links, channels, counters and routes as Erlang maps.

Read-only views, apart from the state machine so that the shapes the
Erlang side (and ``pydist info``) reads are in one place. Structure keys
are atoms the Erlang side names; counter names stay binaries, so no new
atom is ever made from them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pydist.core.channels import Channel, Link
from pydist.core.etf import Atom
from pydist.core.router import Router


def info(links: Iterable[Link], channels: Iterable[Channel],
         stats: Mapping[str, int], process_lanes: int = 0) -> dict[Atom, Any]:
    """The port program's view, for ``py_dist:info/0``."""
    return {
        Atom("process_lanes"): process_lanes,
        Atom("links"): [
            {Atom("peer"): ln.peer or b"", Atom("up"): ln.up,
             Atom("dialled"): ln.dialled, Atom("channels"): len(ln.channels)}
            for ln in links
        ],
        Atom("channels"): [channel(ch) for ch in channels],
        Atom("stats"): {k.encode(): v for k, v in sorted(stats.items())},
    }


def channel(ch: Channel) -> dict[Atom, Any]:
    assert ch.sender is not None and ch.receiver is not None and ch.outbox is not None
    assert ch.budget is not None
    min_rtt = ch.budget.min_rtt
    return {Atom("inflight_budget"): ch.budget.limit,
            Atom("min_rtt_us"): -1 if min_rtt is None else int(min_rtt * 1e6),
            Atom("chan"): ch.chan, Atom("peer"): ch.peer, Atom("epoch"): ch.epoch,
            Atom("initiator"): ch.initiator, Atom("paused"): ch.paused,
            Atom("unacked_bytes"): ch.sender.bytes,
            Atom("reorder_bytes"): ch.receiver.buffered_bytes,
            Atom("next_seq"): ch.sender.next_seq, Atom("expected"): ch.receiver.expected,
            Atom("queued_bytes"): ch.outbox.queued_bytes, Atom("flows"): ch.outbox.flows}


def topology(name: bytes | None, router: Router, now: float) -> dict[Atom, Any]:
    """``py_dist:topology/0``: the link-state database and the routes."""
    topo = router.topology(now)
    return {
        Atom("node"): name or b"",
        Atom("lsdb"): [
            {Atom("origin"): origin, Atom("seq"): seq, Atom("age_left"): int(left * 1000),
             Atom("neighbours"): [(n, c) for n, c in nbrs], Atom("endpoint"): endpoint}
            for origin, seq, left, nbrs, endpoint in topo["lsdb"]  # type: ignore[attr-defined]
        ],
        Atom("routes"): [
            {Atom("dest"): dest, Atom("via"): via, Atom("cost"): cost, Atom("static"): static}
            for dest, via, cost, static in topo["routes"]  # type: ignore[attr-defined]
        ],
    }
