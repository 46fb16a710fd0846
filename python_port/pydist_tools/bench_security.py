"""Benchmark of encrypted links: py_dist with CurveZMQ against stock
``inet_tls_dist`` (TLS over TCP), in the same run.

The TLS nodes get a throwaway self-signed certificate (``openssl``); the
py_dist nodes a key pair each from ``pydist keygen``.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from pydist.shell.curve import keygen
from pydist_tools.bench import CASES as CARRIER_CASES
from pydist_tools.cluster import HOST, Cluster, ErlNode
from pydist_tools.measure import Case, Measure, Rows, alternate, compare

#: throughput and round trips; setup times are not about encryption
CASES: list[tuple[list[Case], Measure]] = [c for c in CARRIER_CASES
                                           if c[0][0].unit != "us" or "round" in c[0][0].name]


def _tls_args(directory: Path) -> list[str]:
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=py_dist-bench", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    options = directory / "ssl_dist.conf"
    options.write_text(f"""[{{server, [{{certfile, "{cert}"}}, {{keyfile, "{key}"}},
                                {{verify, verify_none}}]}},
 {{client, [{{verify, verify_none}}]}}].
""")
    return ["-proto_dist", "inet_tls", "-ssl_dist_optfile", str(options)]


def _curve_args(directory: Path, names: list[str]) -> dict[str, list[str]]:
    lines = [keygen(directory, f"{n}@{HOST}")[2] for n in names]
    authorized = directory / "authorized_keys"
    authorized.write_text("\n".join(lines) + "\n")
    return {n: ["-py_dist", "node_key", str(directory / f"{n}@{HOST}.key_secret"),
                "-py_dist", "authorized_keys", str(authorized)] for n in names}


def run(seconds: float = 2.0, rounds: int = 3) -> Rows:
    with Cluster() as cluster:
        directory = cluster.dir / "keys"
        directory.mkdir()
        tls = _tls_args(directory)
        curve = _curve_args(directory, ["sec_src_py", "sec_dst_py"])
        pairs: dict[str, tuple[ErlNode, ErlNode]] = {
            "inet_tls": (cluster.start("sec_src_tls", *tls, proto="inet_tls"),
                         cluster.start("sec_dst_tls", *tls, proto="inet_tls")),
            "py_curve": (cluster.start("sec_src_py", *curve["sec_src_py"]),
                         cluster.start("sec_dst_py", *curve["sec_dst_py"])),
        }
        for src, dst in pairs.values():
            assert src.eval(f"net_adm:ping('{dst.node}').") == "pong"
        return alternate(CASES, pairs, seconds, rounds)


def table(rows: Rows) -> str:
    return compare(rows, "inet_tls", "py_curve",
                   ("inet_tls", "py_dist + CurveZMQ", "py vs inet_tls"))
