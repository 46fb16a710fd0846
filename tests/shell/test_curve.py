"""The authorized-keys file and the ZAP answers that bind keys to names."""

from __future__ import annotations

from pathlib import Path

import pytest
import zmq
from hypothesis import given
from hypothesis import strategies as st
from zmq.utils import z85

from pydist.shell.curve import ZAP_VERSION, KeyFileError, Keys, keygen, parse_authorized, zap_reply


def _key() -> bytes:
    public, _ = zmq.curve_keypair()
    return public


def test_keygen_and_authorized_file_round_trip(tmp_path: Path) -> None:
    _, secret, line = keygen(tmp_path, "a@h")
    _, _, other = keygen(tmp_path, "b@h")
    assert oct(secret.stat().st_mode & 0o777) == "0o600"
    authorized = tmp_path / "authorized"
    authorized.write_text(f"# comment\n\n{line}\n  {other}  \n")
    keys = Keys(str(secret), str(authorized))
    assert keys.server_key(b"b@h") == other.split()[1].encode()
    assert keys.by_key[z85.decode(keys.public)] == b"a@h"
    assert keys.server_key(b"c@h") is None


def test_a_key_may_hold_a_hash_sign() -> None:
    while b"#" not in (key := _key()):
        pass
    by_name, _ = parse_authorized(f"a@h {key.decode()}\n")
    assert by_name == {b"a@h": key}


@pytest.mark.parametrize("text", [
    "a@h\n",
    "a@h tooshort\n",
    "a@h " + "x" * 40 + " extra\n",
    "a@h " + "\x7f" * 40 + "\n",
])
def test_malformed_lines_are_refused(text: str) -> None:
    with pytest.raises(KeyFileError):
        parse_authorized(text)


def test_a_name_or_key_listed_twice_is_refused() -> None:
    key, other = _key().decode(), _key().decode()
    with pytest.raises(KeyFileError):
        parse_authorized(f"a@h {key}\nb@h {key}\n")
    with pytest.raises(KeyFileError):
        parse_authorized(f"a@h {key}\na@h {other}\n")


@given(st.text(max_size=300))
def test_any_text_parses_or_is_refused_cleanly(text: str) -> None:
    try:
        by_name, by_key = parse_authorized(text)
    except KeyFileError:
        return
    assert len(by_name) == len(by_key)


def _request(mechanism: bytes, *credentials: bytes) -> list[bytes]:
    return [ZAP_VERSION, b"7", b"", b"127.0.0.1", b"", mechanism, *credentials]


def test_zap_binds_a_known_key_to_its_name() -> None:
    key = _key()
    _, by_key = parse_authorized(f"a@h {key.decode()}\n")
    reply = zap_reply(_request(b"CURVE", z85.decode(key)), by_key)
    assert reply[1:5] == [b"7", b"200", b"OK", b"a@h"]


@pytest.mark.parametrize("request_", [
    _request(b"CURVE", bytes(32)),  # unknown key
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
