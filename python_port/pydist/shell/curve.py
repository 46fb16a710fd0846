"""Node keys on disk, and CurveZMQ on every link.

``pydist keygen NAME`` writes ``NAME.key_secret`` (the node's Ed25519
seed, mode 0600) and ``NAME.key`` (its line for the authorized-keys file).
The key's X25519 form is the node's CurveZMQ key (:mod:`pydist.core.trust`):
a node dials a neighbour only with the neighbour's key as the server key
(so only the holder of its secret can answer), and accepts a link only
from a key the authorized-keys file lists. This module answers ZeroMQ's
authentication requests (ZAP) for that: the name the key is registered
for becomes the user id of every message on the link, which the core
compares with the name the peer's HELLO claims.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path
from typing import Any

import zmq

from pydist.core.trust import (
    Trust,
    TrustError,
    encode_key,
    format_line,
    generate,
    parse_authorized,
    parse_secret,
)

log = logging.getLogger("pydist.curve")

ZAP_ENDPOINT = "inproc://zeromq.zap.01"
ZAP_VERSION = b"1.0"


def load(secret_file: str, authorized_file: str) -> Trust:
    """This node's key and the cluster's authorized keys, from their files."""
    try:
        mode = os.stat(secret_file).st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise TrustError(f"{secret_file} may be read by others "
                             f"(mode {stat.S_IMODE(mode):o}); chmod 600 it")
        name, seed = parse_secret(Path(secret_file).read_text())
        authorized = parse_authorized(Path(authorized_file).read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise TrustError(f"cannot read the node's keys: {exc}") from exc
    return Trust(name, seed, authorized)


def zap_reply(request: list[bytes], names_by_curve: dict[bytes, bytes]) -> list[bytes]:
    """The answer to one ZAP request: 200 with the node name as user id for a
    CURVE client whose key is authorized, 400 otherwise."""
    if len(request) < 6 or request[0] != ZAP_VERSION:
        request_id = request[1] if len(request) > 1 else b""
        return [ZAP_VERSION, request_id, b"500", b"bad ZAP request", b"", b""]
    request_id, address, mechanism = request[1], request[3], request[5]
    credentials = request[6:]
    if mechanism != b"CURVE" or len(credentials) != 1:
        log.error("refusing a link from %s: mechanism %s, not CURVE",
                  address.decode(errors="replace"), mechanism.decode(errors="replace"))
        return [ZAP_VERSION, request_id, b"400", b"CURVE only", b"", b""]
    name = names_by_curve.get(credentials[0])
    if name is None:
        log.error("refusing a link from %s: its key (CurveZMQ form %s) is not in the "
                  "authorized keys", address.decode(errors="replace"),
                  encode_key(credentials[0]) if len(credentials[0]) == 32 else "malformed")
        return [ZAP_VERSION, request_id, b"400", b"unknown key", b"", b""]
    return [ZAP_VERSION, request_id, b"200", b"OK", name, b""]


def serve(sock: zmq.Socket[Any], names_by_curve: dict[bytes, bytes]) -> None:
    """Answer the ZAP requests waiting on ``sock`` (a REP at ZAP_ENDPOINT)."""
    while int(sock.get(zmq.EVENTS)) & zmq.POLLIN:
        sock.send_multipart(zap_reply(sock.recv_multipart(zmq.NOBLOCK), names_by_curve))


def keygen(directory: Path, name: str) -> tuple[Path, Path, str]:
    """Write NAME.key_secret (0600) and NAME.key; return their paths and the
    authorized-keys line for this node. An existing key is never replaced."""
    directory.mkdir(parents=True, exist_ok=True)
    public_file, secret_file = directory / f"{name}.key", directory / f"{name}.key_secret"
    public, seed = generate()
    line = format_line(name, public)
    try:
        fd = os.open(secret_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as exc:
        raise TrustError(f"{secret_file} exists; remove it first to replace the key") from exc
    with os.fdopen(fd, "w") as out:
        out.write(f"# py_dist node key of {name}: keep it on that node only\n"
                  f"{format_line(name, seed)}\n")
    public_file.write_text(f"{line}\n")
    return public_file, secret_file, line
