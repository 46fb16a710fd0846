"""A masquerading router between network namespaces: nodes behind NAT.

:func:`masquerade` turns a namespace of a :class:`~pydist_tools.cluster.netns.Net`
into a home or factory router: it forwards what its inside sends out
through ``outside`` under its own address (iptables' MASQUERADE), lets in
only the answers to that (conntrack's ESTABLISHED/RELATED), and drops and
counts everything else that comes from outside, so a test can say that
nobody tried to dial a node behind it (:func:`unsolicited`). The nodes
inside reach out with a default route through it (:func:`default_route`).

The rules live in the namespaces and go with them.
"""

from __future__ import annotations

from pydist_tools.cluster.netns import _run, exec_prefix

TAG = "pydist-nat-unsolicited"


def masquerade(ns: str, outside: str) -> None:
    """Make ``ns`` a NAT router whose interface ``outside`` faces the world."""
    _run(*exec_prefix(ns), "sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward")
    _iptables(ns, "-t", "nat", "-A", "POSTROUTING", "-o", outside, "-j", "MASQUERADE")
    _iptables(ns, "-A", "FORWARD", "-i", outside, "-m", "conntrack", "--ctstate",
              "ESTABLISHED,RELATED", "-j", "ACCEPT")
    # what remains from outside is someone dialling in: refused, counted
    _iptables(ns, "-A", "FORWARD", "-i", outside, "-m", "comment", "--comment", TAG,
              "-j", "DROP")


def default_route(ns: str, via: str) -> None:
    """Everything ``ns`` does not reach directly goes to ``via``."""
    _run("ip", "-n", ns, "route", "add", "default", "via", via)


def route(ns: str, subnet: str, via: str) -> None:
    """Packets from ``ns`` for ``subnet`` go to ``via`` (a router there)."""
    _run("ip", "-n", ns, "route", "add", subnet, "via", via)


def unsolicited(ns: str) -> int:
    """Packets from outside the router in ``ns`` dropped because nobody
    inside had asked for them: attempts to dial a node behind it."""
    out = _iptables(ns, "-L", "FORWARD", "-v", "-x", "-n")
    return sum(int(line.split()[0]) for line in out.splitlines() if TAG in line)


def _iptables(ns: str, *args: str) -> str:
    return _run(*exec_prefix(ns), "iptables", "-w", "5", *args)
