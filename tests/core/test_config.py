"""The port program's settings, as the Erlang side passes them (``key=value``)."""

from __future__ import annotations

import ast
import math
import re
from dataclasses import fields
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pydist.core.config import Config, ConfigError

FAST = settings(max_examples=200, deadline=None)


def test_no_pairs_gives_the_defaults() -> None:
    assert Config.from_pairs([]) == Config()


def test_heartbeat_milliseconds_become_seconds() -> None:
    cfg = Config.from_pairs(["heartbeat_interval=250", "heartbeat_timeout=1500"])
    assert cfg.heartbeat_interval == 0.25
    assert cfg.heartbeat_timeout == 1.5
    assert isinstance(cfg.heartbeat_interval, float)


@FAST
@given(st.integers(0, 10**9))
def test_any_millisecond_count(ms: int) -> None:
    cfg = Config.from_pairs([f"heartbeat_timeout={ms}"])
    assert cfg.heartbeat_timeout == pytest.approx(ms / 1000, rel=1e-12, abs=0)


@pytest.mark.parametrize("key", ["listen_port", "max_frame", "link_hwm", "pipe_size",
                                 "max_links", "max_channels"])
def test_ints(key: str) -> None:
    cfg = Config.from_pairs([f"{key}=4369"])
    value = getattr(cfg, key)
    assert value == 4369 and type(value) is int


@pytest.mark.parametrize(("key", "text"), [
    ("listen_address", "10.1.2.3"), ("listen_address", "::1"), ("log_level", "debug"),
    ("listen_address", "a=b"),  # only the first '=' separates key from value
])
def test_strings(key: str, text: str) -> None:
    assert getattr(Config.from_pairs([f"{key}={text}"]), key) == text


def test_several_pairs_and_the_rest_default() -> None:
    cfg = Config.from_pairs(["listen_port=9000", "log_level=info", "heartbeat_interval=50"])
    assert (cfg.listen_port, cfg.log_level, cfg.heartbeat_interval) == (9000, "info", 0.05)
    assert cfg.max_frame == Config().max_frame
    assert cfg.heartbeat_timeout == Config().heartbeat_timeout


@pytest.mark.parametrize("pair", ["no_such_key=1", "listen_port", "=5", "", "LISTEN_PORT=1",
                                  "heartbeat=100"])
def test_unknown_key(pair: str) -> None:
    with pytest.raises(ConfigError):
        Config.from_pairs([pair])


@pytest.mark.parametrize("pair", ["listen_port=abc", "listen_port=", "max_frame=1.5",
                                  "heartbeat_interval=0.1", "heartbeat_timeout=x",
                                  "max_links=0x10"])
def test_bad_int(pair: str) -> None:
    with pytest.raises(ConfigError):
        Config.from_pairs([pair])


def test_config_error_is_a_value_error() -> None:
    assert issubclass(ConfigError, ValueError)


# --- one source of the keys: erlang/src/py_dist_config.erl ---------------------

ROOT = Path(__file__).resolve().parents[2]
_KEY = re.compile(r"\{(\w+),\s*(string|integer|atom|term),\s*(.+?),\s*(true|false)\}")


def _erlang_keys() -> dict[str, tuple[str, str, bool]]:
    """py_dist_config:keys(): name -> (kind, default as written, handed to Python)."""
    source = (ROOT / "erlang" / "src" / "py_dist_config.erl").read_text()
    body = source[source.index("keys() ->"):source.index("-spec get(")]
    keys = {m[1]: (m[2], m[3].strip(), m[4] == "true") for m in _KEY.finditer(body)}
    assert len(keys) > 30, keys
    return keys


def _erlang_default(kind: str, text: str) -> object:
    if kind == "integer":
        return math.prod(int(factor) for factor in text.split("*"))
    if kind == "string":
        return ast.literal_eval(text)
    return text  # an atom or a term, as written


def test_every_python_key_is_an_erlang_key_with_the_same_default() -> None:
    """Every setting of the port program can be set from Erlang, and both
    sides agree on its default (milliseconds there, seconds here)."""
    erl = _erlang_keys()
    python = {f.name: f for f in fields(Config)}
    assert {k for k, (_, _, passed) in erl.items() if passed} == set(python)
    for name, field in python.items():
        kind, text, _ = erl[name]
        value = _erlang_default(kind, text)
        ours = getattr(Config(), name)
        if field.type == "float":
            assert ours == pytest.approx(value / 1000), name  # type: ignore[operator]
        else:
            assert ours == value, name


def test_the_readme_table_lists_every_key_with_its_default() -> None:
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("| key | default | meaning |"):]
    rows = {m[1]: (m[2], m[3]) for m in re.finditer(
        r"^\| `(\w+)` \| ([^|]*) \| ([^\n]*) \|$", table[:table.index("\n\n")], re.M)}
    erl = _erlang_keys()
    assert set(rows) == set(erl)
    for name, (kind, text, passed) in erl.items():
        default, meaning = rows[name]
        shown = re.findall(r"`([^`]*)`", default)
        if name != "python":  # its default is looked up at run time
            value = _erlang_default(kind, text)
            assert shown[0] == (str(value) if value != "" else '""'), (name, default)
        assert meaning.startswith("*Python*") == passed, name
