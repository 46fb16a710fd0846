"""The pydist command for people: flags, and a look at a running node."""

from __future__ import annotations

import html
import itertools
import re
import socket
import subprocess
import sys
from pathlib import Path

from pydist_tools.cluster import HOST, Cluster, free_port, wait_routes

from .helpers import keyed, keygen


def pydist(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pydist", *args], capture_output=True,
                          text=True, env=env, timeout=120)


def test_flags_select_py_dist_from_this_checkout() -> None:
    out = pydist("flags")
    assert out.returncode == 0
    words = out.stdout.split()
    assert words[words.index("-proto_dist") + 1] == "py"
    assert words[words.index("-py_dist") + 1: words.index("-py_dist") + 3] == [
        "python", sys.executable]
    ebin = words[words.index("-pa") + 1]
    assert ebin.endswith("/ebin")
    # the flags really make a node that runs py_dist
    node = subprocess.run(["erl", *words, "-noshell", "-eval",
                           "io:format(\"~p\", [code:which(py_dist)]), halt()."],
                          capture_output=True, text=True, timeout=60)
    assert node.stdout.startswith(f'"{ebin}/py_dist.beam"')


def test_info_shows_a_running_nodes_links(cluster: Cluster) -> None:
    a, b = cluster.start("a"), cluster.start("b")
    assert b.eval(f"net_adm:ping('{a.node}').") == "pong"
    out = pydist("info", a.node, "--cookie", cluster.cookie or "", env=cluster.env)
    assert out.returncode == 0, out.stderr
    assert f"{a.node}: port program pid {a.port_pid}" in out.stdout
    assert f"link to {b.node}: up" in out.stdout
    missing = pydist("info", "nobody@127.0.0.1", "--cookie", "x", env=cluster.env)
    assert missing.returncode != 0
    assert "did not answer" in missing.stderr


def test_routes_shows_the_link_state_and_the_table(cluster: Cluster) -> None:
    a = cluster.start("a", "-py_dist", "neighbours", "['b@127.0.0.1']")
    b = cluster.start("b", "-py_dist", "neighbours", "['c@127.0.0.1']")
    c = cluster.start("c")
    wait_routes(a, 2)
    out = pydist("routes", a.node, "--cookie", cluster.cookie or "", env=cluster.env)
    assert out.returncode == 0, out.stderr
    assert f"    {b.node} #" in out.stdout and f": {a.node}/10, {c.node}/10" in out.stdout
    assert f"    {c.node} -> {b.node} (20)" in out.stdout


def test_info_and_routes_of_a_keyed_cluster(cluster: Cluster, tmp_path: Path) -> None:
    """Every node keyed: the CLI joins under a key pair of its own, listed
    in the cluster's authorized keys, and with no key it is refused."""
    lines = [keygen(tmp_path, f"{n}@{HOST}") for n in ("a", "b", "ops")]
    authorized = tmp_path / "authorized_keys"
    authorized.write_text("\n".join(lines) + "\n")
    a = cluster.start("a", *keyed(tmp_path, "a", authorized))
    b = cluster.start("b", *keyed(tmp_path, "b", authorized),
                      "-py_dist", "neighbours", f"['{a.node}']")
    wait_routes(a, 1)
    cookie = ["--cookie", cluster.cookie or ""]
    credentials = [*cookie, "--node-key", str(tmp_path / f"ops@{HOST}.key_secret"),
                   "--authorized-keys", str(authorized)]
    out = pydist("info", a.node, *credentials, env=cluster.env)
    assert out.returncode == 0, out.stderr
    assert f"link to {b.node}: up" in out.stdout
    assert f"link to ops@{HOST}: up" in out.stdout  # the CLI, under its key's name
    out = pydist("routes", b.node, *credentials, env=cluster.env)
    assert out.returncode == 0, out.stderr
    assert f"    {a.node} -> {a.node} (10)" in out.stdout
    unkeyed = pydist("info", a.node, *cookie, env=cluster.env)
    assert unkeyed.returncode != 0
    assert "did not answer" in unkeyed.stderr
    half = pydist("info", a.node, *credentials[:4], env=cluster.env)
    assert half.returncode != 0 and "--node-key needs --authorized-keys" in half.stderr


