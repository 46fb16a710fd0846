"""Releases under test: built from the examples, started by their own
start scripts with a Python that has nothing installed, stopped by pid, and
attached to with their own remote shells through a terminal."""

from __future__ import annotations

import contextlib
import itertools
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from pydist_tools.cluster import ErlNode, reap

from .helpers import ping_until_pong


def bare_python(tmp_path: Path) -> Path:
    """A Python that can import neither ``pydist`` nor its dependencies (no
    site processing, so no site-packages and no editable install): as on a
    machine that has only ``python3``; what the port program needs must
    come from the release."""
    wrapper = tmp_path / "python"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" -S "$@"\n')
    wrapper.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    for module in ("pydist", "zmq", "nacl", "erlang", "click"):
        # not from the checkout, whose erlang/ would import as a namespace package
        probe = subprocess.run([str(wrapper), "-c", f"import {module}"], env=env,
                               cwd=tmp_path, capture_output=True)
        assert probe.returncode != 0, f"{wrapper} can import {module} by itself"
    return wrapper


def release_env(base: dict[str, str]) -> dict[str, str]:
    """``base`` without what would let the port program find the packages
    of this checkout's Python."""
    return {k: v for k, v in base.items() if k not in ("PYTHONPATH", "ERL_FLAGS")}


class Releases:
    """Release VMs started by their start scripts; stopped by pid, with the
    port programs they ran."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.procs: list[subprocess.Popen[bytes]] = []
        self.port_pids: list[int] = []

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        """Start a VM in the foreground of its own session (the start
        scripts exec the VM, so the pid is the VM's)."""
        log = (self.tmp_path / f"{name}.log").open("wb")
        self.procs.append(subprocess.Popen(
            argv, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True))

    def up(self, observer: ErlNode, node: str) -> None:
        """Wait until ``observer`` reaches ``node``; note its port program."""
        assert ping_until_pong(observer, node) == "pong", self.logs()
        self.port_pids.append(observer.eval(
            f"maps:get(os_pid, rpc:call('{node}', py_dist, info, []))."))

    def talk(self, observer: ErlNode, nodes: Sequence[str], module: str) -> None:
        """Each node is up on py_dist's distribution (its own, from its
        start script), and each calls the other's ``module:greet/1``."""
        for node in nodes:
            self.up(observer, node)
            assert observer.eval(f"rpc:call('{node}', init, get_argument, "
                                 f"[proto_dist]).") == ("ok", [[b"py"]])
        for here, there in itertools.pairwise([*nodes, nodes[0]]):
            greeting = observer.eval(
                f"rpc:call('{here}', rpc, call, ['{there}', {module}, greet, [hi]]).")
            assert greeting == ("hello", there, "hi")
            assert there in observer.eval(f"rpc:call('{here}', erlang, nodes, []).")

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in self.tmp_path.glob("*.log"))

    def stop(self) -> None:
        for proc in self.procs:  # SIGTERM: the VM stops as with init:stop()
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        for pid in self.port_pids:  # the port programs end with their VM
            reap(pid, 5)


class Terminal:
    """A program run on a pseudo-terminal, as a person runs a remote shell:
    IEx and the Erlang shell attach to a remote node only on a terminal (one
    that termcap knows: on a "dumb" one IEx falls back to a local shell)."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.master, slave = os.openpty()
        self.proc = subprocess.Popen(argv, env={**env, "TERM": "vt100"}, stdin=slave,
                                     stdout=slave, stderr=slave, start_new_session=True)
        os.close(slave)
        self.seen = b""

    def expect(self, text: bytes, timeout: float = 60) -> bool:
        """Read until ``text`` was output (True) or ``timeout`` passed (a
        bound for a hung shell, not a measurement)."""
        deadline = time.monotonic() + timeout
        while text not in self.seen and time.monotonic() < deadline:
            ready, _, _ = select.select([self.master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(self.master, 4096)
                except OSError:  # the program ended: nothing more will come
                    break
                if not chunk:
                    break
                self.seen += chunk
        return text in self.seen

    def send(self, line: str) -> None:
        os.write(self.master, line.encode() + b"\n")

    def close(self) -> None:
        """Stop the shell's own VM by pid (its port program ends with it)."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        os.close(self.master)


@contextlib.contextmanager
def terminal(argv: list[str], env: dict[str, str]) -> Iterator[Terminal]:
    term = Terminal(argv, env)
    try:
        yield term
    finally:
        term.close()
