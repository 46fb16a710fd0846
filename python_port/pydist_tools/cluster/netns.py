"""Linux network namespaces in a line, for tests that need real routing limits.

``Line(["a", "b", "c"])`` makes one namespace per name and joins consecutive
ones with a veth pair, each pair on its own /24::

    a  10.77.1.1 ---- 10.77.1.2  b  10.77.2.1 ---- 10.77.2.2  c

IP forwarding is off in every namespace and there is no default route, so
``a`` cannot reach ``c`` at all: a packet for 10.77.2.2 leaves ``a`` with
"network unreachable".  Namespaces have their own network stacks, so the
same subnets in another run's namespaces do not clash; the namespace names
carry our pid (``pd<pid>-<seq>-<name>``) so parallel runs never share one.
Traffic only ever goes to loopback or these veth links: nothing is routed
to the host's interfaces.

Processes started with :meth:`Line.exec_prefix` (``ip netns exec <ns> ...``)
keep their pid, since ``ip netns exec`` execs the command.  Deleting a
namespace does not stop the processes inside it (they keep its network stack
alive), so stop them first: with :class:`pydist_tools.cluster.Cluster`, the Line
must outlive the Cluster::

    with netns.Line(["a", "b", "c"]) as line, Cluster() as c:
        ...

Everything needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN) and iproute2's ``ip``;
:func:`unavailable` says why it cannot work here.
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Sequence
from types import TracebackType

BASE = "10.77"  # pair k (from 1) is BASE.k.0/24, left end .1, right end .2
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")
_seq = itertools.count()
_seq_lock = threading.Lock()
_unavailable: tuple[str | None] | None = None  # cached answer of unavailable()


class NetnsError(RuntimeError):
    pass


def prefix() -> str:
    """What every namespace this process creates is named with."""
    return f"pd{os.getpid()}-"


def _run(*cmd: str, timeout: float = 30.0) -> str:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=True)
    except FileNotFoundError as e:
        raise NetnsError(f"{cmd[0]} not found: {e}") from None
    except subprocess.CalledProcessError as e:
        raise NetnsError(
            f"{' '.join(cmd)} failed (exit {e.returncode}): "
            f"{(e.stderr or e.stdout or '').strip()}") from None
    except subprocess.TimeoutExpired:
        raise NetnsError(f"{' '.join(cmd)} did not finish in {timeout}s") from None
    return done.stdout


def exec_prefix(ns: str) -> list[str]:
    """Prefix a command with this to run it inside namespace ``ns``."""
    return ["ip", "netns", "exec", ns]


def list_namespaces() -> list[str]:
    """Names of all named network namespaces (``ip netns list``)."""
    return [line.split()[0] for line in _run("ip", "netns", "list").splitlines()
            if line.strip()]


def leftovers() -> list[str]:
    """Namespaces of this process still present (there should be none)."""
    return [ns for ns in list_namespaces() if ns.startswith(prefix())]


def reap_stale() -> list[str]:
    """Delete namespaces left by runs that died (``pd<pid>-`` of a dead pid)."""
    reaped = []
    for ns in list_namespaces():
        m = re.match(r"^pd(\d+)-", ns)
        if m is None or int(m.group(1)) == os.getpid():
            continue
        try:
            os.kill(int(m.group(1)), 0)
            continue  # its run is alive (or the pid is someone else's now)
        except ProcessLookupError:
            pass
        except PermissionError:
            continue
        _run("ip", "netns", "del", ns)
        reaped.append(ns)
    return reaped


def unavailable() -> str | None:
    """None when namespaces work here, else why not; the answer is cached.

    Tries for real: adds a throwaway namespace, raises a veth pair and runs
    a command inside it, then deletes it.
    """
    global _unavailable
    if _unavailable is None:
        _unavailable = (_probe(),)
    return _unavailable[0]


def _probe() -> str | None:
    if not sys.platform.startswith("linux"):
        return f"network namespaces need Linux, not {sys.platform}"
    if shutil.which("ip") is None:
        return "iproute2's `ip` is not installed (apt-get install iproute2)"
    if os.geteuid() != 0:
        return "network namespaces need root (CAP_SYS_ADMIN, CAP_NET_ADMIN)"
    ns = f"{prefix()}probe{next(_seq)}"
    try:
        _run("ip", "netns", "add", ns)
    except NetnsError as e:
        return f"cannot create a network namespace: {e}"
    try:
        _run("ip", "-n", ns, "link", "add", "p0", "type", "veth", "peer", "name", "p1")
        _run(*exec_prefix(ns), "true")
    except NetnsError as e:
        return f"network namespaces are not usable: {e}"
    finally:
        try:
            _run("ip", "netns", "del", ns)
        except NetnsError as e:
            return f"cannot delete a network namespace: {e}"
    return None


# Runs inside a namespace; says how a TCP connect went.
_PROBE = """
import errno, socket, sys
addr, port, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
try:
    socket.create_connection((addr, port), timeout=timeout).close()
    print("connected")
except ConnectionRefusedError:
    print("refused")
except (socket.timeout, TimeoutError):
    print("timeout")
except OSError as e:
    print("unreachable" if e.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH)
          else "error " + str(e))