def test_info_and_routes_without_epmd(tmp_path: Path) -> None:
    """Nodes with -no_epmd and nothing on the epmd port: the CLI joins with
    the node's endpoint as its seed, as the nodes themselves do."""
    no_epmd = {"ERL_EPMD_PORT": str(free_port())}  # nothing listens there
    with Cluster(tmp_path / "cluster", private_epmd=False) as cluster:
        port = free_port()
        a = cluster.start("a", "-no_epmd", "-py_dist", "listen_port", str(port), env=no_epmd)
        seed = f"[{{'{a.node}', #{{endpoint => {{\"{HOST}\", {port}}}}}}}]"
        b = cluster.start("b", "-no_epmd", "-py_dist", "neighbours", seed, env=no_epmd)
        wait_routes(a, 1)
        env = {**cluster.env, **no_epmd}
        cookie = ["--cookie", cluster.cookie or ""]
        out = pydist("info", a.node, *cookie, "--endpoint", f"{HOST}:{port}", env=env)
        assert out.returncode == 0, out.stderr
        assert f"link to {b.node}: up" in out.stdout
        out = pydist("routes", a.node, *cookie, "--endpoint", f"{HOST}:{port}", env=env)
        assert out.returncode == 0, out.stderr
        assert f"    {b.node} -> {b.node} (10)" in out.stdout
        lost = pydist("info", a.node, *cookie, env=env)  # no epmd to ask, no seed
        assert lost.returncode != 0 and "--endpoint" in lost.stderr
        with socket.socket() as s:  # and it started none (erl would have)
            assert s.connect_ex((HOST, int(no_epmd["ERL_EPMD_PORT"]))) != 0
        bad = pydist("info", a.node, *cookie, "--endpoint", "nowhere", env=env)
        assert bad.returncode != 0 and "is not HOST:PORT" in bad.stderr


def test_pydist_erl_runs_a_node_on_py_dist(cluster: Cluster) -> None:
    out = pydist("erl", "-noshell", "-name", "cli_erl@127.0.0.1", "-setcookie", "c",
                 "-eval", "io:format(\"~p~n\", [maps:get(listen_port, py_dist:info())]), "
                          "halt().", env=cluster.env)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout.strip()) > 0


def test_topology_draws_what_the_node_sees(cluster: Cluster, tmp_path: Path) -> None:
    """A line of five: the SVG's nodes and links are py_dist:topology()'s,
    and the link a's routes take is the one drawn as carrying them."""
    names = [f"t{i}" for i in range(5)]
    nodes = [cluster.start(n, "-py_dist", "neighbours",
                           f"['{names[i + 1]}@127.0.0.1']" if i + 1 < 5 else "[]")
             for i, n in enumerate(names)]
    a = nodes[0]
    wait_routes(a, 4, degree=1)
    svg = tmp_path / "line.svg"
    out = pydist("topology", a.node, "--cookie", cluster.cookie or "", "--out", str(svg),
                 env=cluster.env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(svg)
    titles = {html.unescape(t) for t in re.findall(r"<title>([^<]*)</title>", svg.read_text())}
    topo = a.eval("py_dist:topology().")
    ours = {n.node for n in nodes}
    want_links = {"--".join(sorted((lsp["origin"].decode(), n.decode())))
                  for lsp in topo["lsdb"] for n, _ in lsp["neighbours"]
                  if lsp["origin"].decode() in ours and n.decode() in ours}
    assert want_links == {f"{x.node}--{y.node}" for x, y in itertools.pairwise(nodes)}
    # the CLI's own hidden node linked to a to ask: drawn too, and nothing else
    extra = titles - {"cluster"} - ours - want_links
    assert all("pydist_topology_" in t for t in extra), extra
    dot = pydist("topology", a.node, "--cookie", cluster.cookie or "", "--format", "dot",
                 "--out", str(tmp_path / "line.dot"), env=cluster.env)
    assert dot.returncode == 0, dot.stderr
    edge = next(line for line in (tmp_path / "line.dot").read_text().splitlines()
                if f'"{a.node}" -- "{nodes[1].node}"' in line)
    assert "penwidth" in edge and "(4 routes" in edge  # every route of a goes through t1
