"""Local clusters of real ``erl`` nodes, for the demo, the tests and the benchmark.

Each node runs ``pd_agent`` (next to this file), which evaluates Erlang
expressions sent over its stdin and answers in the external term format.
Every process started here is stopped here, by its pid: the ``erl`` OS
process, the port program it started, and the private ``epmd``.

A node can run inside a network namespace (see :mod:`pydist_tools.cluster.netns`):
``Cluster.start(..., netns=line.ns("a"), host=line.address("a"))``.  The
cluster then starts an ``epmd`` of its own in that namespace, on the
cluster's epmd port, and stops it with the rest; the namespaces themselves
belong to the ``netns.Line``, which must outlive the cluster::

    with netns.Line(["a", "b"]) as line, Cluster() as c:
        ...
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from pydist.core import etf
from pydist.launch import erl_flags
from pydist_tools.cluster import netns as _netns

AGENT_SRC = Path(__file__).with_name("pd_agent.erl")
HOST = "127.0.0.1"


class NodeError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def compile_agent(out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    beam = out_dir / "pd_agent.beam"
    if not beam.exists() or beam.stat().st_mtime < AGENT_SRC.stat().st_mtime:
        subprocess.run(["erlc", "-o", str(out_dir), str(AGENT_SRC)], check=True)
    return out_dir


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie child of ours still answers kill(0); ask /proc
    with contextlib.suppress(OSError):
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    return True


def reap(pid: int, grace: float) -> None:
    """Give process ``pid`` (a port program, which ends when its VM's pipe
    closes) ``grace`` seconds to end by itself, then kill it."""
    deadline = time.monotonic() + grace
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if pid_alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


class ErlNode:
    """One ``erl`` OS process, driven through ``pd_agent``."""

    def __init__(self, cluster: Cluster, name: str, args: Sequence[str], proto: str,
                 env: dict[str, str], host: str = HOST, netns: str | None = None) -> None:
        self.cluster = cluster
        self.name = name
        self.node = f"{name}@{host}"
        self.proto = proto
        self.netns = netns
        self.log_path = cluster.dir / f"{name}.log"
        self._log = self.log_path.open("a", buffering=1)
        self._answers: dict[int, queue.Queue[bytes]] = {}
        self._lock = threading.Lock()
        self._next = 0
        # proto "py": py_dist flags on the command line; "env": whatever the
        # environment (ERL_FLAGS) says; anything else: stock distribution.
        dist = erl_flags() if proto == "py" else []
        naming = "-name" if "." in host or ":" in host else "-sname"
        cookie = ["-setcookie", cluster.cookie] if cluster.cookie else []
        # with a private epmd, erl must not start (and leave behind) its own
        # (in a namespace the cluster always runs one: see Cluster.start)
        own_epmd = cluster.epmd is not None or netns is not None
        epmd = ["-start_epmd", "false"] if own_epmd else []
        # `ip netns exec` execs erl, so the pid stays erl's own
        prefix = _netns.exec_prefix(netns) if netns is not None else []
        cmd = [*prefix, "erl", "-noshell", naming, self.node, *cookie, *epmd,
               "-pa", str(cluster.agent_dir), *dist, *args, "-eval", "pd_agent:start()"]
        self.proc = subprocess.Popen(
            # stderr (the port program's log among it) goes straight to the log
            # file: on the stdout pipe its lines could cut into an answer.
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log,
            env=env, start_new_session=True)
        self.pid = self.proc.pid
        self._ready = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        if not self._ready.wait(30):
            log = self.log_text()[-2000:]  # before stop() closes the log
            self.stop()
            raise NodeError(f"{self.node} did not start; log: {log}")
        self.port_pid: int | None = None
        if proto in ("py", "env"):
            self.port_pid = self.eval(
                "try maps:get(os_pid, py_dist:info()) catch _:_ -> undefined end.")
            if not isinstance(self.port_pid, int):
                self.port_pid = None

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            if line.startswith("@@R "):
                try:
                    _, ident, hexed = line.split(" ", 2)
                    answer = bytes.fromhex(hexed)
                    answers = self._answers.get(int(ident))
                except ValueError:
                    self._log.write(f"unreadable answer: {line[:200]}\n")
                    continue
                if answers is not None:
                    answers.put(answer)
                continue
            if line == "@@READY":
                self._ready.set()
                continue
            self._log.write(line + "\n")

    def log_text(self) -> str:
        """Everything the node and its port program logged so far."""
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def logged(self, *texts: str, timeout: float = 10.0) -> bool:
        """Whether the log holds every one of ``texts`` within ``timeout``
        seconds: a report reaches the log line by line, as it is written."""
        deadline = time.monotonic() + timeout
        while True:
            log = self.log_text()
            if all(text in log for text in texts):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)

    def eval(self, expr: str, timeout: float = 60.0) -> Any:
        """Evaluate an Erlang expression sequence on the node; return its value."""
        with self._lock:
            self._next += 1
            ident = self._next
            answers: queue.Queue[bytes] = queue.Queue()
            self._answers[ident] = answers
            assert self.proc.stdin is not None
            text = " ".join(expr.split("\n")).strip()
            if not text.endswith("."):
                text += "."
            self.proc.stdin.write(f"{ident} {text}\n".encode())
            self.proc.stdin.flush()
        try:
            raw = answers.get(timeout=timeout)
        except queue.Empty:
            raise NodeError(f"{self.node}: no answer to {expr!r} in {timeout}s") from None
        finally:
            self._answers.pop(ident, None)
        status, value = etf.decode(raw)
        if status != "ok":
            raise NodeError(f"{self.node}: {expr!r} failed: {value!r}")
        return value

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill9(self) -> None:
        os.kill(self.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        """Halt the node, then make sure it and its port program are gone."""
        if self.proc.poll() is None:
            with contextlib.suppress(OSError, ValueError):
                assert self.proc.stdin is not None
                self.proc.stdin.close()  # pd_agent halts on end of file
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.proc.wait(10)
        port_pid = getattr(self, "port_pid", None)
        if port_pid is not None:
            reap(port_pid, 5)
        self._reader.join(5)
        self._log.close()


def wait_routes(node: ErlNode, count: int, degree: int = 1, timeout_ms: int = 20000) -> None:
    """Until ``node`` routes to ``count`` nodes and its link-state database
    shows every node with ``degree`` neighbours or more (2: a ring closed)."""
    result = node.eval(f"""
        Wait = fun W(T) ->
                   #{{routes := Rs, lsdb := Db}} = py_dist:topology(),
                   Degrees = [length(maps:get(neighbours, L)) || L <- Db],
                   case length(Rs) =:= {count} andalso lists:min(Degrees) >= {degree} of
                       true -> ok;
                       _ when T =< 0 -> timeout;
                       _ -> timer:sleep(20), W(T - 20)
                   end
               end,
        Wait({timeout_ms}).""", timeout=timeout_ms / 1000 + 30)
    if result != "ok":
        raise NodeError(f"{node.node}: routes did not converge: {node.eval('py_dist:topology().')}")


class Cluster:
    """Nodes that share a private epmd and a cookie; stops all it started.

    With ``private_epmd=False`` the nodes use the machine's epmd, and with
    ``cookie=None`` the cookie of ``~/.erlang.cookie``: that is how the CLI
    joins a running cluster to look at it.
    """

    def __init__(self, directory: Path | None = None, cookie: str | None = "pydist_cookie",
                 private_epmd: bool = True) -> None:
        self._tmp = None
        if directory is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="pydist-")
            directory = Path(self._tmp.name)
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.cookie = cookie
        self.agent_dir = compile_agent(self.dir / "agent")
        self.env = dict(os.environ)
        self.env.pop("ERL_FLAGS", None)
        self.env.setdefault("HOME", str(self.dir))  # erl refuses to start without one
        self.nodes: list[ErlNode] = []
        self.epmd: subprocess.Popen[bytes] | None = None
        # one epmd per network namespace used, on the same port as self.epmd
        self.netns_epmds: dict[str, subprocess.Popen[bytes]] = {}
        self._epmd_lock = threading.Lock()
        self.epmd_port = int(os.environ.get("ERL_EPMD_PORT", "4369"))
        if private_epmd:
            self.epmd_port = free_port()
            self.epmd = subprocess.Popen(
                ["epmd", "-port", str(self.epmd_port)], stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL, start_new_session=True)
            self.env["ERL_EPMD_PORT"] = str(self.epmd_port)
            self._wait_epmd()

    def _wait_epmd(self) -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(
                    (HOST, self.epmd_port), timeout=0.5):
                return
            time.sleep(0.05)
        raise NodeError("private epmd did not start")

    def start(self, name: str, *args: str, proto: str = "py",
              env: dict[str, str] | None = None, host: str = HOST,
              netns: str | None = None) -> ErlNode:
        """Start a node; with ``netns`` (a namespace's name) inside it.

        ``host`` names the node (``name@host``): in a namespace, one of its
        addresses, so that the other namespaces can reach it.
        """
        if netns is not None:
            self.netns_epmd(netns)
        node = ErlNode(self, name, args, proto, {**self.env, **(env or {})}, host, netns)
        self.nodes.append(node)
        return node

    def netns_epmd(self, ns: str) -> subprocess.Popen[bytes]:
        """The cluster's epmd in namespace ``ns``; started on first use.

        Namespaces have their own network stacks, so it listens on the
        cluster's epmd port there too (also when the nodes outside use the
        machine's epmd: a namespace has none).
        """
        with self._epmd_lock:
            epmd = self.netns_epmds.get(ns)
            if epmd is not None and epmd.poll() is None:
                return epmd
            epmd = subprocess.Popen(
                [*_netns.exec_prefix(ns), "epmd", "-port", str(self.epmd_port)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
            self.netns_epmds[ns] = epmd
            deadline = time.monotonic() + 10
            result = ""
            while time.monotonic() < deadline and epmd.poll() is None:
                result = _netns.probe(ns, HOST, self.epmd_port, timeout=0.5)
                if result == "connected":
                    return epmd
                time.sleep(0.05)
            stop_proc(epmd)
            raise NodeError(f"epmd in namespace {ns} did not start "
                            f"(exit {epmd.returncode}; last connect: {result or 'none'})")

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
        self.nodes.clear()
        for epmd in self.netns_epmds.values():
            stop_proc(epmd)
        self.netns_epmds.clear()
        if self.epmd is not None:
            stop_proc(self.epmd)
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> Cluster:
        # A script stopped with SIGTERM (``timeout``, say) must still stop
        # the nodes it started: turn the signal into an exception that
        # unwinds through __exit__. Only in the main thread, where it can.
        if threading.current_thread() is threading.main_thread() and (
                signal.getsignal(signal.SIGTERM) is signal.SIG_DFL):
            signal.signal(signal.SIGTERM, _raise_exit)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _raise_exit(signum: int, _frame: Any) -> None:
    raise SystemExit(128 + signum)


def stop_proc(proc: subprocess.Popen[Any]) -> None:
    """Stop one process of ours by its pid: SIGTERM, then SIGKILL."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@contextlib.contextmanager
def cluster(directory: Path | None = None) -> Iterator[Cluster]:
    c = Cluster(directory)
    try:
        yield c
    finally:
        c.stop()
