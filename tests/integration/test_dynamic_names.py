"""Nodes with a dynamic name (OTP 23's name given by the peer in the
handshake, which OTP 25's ``erl -remsh`` uses when started without
``-sname``) connect over py_dist as over stock distribution."""

from __future__ import annotations

import contextlib
import os
import pty
import select
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pydist.launch import erl_flags
from pydist_tools.cluster import Cluster, reap

HOSTNAME = socket.gethostname()


def _children(pid: int) -> list[int]:
    out: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            out += [int(c) for c in (task / "children").read_text().split()]
    return out


@contextlib.contextmanager
def _started(cmd: list[str], env: dict[str, str], **kwargs: object) -> Iterator[
        subprocess.Popen[bytes]]:
    """An erl started here, and stopped here by its pid, with its port
    program (which ends on its own when the VM's pipe closes)."""
    proc = subprocess.Popen(cmd, env=env, start_new_session=True, **kwargs)  # type: ignore[call-overload]
    try:
        yield proc
    finally:
        ports = _children(proc.pid)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        for pid in ports:
            reap(pid, 10)


def _erl(cluster: Cluster, proto: str, *args: str) -> list[str]:
    flags = erl_flags() if proto == "py" else []
    return ["erl", *flags, "-setcookie", cluster.cookie or "", "-start_epmd", "false", *args]


@pytest.mark.parametrize("proto", ["inet_tcp", "py"])
def test_a_node_named_by_its_peer_connects(cluster: Cluster, proto: str) -> None:
    target = cluster.start(f"dyn_{proto.replace('_', '')}", proto=proto, host=HOSTNAME)
    expr = (f"{{ok, _}} = net_kernel:start([undefined, shortnames]), "
            f"true = net_kernel:connect_node('{target.node}'), "
            f"Seen = rpc:call('{target.node}', erlang, nodes, [hidden]), "
            f"io:format(\"NAMED ~s ~p~n\", [node(), lists:member(node(), Seen)]), halt().")
    with _started(_erl(cluster, proto, "-noshell", "-eval", expr), cluster.env,
                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT) as proc:
        output, _ = proc.communicate(timeout=60)
    line = next((ln for ln in output.decode(errors="replace").splitlines()
                 if ln.startswith("NAMED ")), output.decode(errors="replace")[-2000:])
    _, name, seen = line.split()
    assert name.endswith(f"@{HOSTNAME}") and not name.startswith("undefined"), line
    assert seen == "true", line  # the target knows the node by the name it gave


@pytest.mark.parametrize("proto", ["inet_tcp", "py"])
def test_a_node_that_does_not_listen_connects(cluster: Cluster, proto: str) -> None:
    """``-dist_listen false``: the node keeps its name but never listens
    (so it is hidden); its first connection names its port program."""
    target = cluster.start(f"nl_{proto.replace('_', '')}", proto=proto, host=HOSTNAME)
    expr = (f"true = net_kernel:connect_node('{target.node}'), "
            f"Seen = rpc:call('{target.node}', erlang, nodes, [hidden]), "
            f"io:format(\"LISTENLESS ~s ~p~n\", [node(), lists:member(node(), Seen)]), "
            f"halt().")
    name = f"nolisten_{proto.replace('_', '')}"
    with _started(_erl(cluster, proto, "-sname", name, "-dist_listen", "false", "-noshell",
                       "-eval", expr), cluster.env,
                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT) as proc:
        output, _ = proc.communicate(timeout=60)
    text = output.decode(errors="replace")
    line = next((ln for ln in text.splitlines() if ln.startswith("LISTENLESS ")), text[-2000:])
    assert line == f"LISTENLESS {name}@{HOSTNAME} true", line


def test_erl_remsh_attaches(cluster: Cluster) -> None:
    """``erl -remsh`` with py_dist's flags and no name of its own: the shell
    runs on the target (through a terminal, as a person would use it)."""
    target = cluster.start("dyn_remsh", proto="py", host=HOSTNAME)
    master, slave = pty.openpty()
    out = b""
    try:
        with _started(_erl(cluster, "py", "-remsh", target.node), cluster.env,
                      stdin=slave, stdout=slave, stderr=slave):
            os.close(slave)
            slave = -1
            deadline = time.monotonic() + 60
            asked = False
            while b"REMOTE " not in out and time.monotonic() < deadline:
                ready, _, _ = select.select([master], [], [], 0.2)
                if ready:
                    with contextlib.suppress(OSError):
                        out += os.read(master, 65536)
                if not asked and b"1> " in out:
                    os.write(master, b'io:format("REMOTE ~s~n", [node()]).\n')
                    asked = True
            time.sleep(0.2)
            with contextlib.suppress(OSError):
                out += os.read(master, 65536)
    finally:
        os.close(master)
        if slave >= 0:
            os.close(slave)
    text = out.decode(errors="replace")
    assert f"REMOTE {target.node}" in text, text[-2000:]
