"""OTP's own distribution test suites, run with py_dist's flags in
``ERL_FLAGS`` beside stock ``inet_tcp_dist``: what a team adopting the
carrier would do with its own Common Test suites.

Debian ships OTP without its test directories, so the suites come from the
source of the very OTP version installed: Debian's ``orig`` tarball of the
``erlang`` package (a package registry, reachable where GitHub is not),
checked against a pinned SHA-256 and cached. Each suite runs under
``ct_run`` once per carrier; the table gives every case's result side by
side. A benchmark, not a test: a full run takes tens of minutes.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tarfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from pydist.launch import erl_flags
from pydist_tools.cluster import free_port

#: the installed OTP (Debian bookworm's erlang 1:25.2.3+dfsg)
OTP = "25.2.3"
TARBALL = f"erlang_{OTP}+dfsg.orig.tar.xz"
URL = f"http://deb.debian.org/debian/pool/main/e/erlang/{TARBALL}"
SHA256 = "65c77675af31235d19ee7888fb2a9d858759b1089ba33126344697be7600d271"
TOP = f"otp-OTP-{OTP}"

#: what every suite needs: the hook of OTP's own test runs (ts_install_cth,
#: which without the "variables" of an installed test tree builds no C
#: data, so cases that need it skip as they would elsewhere)
COMMON = ["lib/common_test/test_server/ts_install_cth.erl",
          "lib/common_test/test_server/ts_lib.erl",
          "lib/common_test/test_server/ts.hrl"]

#: suite -> what it needs from the source tree besides itself
SUITES = {
    "distribution_SUITE": ["erts/emulator/test/distribution_SUITE.erl",
                           "erts/emulator/test/distribution_SUITE_data",
                           "erts/emulator/test/erts_test_utils.erl"],
    # its cases run once per distribution module, two of them the kernel's
    # examples, which OTP's test tree builds beside the suite
    "erl_distribution_SUITE": ["lib/kernel/test/erl_distribution_SUITE.erl",
                               "lib/kernel/examples/gen_tcp_dist/src/gen_tcp_dist.erl",
                               "lib/kernel/examples/erl_uds_dist/src/erl_uds_dist.erl"],
}

CARRIERS = ("inet_tcp", "py")

#: kernel's suite runs most cases twice, on the default carrier and on the
#: gen_tcp_dist example; with py_dist in ERL_FLAGS the second can never
#: work (its peers get -proto_dist gen_tcp too, pick it first, and dial the
#: test node's py_dist listener with the TCP handshake).  --default-only
#: runs a copy of the suite that keeps the first, to see py_dist in each.
DEFAULT_ONLY = ("[{\"default\", \"\"}, GenTcpDistTest]).", "[{\"default\", \"\"}]).")


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "pydist"


def fetch() -> Path:
    """The source tarball, downloaded once and checked every time."""
    path = cache_dir() / TARBALL
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        print(f"downloading {URL}", file=sys.stderr)
        partial = path.with_suffix(".part")
        with urllib.request.urlopen(URL, timeout=120) as response, partial.open("wb") as out:
            shutil.copyfileobj(response, out)
        partial.rename(path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != SHA256:
        path.unlink()
        raise SystemExit(f"{TARBALL}: SHA-256 {digest}, expected {SHA256}; removed it")
    return path


def extract(tarball: Path, work: Path, suite: str, default_only: bool = False) -> Path:
    """The suite's files, flat in one directory as ct_run wants them; with
    ``default_only``, its cases run on the default carrier alone."""
    out = work / (f"{suite}-default" if default_only else suite)
    out.mkdir(parents=True, exist_ok=True)
    wanted = [f"{TOP}/{p}" for p in [*SUITES[suite], *COMMON]]
    with tarfile.open(tarball) as tar:
        for member in tar.getmembers():
            for prefix in wanted:
                if member.name == prefix or member.name.startswith(prefix + "/"):
                    relative = Path(prefix).name + member.name[len(prefix):]
                    member.name = relative
                    tar.extract(member, out, filter="data")
    if default_only:
        source = out / f"{suite}.erl"
        text = source.read_text()
        if DEFAULT_ONLY[0] not in text:
            raise SystemExit(f"{suite} has no run_dist_configs to keep to the default carrier")
        source.write_text(text.replace(*DEFAULT_ONLY))
    return out


@dataclass
class Result:
    cases: dict[str, str]  # case -> ok | failed | skipped | auto_skipped
    summary: str


def run_suite(suite_dir: Path, suite: str, carrier: str, logs: Path,
              timeout: float, cases: list[str] | None = None) -> Result:
    """One suite under ct_run, the whole VM (and every peer it starts, which
    inherit the environment) on ``carrier``."""
    logs.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env["ERL_FLAGS"] = " ".join(erl_flags()) if carrier == "py" else ""
    # an epmd of our own, stopped after: the suite's nodes would otherwise
    # start the machine's, and leave it running
    port = free_port()
    epmd = subprocess.Popen(["epmd", "-port", str(port)])
    env["ERL_EPMD_PORT"] = str(port)
    cmd = ["ct_run", "-noshell", "-sname", f"ct_{carrier}", "-dir", str(suite_dir),
           "-suite", suite, "-logdir", str(logs)]
    if cases:
        cmd += ["-case", *cases]
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout,
                              encoding="utf-8", errors="replace")
        output = proc.stdout + proc.stderr
    except subprocess.TimeoutExpired as exc:
        got = exc.stdout or b""  # bytes even with text=True, on some versions
        partial = got.decode(errors="replace") if isinstance(got, bytes) else got
        output = f"{partial}\ntimed out after {timeout:.0f} s"
    finally:
        epmd.terminate()
        epmd.wait(10)
    summary = next((line.strip() for line in output.splitlines()
                    if "TEST COMPLETE" in line or "timed out" in line), output[-300:])
    return Result(_cases(logs), summary)


def _cases(logs: Path) -> dict[str, str]:
    """Each case's result, from the newest suite.log under ``logs``."""
    found = sorted(logs.rglob("suite.log"), key=lambda p: p.stat().st_mtime)
    if not found:
        return {}
    text = found[-1].read_text(errors="replace")
    cases: dict[str, str] = {}
    for block in text.split("=case")[1:]:
        name = block.split(None, 1)[0].rpartition(":")[2]
        match = re.search(r"^=result\s+(\w+)", block, re.MULTILINE)
        if match and not name.startswith(("init_per_", "end_per_")):
            cases[name] = match.group(1)
    return cases


