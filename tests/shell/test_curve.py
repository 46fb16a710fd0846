"""Key files on disk and the ZAP answers that bind a link's key to a name."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import zmq
from hypothesis import given
from hypothesis import strategies as st

from pydist.core.trust import TrustError, curve_public, decode_key
from pydist.shell.curve import ZAP_VERSION, keygen, load, zap_reply


def _cluster(directory: Path, *names: str) -> Path:
    lines = [keygen(directory, n)[2] for n in names]
    authorized = directory / "authorized_keys"
    authorized.write_text("# the cluster\n\n" + "\n".join(f"  {ln}  " for ln in lines) + "\n")
    return authorized


def test_keygen_writes_a_private_secret_and_the_authorized_line(tmp_path: Path) -> None:
    public, secret, line = keygen(tmp_path, "a@h")
    assert oct(secret.stat().st_mode & 0o777) == "0o600"
    assert public.read_text().strip() == line and line.startswith("a@h ")
    assert line.split()[1] not in secret.read_text()
    authorized = _cluster(tmp_path, "b@h")
    authorized.write_text(authorized.read_text() + line + "\n")
    trust = load(str(secret), str(authorized))
    assert trust.name == b"a@h" and trust.registered(b"a@h")
    assert trust.public == decode_key(line.split()[1])
    # the CurveZMQ form of b's key, for dialling b; none for a stranger
    assert trust.curve_by_name[b"b@h"] == curve_public(
        decode_key((tmp_path / "b@h.key").read_text().split()[1]))
    assert b"c@h" not in trust.curve_by_name


def test_keygen_never_replaces_a_key(tmp_path: Path) -> None:
    _, secret, _ = keygen(tmp_path, "a@h")
    before = secret.read_bytes()
    with pytest.raises(TrustError, match="exists"):
        keygen(tmp_path, "a@h")
    assert secret.read_bytes() == before


def test_a_secret_others_may_read_is_refused(tmp_path: Path) -> None:
    authorized = _cluster(tmp_path, "a@h")
    secret = tmp_path / "a@h.key_secret"
    os.chmod(secret, 0o644)
    with pytest.raises(TrustError, match="chmod 600"):
        load(str(secret), str(authorized))


def test_missing_files_are_a_clear_error(tmp_path: Path) -> None:
    authorized = _cluster(tmp_path, "a@h")
    with pytest.raises(TrustError, match="cannot read"):
        load(str(tmp_path / "nope"), str(authorized))
    with pytest.raises(TrustError, match="cannot read"):
        load(str(tmp_path / "a@h.key_secret"), str(tmp_path / "nope"))


def test_derived_keys_make_a_curvezmq_link(tmp_path: Path) -> None:
    """The X25519 form of the node keys is a working CurveZMQ pair: a
    client with b's key reaches a server with a's."""
    authorized = _cluster(tmp_path, "a@h", "b@h")
    a = load(str(tmp_path / "a@h.key_secret"), str(authorized))
    b = load(str(tmp_path / "b@h.key_secret"), str(authorized))
    ctx = zmq.Context()
    try:
        server, client = ctx.socket(zmq.PAIR), ctx.socket(zmq.PAIR)
        server.curve_server = True
        server.curve_secretkey, server.curve_publickey = a.curve_secret, a.curve_public
        port = server.bind_to_random_port("tcp://127.0.0.1")
        client.curve_secretkey, client.curve_publickey = b.curve_secret, b.curve_public
        client.curve_serverkey = b.curve_by_name[b"a@h"]
        client.connect(f"tcp://127.0.0.1:{port}")
        client.send(b"over curve")
        assert server.poll(5000) and server.recv() == b"over curve"
    finally:
        ctx.destroy(linger=0)


def _request(mechanism: bytes, *credentials: bytes) -> list[bytes]:
    return [ZAP_VERSION, b"7", b"", b"127.0.0.1", b"", mechanism, *credentials]


def test_zap_binds_a_known_key_to_its_name(tmp_path: Path) -> None:
    authorized = _cluster(tmp_path, "a@h", "b@h")
    a = load(str(tmp_path / "a@h.key_secret"), str(authorized))
    reply = zap_reply(_request(b"CURVE", a.curve_by_name[b"b@h"]), a.names_by_curve)
    assert reply[1:5] == [b"7", b"200", b"OK", b"b@h"]


@pytest.mark.parametrize("request_", [
    _request(b"CURVE", bytes(32)),  # unknown key
    _request(b"CURVE", b"short"),
    _request(b"NULL"),
    _request(b"PLAIN", b"user", b"password"),
    [b"0.9", b"7"],
    [],
])
def test_zap_refuses_everything_else(request_: list[bytes]) -> None:
    reply = zap_reply(request_, {})
    assert reply[0] == ZAP_VERSION and reply[2] in (b"400", b"500") and reply[4] == b""


@given(st.lists(st.binary(max_size=40), max_size=9))
def test_zap_answers_any_request_without_raising(request_: list[bytes]) -> None:
    reply = zap_reply(request_, {})
    assert len(reply) == 6 and reply[2] != b"200"
