"""CurveZMQ on every link: node keys, the authorized-keys file, and the
ZAP handler that binds a peer's key to the one node name it may use.

A node's key pair is a pair of ZeroMQ certificate files written by
``pydist keygen NAME`` (``NAME.key`` public, ``NAME.key_secret`` secret).
The authorized-keys file lists the nodes of the cluster, one per line::

    # node name       public key (Z85, as in NAME.key)
    a@host.example    rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7

A node dials a neighbour only if the file has the neighbour's key (it
becomes the ZeroMQ server key, so only the holder of the secret key can
answer), and accepts a link only from a key the file has; the name that
key is registered for is the ZAP user id of every message on the link,
which the node compares with the name the peer's HELLO claims.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import zmq
import zmq.auth
from zmq.utils import z85

log = logging.getLogger("pydist.curve")

ZAP_ENDPOINT = "inproc://zeromq.zap.01"
ZAP_VERSION = b"1.0"


class KeyFileError(ValueError):
    """A key file or authorized-keys file that cannot be used."""


class Keys:
    """This node's key pair and the cluster's authorized keys."""

    def __init__(self, secret_file: str, authorized_file: str) -> None:
        try:
            public, secret = zmq.auth.load_certificate(secret_file)
        except (OSError, ValueError) as exc:
            raise KeyFileError(f"cannot read the key pair {secret_file!r}: {exc}") from exc
        if secret is None:
            raise KeyFileError(f"{secret_file!r} holds no secret key")
        self.public: bytes = public
        self.secret: bytes = secret
        self.by_name, self.by_key = parse_authorized(Path(authorized_file).read_text())

    def server_key(self, peer: bytes) -> bytes | None:
        """The key a neighbour must prove it holds; None if it has none here."""
        return self.by_name.get(peer)


def parse_authorized(text: str) -> tuple[dict[bytes, bytes], dict[bytes, bytes]]:
    """Name -> public key (Z85) and public key (raw 32 bytes) -> name."""
    by_name: dict[bytes, bytes] = {}
    by_key: dict[bytes, bytes] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):  # Z85 keys may hold a '#' themselves
            continue
        fields = line.split()
        if len(fields) != 2 or len(fields[1]) != 40:
            raise KeyFileError(f"authorized keys, line {number}: expected 'node@host KEY' "
                            f"with a 40-character Z85 key")
        name, key = fields[0].encode(), fields[1].encode()
        try:
            raw = z85.decode(key)
        except (ValueError, KeyError) as exc:
            raise KeyFileError(f"authorized keys, line {number}: not a Z85 key") from exc
        if name in by_name or raw in by_key:
            raise KeyFileError(f"authorized keys, line {number}: {fields[0]} or its key "
                            f"listed twice")
        by_name[name] = key
        by_key[raw] = name
    return by_name, by_key


def zap_reply(request: list[bytes], by_key: dict[bytes, bytes]) -> list[bytes]:
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
    name = by_key.get(credentials[0])
    if name is None:
        log.error("refusing a link from %s: its key %s is not in the authorized keys",
                  address.decode(errors="replace"),
                  z85.encode(credentials[0]).decode())
        return [ZAP_VERSION, request_id, b"400", b"unknown key", b"", b""]
    return [ZAP_VERSION, request_id, b"200", b"OK", name, b""]


def serve(sock: zmq.Socket[Any], by_key: dict[bytes, bytes]) -> None:
    """Answer the ZAP requests waiting on ``sock`` (a REP at ZAP_ENDPOINT)."""
    while int(sock.get(zmq.EVENTS)) & zmq.POLLIN:
        sock.send_multipart(zap_reply(sock.recv_multipart(zmq.NOBLOCK), by_key))


def keygen(directory: Path, name: str) -> tuple[Path, Path, str]:
    """Write NAME.key and NAME.key_secret; return their paths and the
    authorized-keys line for this node."""
    directory.mkdir(parents=True, exist_ok=True)
    public_file, secret_file = zmq.auth.create_certificates(str(directory), name)
    public, _ = zmq.auth.load_certificate(public_file)
    Path(secret_file).chmod(0o600)
    return Path(public_file), Path(secret_file), f"{name} {public.decode()}"