"""


def probe(ns: str, address: str, port: int, timeout: float = 2.0) -> str:
    """Try a TCP connect from inside ``ns``: "connected", "refused",
    "unreachable", "timeout", or "error <text>"."""
    out = _run(*exec_prefix(ns), sys.executable, "-c", _PROBE, address, str(port),
               str(timeout), timeout=timeout + 30)
    return out.strip()


class Net:
    """Namespaces joined by veth pairs, one per link of ``links`` (pairs of
    names); link k (from 1) is the subnet ``{base}.k.0/24``, its first end
    ``.1`` and its second ``.2``. Deletes them all on exit."""

    def __init__(self, names: Sequence[str], links: Sequence[tuple[str, str]],
                 base: str = BASE) -> None:
        names = list(names)
        if len(set(names)) != len(names):
            raise ValueError(f"names must be distinct: {names}")
        if not 1 <= len(names) <= 250 or len(links) > 250:
            raise ValueError("a net has 1 to 250 namespaces and at most 250 links")
        for n in names:
            if not _NAME.match(n):
                raise ValueError(f"bad namespace name {n!r}")
        for left, right in links:
            if left not in names or right not in names or left == right:
                raise ValueError(f"bad link {left!r}-{right!r}")
        self.names = names
        self.links = list(links)
        self.base = base
        with _seq_lock:
            seq = next(_seq)
        self._ns = {n: f"{prefix()}{seq}-{n}" for n in names}
        self._addresses: dict[str, list[str]] = {n: [] for n in names}
        for k, (left, right) in enumerate(self.links, start=1):
            self._addresses[left].append(f"{base}.{k}.1")
            self._addresses[right].append(f"{base}.{k}.2")
        self._created: list[str] = []

    # --- set up and tear down ---------------------------------------------------

    def create(self) -> None:
        try:
            for n in self.names:
                ns = self._ns[n]
                _run("ip", "netns", "add", ns)
                self._created.append(ns)
                _run("ip", "-n", ns, "link", "set", "lo", "up")
                # Off by default in a new namespace; say so anyway, in case
                # net.core.devconf_inherit_init_net copies the host's setting.
                _run(*exec_prefix(ns), "sh", "-c",
                     "echo 0 > /proc/sys/net/ipv4/ip_forward")
            for k, (left, right) in enumerate(self.links, start=1):
                lns, rns = self._ns[left], self._ns[right]
                # both ends are made inside the namespaces: no host interface,
                # so no clash with other runs' interface names
                lif, rif = self.interfaces(k)
                _run("ip", "-n", lns, "link", "add", lif, "type", "veth",
                     "peer", "name", rif, "netns", rns)
                _run("ip", "-n", lns, "addr", "add", f"{self.base}.{k}.1/24", "dev", lif)
                _run("ip", "-n", rns, "addr", "add", f"{self.base}.{k}.2/24", "dev", rif)
                _run("ip", "-n", lns, "link", "set", lif, "up")
                _run("ip", "-n", rns, "link", "set", rif, "up")
        except BaseException:
            self.delete()
            raise

    def delete(self) -> None:
        """Delete every namespace made here (their veth pairs go with them)."""
        errors = []
        while self._created:
            ns = self._created.pop()
            try:
                _run("ip", "netns", "del", ns)
            except NetnsError as e:
                errors.append(str(e))
        if errors:
            raise NetnsError("; ".join(errors))

    def __enter__(self) -> Net:
        self.create()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            self.delete()
        except NetnsError:
            if exc is None:
                raise  # do not hide the error that brought us here

    # --- queries ----------------------------------------------------------------

    def ns(self, name: str) -> str:
        """The namespace's real name (as for ``ip netns``)."""
        return self._ns[name]

    def addresses(self, name: str) -> list[str]:
        """Its IPv4 addresses: on the link to the left, then to the right."""
        return list(self._addresses[name])

    def address(self, name: str) -> str:
        """Its primary (first) address."""
        addresses = self._addresses[name]
        if not addresses:
            raise ValueError(f"{name} has no links, so no address but loopback")
        return addresses[0]

    def exec_prefix(self, name: str) -> list[str]:
        return exec_prefix(self._ns[name])

    @staticmethod
    def interfaces(k: int) -> tuple[str, str]:
        """The veth names of link ``k`` at its first and its second end."""
        return f"r{k}", f"l{k}"

    def set_link(self, k: int, up: bool) -> None:
        """Link ``k`` down at its first end (the cable pulled: no FIN, what
        crosses it is lost) or up again."""
        left, _ = self.links[k - 1]
        _run("ip", "-n", self._ns[left], "link", "set", self.interfaces(k)[0],
             "up" if up else "down")

    def probe(self, from_name: str, address: str, port: int, timeout: float = 2.0) -> str:
        return probe(self._ns[from_name], address, port, timeout)

    def can_connect(self, from_name: str, address: str, port: int,
                    timeout: float = 2.0) -> bool:
        """Whether a TCP connect from inside ``from_name`` reaches the address:
        connected or refused count as reachable; no route or timeout do not."""
        result = self.probe(from_name, address, port, timeout)
        if result.startswith("error"):
            raise NetnsError(f"connect from {from_name} to {address}:{port}: {result}")
        return result in ("connected", "refused")


class Line(Net):
    """Namespaces in a line: link k joins the k-th and the (k+1)-th, so each
    has its address on the link to the left, then on the one to the right."""

    def __init__(self, names: Sequence[str], base: str = BASE) -> None:
        names = list(names)
        super().__init__(names, list(itertools.pairwise(names)), base)