def table(results: dict[str, dict[str, Result]]) -> str:
    """Counts per suite and carrier, then every case where they differ."""
    lines = ["| suite | carrier | ok | failed | skipped | ct_run says |",
             "|---|---|---:|---:|---:|---|"]
    for suite, per in results.items():
        for carrier, res in per.items():
            values = list(res.cases.values())
            ok = values.count("ok")
            failed = values.count("failed")
            lines.append(f"| {suite} | {carrier} | {ok} | {failed} | "
                         f"{len(values) - ok - failed} | {res.summary} |")
    lines += ["", "| suite | case | inet_tcp | py |", "|---|---|---|---|"]
    for suite, per in results.items():
        stock, ours = per.get("inet_tcp"), per.get("py")
        if stock is None or ours is None:
            continue
        for case in sorted(set(stock.cases) | set(ours.cases)):
            a, b = stock.cases.get(case, "-"), ours.cases.get(case, "-")
            if a != b:
                lines.append(f"| {suite} | {case} | {a} | {b} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", action="append", choices=sorted(SUITES),
                        help="a suite to run (default: all)")
    parser.add_argument("--case", action="append",
                        help="only this case of the suite (repeat for more)")
    parser.add_argument("--carrier", action="append", choices=CARRIERS,
                        help="a carrier (default: both)")
    parser.add_argument("--work", type=Path, default=cache_dir() / "otp-suites",
                        help="where the suites and their logs go")
    parser.add_argument("--timeout", type=float, default=3600.0,
                        help="seconds per suite and carrier")
    parser.add_argument("--default-only", action="store_true",
                        help="kernel's suite: run each case on the default carrier only, "
                        "not also on the gen_tcp_dist example (a patched copy)")
    parser.add_argument("--report", action="store_true",
                        help="run nothing: the table of the logs of earlier runs")
    args = parser.parse_args(argv)
    results: dict[str, dict[str, Result]] = {}
    variant = "-default" if args.default_only else ""
    if args.report:
        for suite in args.suite or sorted(SUITES):
            for carrier in args.carrier or CARRIERS:
                logs = args.work / "logs" / f"{suite}{variant}" / carrier
                if logs.exists():
                    results.setdefault(f"{suite}{variant}", {})[carrier] = Result(
                        _cases(logs), "(earlier run)")
        print(table(results))
        return 0
    tarball = fetch()
    for suite in args.suite or sorted(SUITES):
        if args.default_only and suite != "erl_distribution_SUITE":
            continue
        suite_dir = extract(tarball, args.work / "src", suite, args.default_only)
        for carrier in args.carrier or CARRIERS:
            print(f"running {suite}{variant} on {carrier}", file=sys.stderr, flush=True)
            logs = args.work / "logs" / f"{suite}{variant}" / carrier
            shutil.rmtree(logs, ignore_errors=True)
            res = run_suite(suite_dir, suite, carrier, logs, args.timeout, args.case)
            print(f"  {res.summary}", file=sys.stderr, flush=True)
            results.setdefault(f"{suite}{variant}", {})[carrier] = res
    print(table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
