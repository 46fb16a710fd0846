"""The port program's settings, as the Erlang side passes them (``key=value``)."""

from __future__ import annotations

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
