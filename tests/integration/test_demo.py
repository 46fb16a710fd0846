"""The README's main command: the demo runs, shows the route and draws
the topology."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_the_demo_runs_and_draws_the_topology(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "pydist", "demo", "--nodes", "3"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "pong" in out.stdout
    drawn = [line for line in out.stdout.splitlines() if "drawn: " in line]
    assert drawn, out.stdout[-3000:]
    path = Path(drawn[0].split("drawn: ", 1)[1].split()[0])
    assert path.parent == tmp_path.resolve()
    text = path.read_text()
    assert text.lstrip().startswith("<?xml") and "c@127.0.0.1" in text
