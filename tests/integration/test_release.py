"""py_dist inside a rebar3 release: examples/release builds, and two
releases started by their own start script talk over py_dist, the port
program coming from the release (py_dist's priv/python), not from an
installed package."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import zmq

from pydist import launch
from pydist_tools.cluster import HOST, Cluster, pid_alive

from .helpers import ping_until_pong

EXAMPLE = launch.repo_root() / "examples" / "release"


def build() -> Path:
    env = {**os.environ, "HOME": os.environ.get("HOME") or str(EXAMPLE)}
    subprocess.run(["rebar3", "release"], cwd=EXAMPLE, env=env, check=True,
                   capture_output=True, timeout=300)
    return EXAMPLE / "_build" / "default" / "rel" / "hello" / "bin" / "hello"


def bare_python(tmp_path: Path) -> tuple[Path, str]:
    """A Python that has the port program's dependencies but not the
    ``pydist`` package (no site processing, so no editable install): as on
    a machine where only the release and Python with its dependencies are."""
    site = str(Path(zmq.__file__).resolve().parents[1])  # where the dependencies are
    wrapper = tmp_path / "python"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" -S "$@"\n')
    wrapper.chmod(0o755)
    return wrapper, site


def test_two_releases_talk_over_py_dist(cluster: Cluster, tmp_path: Path) -> None:
    script = build()
    assert cluster.cookie is not None
    python, site = bare_python(tmp_path)
    probe = subprocess.run([str(python), "-c", "import pydist"], env={"PYTHONPATH": site},
                           capture_output=True)
    assert probe.returncode != 0  # this Python cannot find pydist by itself
    env = {**cluster.env, "COOKIE": cluster.cookie, "PYDIST_PYTHON": str(python),
           "PYTHONPATH": site}
    releases: list[subprocess.Popen[bytes]] = []
    port_pids: list[int] = []
    try:
        for name in ("rel1", "rel2"):
            log = (tmp_path / f"{name}.log").open("wb")
            out = tmp_path / name  # where the start script writes vm.args, per instance
            out.mkdir()
            releases.append(subprocess.Popen(
                [str(script), "foreground"],
                env={**env, "NODE_NAME": f"{name}@{HOST}", "RELX_OUT_FILE_PATH": str(out)},
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True))
        observer = cluster.start("observer")
        for name in ("rel1", "rel2"):
            assert ping_until_pong(observer, f"{name}@{HOST}") == "pong"
            # the release's own distribution is py_dist's
            assert observer.eval(f"rpc:call('{name}@{HOST}', init, get_argument, "
                                 f"[proto_dist]).") == ("ok", [[b"py"]])
            port_pids.append(observer.eval(
                f"maps:get(os_pid, rpc:call('{name}@{HOST}', py_dist, info, [])).")
            )
        greeting = observer.eval(
            f"rpc:call('rel1@{HOST}', rpc, call, ['rel2@{HOST}', hello_app, greet, [hi]]).")
        assert greeting == ("hello", f"rel2@{HOST}", "hi")
    finally:
        for proc in releases:  # SIGTERM: the VM stops as with init:stop()
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGTERM)
        for proc in releases:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        deadline = time.monotonic() + 5
        for pid in port_pids:  # the port programs end with their VM
            while pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
