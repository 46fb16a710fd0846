"""Configuration of the port program: the Python half of py_dist's keys.

The Erlang side (``py_dist_config``) owns the key list and hands the
Python keys over as ``--set key=value``; times are milliseconds there and
seconds here.
"""

from __future__ import annotations

from dataclasses import dataclass, fields


class ConfigError(ValueError):
    pass


@dataclass(frozen=True)
class Config:
    listen_address: str = "0.0.0.0"
    listen_port: int = 0
    heartbeat_interval: float = 0.200
    heartbeat_timeout: float = 0.600
    heartbeat_timeout_max: float = 3.0
    max_frame: int = 64 * 1024 * 1024
    link_hwm: int = 256
    pipe_size: int = 1024 * 1024
    log_level: str = "warning"
    max_links: int = 1024
    max_channels: int = 65536
    max_hops: int = 32
    link_cost: int = 10
    flap_half_life: float = 5.0
    flap_suppress_max: float = 20.0
    lsp_lifetime: float = 1800.0
    lsdb_sync_interval: float = 60.0
    max_nodes: int = 4096
    window_bytes: int = 32 * 1024 * 1024
    window_frames: int = 4096
    gap_timeout: float = 2.0
    ack_every: int = 32
    ack_delay: float = 0.010
    resend_timeout: float = 0.5
    queue_bytes: int = 32 * 1024 * 1024
    flow_bytes: int = 2 * 1024 * 1024
    inflight_bytes: int = 512 * 1024
    ack_bytes: int = 128 * 1024
    chunk_bytes: int = 64 * 1024
    realtime_deadline: float = 0.100
    lane_queue_bytes: int = 16 * 1024 * 1024
    node_key: str = ""
    authorized_keys: str = ""

    @classmethod
    def from_pairs(cls, pairs: list[str]) -> Config:
        """Build from ``key=value`` strings; unknown keys are an error."""
        known = {f.name: f for f in fields(cls)}
        values: dict[str, object] = {}
        for pair in pairs:
            key, sep, text = pair.partition("=")
            if not sep or key not in known:
                raise ConfigError(f"unknown setting {pair!r}")
            kind = known[key].type
            try:
                if kind == "float":  # milliseconds on the command line
                    values[key] = int(text) / 1000.0
                elif kind == "int":
                    values[key] = int(text)
                else:
                    values[key] = text
            except ValueError as exc:
                raise ConfigError(f"bad value for {key}: {text!r}") from exc
        return cls(**values)  # type: ignore[arg-type]
