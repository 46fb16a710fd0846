"""Fixtures that start real ``erl -proto_dist py`` nodes and stop them by pid."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from pydist_tools.cluster import Cluster, netns

pytestmark = pytest.mark.integration


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if shutil.which("erl") is None:
        skip = pytest.mark.skip(reason="erl is not installed: run scripts/setup")
        for item in items:
            if "integration" in str(item.fspath):
                item.add_marker(skip)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(tmp_path / "cluster")
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture
def need_netns() -> None:
    """Network namespaces can be made here (else the test is skipped, with
    the reason); those of runs killed before they could clean up go."""
    reason = netns.unavailable()
    if reason is not None:
        pytest.skip(reason)
    netns.reap_stale()
