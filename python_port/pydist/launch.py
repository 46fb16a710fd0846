"""How an ``erl`` is started on py_dist: where the compiled Erlang side is,
and the arguments that select the carrier.

Its own module, below :mod:`pydist.cli`, because the tools of the checkout
(:mod:`pydist_tools`: the cluster harness, the benchmarks) start nodes with
these flags too, and the CLI imports those tools: both depend on this, and
neither on the other's top.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click


def repo_root() -> Path:
    """The checkout this package sits in (``python_port/pydist/..``)."""
    return Path(__file__).resolve().parents[2]


def ebin_dir() -> Path | None:
    """Where the compiled Erlang side is: ``$PYDIST_EBIN``, else this
    checkout's build; ``None`` when neither has it (then the ``py_dist``
    application must be in the Erlang installation's code path)."""
    env = os.environ.get("PYDIST_EBIN")
    candidates = [Path(env)] if env else []
    candidates.append(repo_root() / "_build" / "default" / "lib" / "py_dist" / "ebin")
    return next((c for c in candidates if (c / "py_dist.beam").exists()), None)


def erl_flags() -> list[str]:
    ebin = ebin_dir()
    if ebin is None and not installed_in_otp():
        raise click.ClickException(
            "no compiled py_dist: run scripts/setup in the checkout (or rebar3 compile), "
            "or set PYDIST_EBIN to the ebin directory of a py_dist build")
    code_path = ["-pa", str(ebin)] if ebin is not None else []
    return [*code_path, "-proto_dist", "py", "-py_dist", "python", sys.executable]


def installed_in_otp() -> bool:
    """Whether ``erl`` finds py_dist without help (an application installed
    into the Erlang root, or ERL_LIBS)."""
    import subprocess  # only here: the port program imports this module too

    try:
        probe = subprocess.run(
            ["erl", "-noshell", "-eval",
             'io:format("~p", [code:which(py_dist) =/= non_existing]), halt().'],
            capture_output=True, text=True, timeout=30,
            env={k: v for k, v in os.environ.items() if k != "ERL_FLAGS"})
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.stdout.strip() == "true"
