"""Impaired links between network namespaces: random loss and rate limits.

This machine's kernel has no ``netem`` qdisc, so each impairment is made
from what it has (delay and jitter are a user-space relay of our own,
:mod:`pydist_tools.cluster.relay`):

- **loss**: iptables' ``statistic`` match in random mode drops each packet
  that enters or leaves an interface with probability ``p``, inside the
  namespace that owns the interface. TCP sees what a lossy radio link
  shows it: segments and acks lost, retransmissions, stalls.
- **rate**: a token bucket filter (``tc qdisc ... tbf``) on the egress of
  an interface; put one on each end of a veth pair to limit both
  directions.

Every rule lives in a namespace made by :class:`~pydist_tools.cluster.netns.Net`
and goes with it, so nothing is left on the host; :func:`clear` removes
them earlier (to heal a link in the middle of a test).
"""

from __future__ import annotations

import shutil

from pydist_tools.cluster.netns import NetnsError, _run, exec_prefix

#: the comment every rule of ours carries, so clear() removes only those
TAG = "pydist-impair"


def unavailable() -> str | None:
    """None when loss and rate limits can be made here, else why not."""
    for tool, package in (("iptables", "iptables"), ("tc", "iproute2")):
        if shutil.which(tool) is None:
            return f"`{tool}` is not installed (apt-get install {package}; scripts/setup does)"
    return None


def loss(ns: str, iface: str, probability: float) -> None:
    """Drop each packet in or out of ``iface`` (in namespace ``ns``) with
    ``probability``: both directions of the link lose that share."""
    if not 0 <= probability < 1:
        raise ValueError(f"a loss probability is in [0, 1), not {probability}")
    if probability == 0:
        return
    for chain, flag in (("INPUT", "-i"), ("OUTPUT", "-o")):
        _iptables(ns, "-A", chain, flag, iface, "-m", "statistic", "--mode", "random",
                  "--probability", f"{probability:.6f}", "-m", "comment", "--comment", TAG,
                  "-j", "DROP")


def dropped(ns: str) -> int:
    """Packets our loss rules in ``ns`` dropped so far."""
    total = 0
    for chain in ("INPUT", "OUTPUT"):
        out = _iptables(ns, "-L", chain, "-v", "-x", "-n")
        for line in out.splitlines():
            if TAG in line and "DROP" in line:
                total += int(line.split()[0])
    return total


def rate(ns: str, iface: str, mbit: float, burst_bytes: int = 64 * 1024,
         queue_ms: int = 200) -> None:
    """Limit what leaves ``iface`` to ``mbit`` megabits a second; a packet
    that would wait more than ``queue_ms`` in the bucket's queue is dropped,
    as at a router with that much buffer."""
    if mbit <= 0:
        raise ValueError(f"a rate is positive, not {mbit}")
    _run(*exec_prefix(ns), "tc", "qdisc", "replace", "dev", iface, "root", "tbf",
         "rate", f"{int(mbit * 1000)}kbit", "burst", str(burst_bytes),
         "latency", f"{queue_ms}ms")


def clear(ns: str, iface: str) -> None:
    """Remove our loss rules and rate limit from ``iface``: a clean link again."""
    for chain, flag in (("INPUT", "-i"), ("OUTPUT", "-o")):
        out = _iptables(ns, "-S", chain)
        for line in out.splitlines():
            words = line.split()
            if TAG in line and flag in words and words[words.index(flag) + 1] == iface:
                _iptables(ns, "-D", *words[1:])
    try:
        _run(*exec_prefix(ns), "tc", "qdisc", "del", "dev", iface, "root")
    except NetnsError:
        pass  # no limit there: the default qdisc cannot be deleted


def _iptables(ns: str, *args: str) -> str:
    # -w: wait for the xtables lock rather than fail beside another run
    return _run(*exec_prefix(ns), "iptables", "-w", "5", *args)
