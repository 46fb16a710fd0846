"""Small helpers the integration tests share."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from pydist.core import admission, frame
from pydist.core.wire import Kind, node_id
from pydist_tools.cluster import HOST, ErlNode


def watch_nodedown(observer: ErlNode, target: ErlNode) -> None:
    """Start watching, on ``observer``, for the next nodedown of ``target``."""
    observer.eval(f"persistent_term:put(w, pd_agent:collect_nodedown('{target.node}')).")


def nodedown(observer: ErlNode, wait_ms: int = 10000) -> Any:
    """What the watcher saw: (time, reason), or "timeout" after ``wait_ms``."""
    return observer.eval(f"""
        persistent_term:get(w) ! {{get, self()}},
        receive {{nodedown, R}} -> R after {wait_ms} -> timeout end.
    """, timeout=wait_ms / 1000 + 10)


def ping_until_pong(observer: ErlNode, node: str, tries: int = 100, every_ms: int = 200) -> Any:
    """``pong`` once ``observer`` reaches ``node`` (a node still starting, or
    coming back), else ``pang`` after ``tries`` attempts."""
    return observer.eval(f"""
        P = fun L(0) -> pang;
                L(K) -> case net_adm:ping('{node}') of
                            pong -> pong;
                            pang -> timer:sleep({every_ms}), L(K - 1)
                        end end,
        P({tries}).""", timeout=tries * every_ms / 1000 + 30)


def hand_hello(sock: Any, name: bytes) -> bytes:
    """Say HELLO as ``name`` on a socket dialled to a node; our nonce."""
    nonce = os.urandom(admission.NONCE_SIZE)
    sock.send_multipart([frame.encode(Kind.HELLO, node_id(name), 0),
                         admission.encode_hello(nonce, name, b"")])
    return nonce


def hand_recv(sock: Any, kinds: tuple[Kind, ...], timeout_ms: int = 5000
              ) -> tuple[Kind, bytes] | None:
    """The next frame of one of ``kinds`` (others skipped), or None."""
    deadline = time.monotonic() + timeout_ms / 1000
    while (left := deadline - time.monotonic()) > 0:
        if not sock.poll(int(left * 1000) + 1):
            return None
        head, payload = frame.split(sock.recv_multipart())
        kind = frame.decode(head).kind
        if kind in kinds:
            return Kind(kind), bytes(payload)
    return None


def hand_admit(sock: Any, name: bytes, cookie: str | None) -> bool:
    """Play node ``name`` dialling a node, as a port program would: HELLO,
    the node's HELLO, our proof of ``cookie``, and the node's proof back.
    Whether the node admitted the link (and proved the cookie too)."""
    nonce = hand_hello(sock, name)
    answer = hand_recv(sock, (Kind.HELLO, Kind.BYE))
    assert answer is not None and answer[0] == Kind.HELLO, answer
    their_nonce, their_name, _ = admission.decode_hello(answer[1])
    key = (cookie or "").encode()
    sock.send_multipart([frame.encode(Kind.PROOF, node_id(name), 0), admission.proof(
        key, admission.DIALLER, name, their_name, nonce, their_nonce)])
    reply = hand_recv(sock, (Kind.PROOF, Kind.BYE))
    return reply is not None and reply[0] == Kind.PROOF and admission.verify(
        key, admission.LISTENER, name, their_name, nonce, their_nonce, reply[1])


def port_stats(node: ErlNode) -> dict[bytes, int]:
    """Every counter of the node's port program."""
    result: dict[bytes, int] = node.eval("maps:get(stats, maps:get(port, py_dist:info())).")
    return result


def port_stat(node: ErlNode, name: str) -> int:
    """One counter of the node's port program (0 if it never counted)."""
    value = node.eval(f"maps:get(<<\"{name}\">>, "
                      "maps:get(stats, maps:get(port, py_dist:info())), 0).")
    assert isinstance(value, int)
    return value


def keygen(directory: Path, node: str) -> str:
    """``pydist keygen``; the node's authorized-keys line."""
    out = subprocess.run([sys.executable, "-m", "pydist", "keygen", node, "--dir",
                          str(directory)], check=True, capture_output=True, text=True)
    return out.stdout.strip()


def keyed(directory: Path, name: str, authorized: Path) -> tuple[str, ...]:
    secret = directory / f"{name}@{HOST}.key_secret"
    return ("-py_dist", "node_key", str(secret), "-py_dist", "authorized_keys", str(authorized))


#: an inbox on a node: keeps every message, answers ``{get, From}``
COLLECTOR = ("register(inbox, spawn(fun L() -> receive {get, F} -> F ! {got, get(m)}, L(); "
             "M -> put(m, [M | case get(m) of undefined -> []; X -> X end]), L() end end)), "
             "ok.")


def collected(node: ErlNode) -> list[Any]:
    """What the node's ``inbox`` (:data:`COLLECTOR`) got, in order."""
    got = node.eval("inbox ! {get, self()}, receive {got, M} -> M after 5000 -> timeout end.")
    return [] if got == "undefined" else list(reversed(got))
