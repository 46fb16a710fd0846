"""Small helpers the integration tests share."""

from __future__ import annotations

from typing import Any

from pydist.cluster import ErlNode


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
