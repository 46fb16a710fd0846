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
