"""Node keys: encrypted links (CurveZMQ) bound to node names, and what an
authorized node cannot do in another node's name."""

from __future__ import annotations

import dataclasses
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import zmq

from pydist.core import frame, lsdb
from pydist.core.wire import FLAG_SEALED, Kind, node_id
from pydist.shell.curve import load
from pydist_tools.cluster import HOST, Cluster, ErlNode

from .helpers import hand_admit, keyed, keygen, port_stat

MARKER = "py_dist-plaintext-marker-0123456789"


class Relay:
    """A TCP relay on loopback that keeps a copy of every byte it carries."""

    def __init__(self, target_port: int) -> None:
        self.target = target_port
        self.listener = socket.create_server((HOST, 0))
        self.port = self.listener.getsockname()[1]
        self.seen = bytearray()
        self.lock = threading.Lock()
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection((HOST, self.target))
            self.sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        while True:
            try:
                data = src.recv(65536)
                if not data:
                    return
                with self.lock:
                    self.seen += data
                dst.sendall(data)
            except OSError:
                return

    def close(self) -> None:
        self.listener.close()
        for s in self.sockets:
            s.close()


@pytest.fixture
def keys(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """Key pairs of a, b and d; an authorized-keys file with the three."""
    lines = [keygen(tmp_path, f"{n}@{HOST}") for n in ("a", "b", "d")]
    authorized = tmp_path / "authorized_keys"
    authorized.write_text("# the cluster\n" + "\n".join(lines) + "\n")
    yield tmp_path, authorized


def _through_relay(a: ErlNode, b: ErlNode) -> Relay:
    """a's link to b goes through a relay that records what it carries."""
    port = b.eval("maps:get(listen_port, py_dist:info()).")
    relay = Relay(port)
    assert a.eval(f"py_dist:link('{b.node}', #{{endpoint => {{\"{HOST}\", {relay.port}}}}}).") \
        == "ok"
    deadline = time.monotonic() + 10
    while a.eval("py_dist:neighbours().") != [(b.node, "up")]:
        assert time.monotonic() < deadline, a.eval("py_dist:neighbours().")
        time.sleep(0.05)
    return relay


def _marker_through(a: ErlNode, b: ErlNode) -> None:
    b.eval("register(inbox, self()).")
    a.eval(f"{{inbox, '{b.node}'}} ! {{marker, <<\"{MARKER}\">>}}.")
    assert b.eval("receive {marker, M} -> M after 5000 -> timeout end.") == MARKER.encode()


@pytest.mark.parametrize("encrypted", [True, False], ids=["curve", "plain"])
def test_encrypted_links_carry_no_plaintext(cluster: Cluster, keys: tuple[Path, Path],
                                            encrypted: bool) -> None:
    """Two nodes with keys talk as usual; a relay on their link sees none of
    a known message's bytes. Without keys (the control) it does see them."""
    directory, authorized = keys
    args = {n: keyed(directory, n, authorized) if encrypted else () for n in ("a", "b")}
    a, b = cluster.start("a", *args["a"]), cluster.start("b", *args["b"])
    relay = _through_relay(a, b)
    try:
        assert a.eval(f"net_adm:ping('{b.node}').") == "pong"
        _marker_through(a, b)
        assert a.eval(f"rpc:call('{b.node}', erlang, node, []).") == b.node
        with relay.lock:
            seen = bytes(relay.seen)
        assert len(seen) > 1000  # the connection went through the relay
        assert (MARKER.encode() in seen) is not encrypted
    finally:
        relay.close()


def test_an_unknown_key_is_refused_and_the_cluster_unaffected(
        cluster: Cluster, keys: tuple[Path, Path], tmp_path: Path) -> None:
    directory, authorized = keys
    a = cluster.start("a", *keyed(directory, "a", authorized))
    b = cluster.start("b", *keyed(directory, "b", authorized))
    assert a.eval(f"net_adm:ping('{b.node}').") == "pong"
    # c has a key pair of its own, which a's authorized keys do not list;
    # c trusts a (its own file has a's key), so it dials
    outsider = tmp_path / "outsider"
    c_line = keygen(outsider, f"c@{HOST}")
    c_authorized = outsider / "authorized_keys"
    c_authorized.write_text(authorized.read_text() + c_line + "\n")
    c = cluster.start("c", *keyed(outsider, "c", c_authorized))
    assert c.eval(f"net_adm:ping('{a.node}').") == "pang"
    assert a.logged("is not in the authorized keys")
    assert a.eval(f"net_adm:ping('{b.node}').") == "pong"
    assert c.node not in a.eval("nodes().")


def test_a_key_claiming_another_name_is_refused(cluster: Cluster,
                                                keys: tuple[Path, Path]) -> None:
    """c runs with d's key pair: its key is authorized, but for d's name."""
    directory, authorized = keys
    a = cluster.start("a", *keyed(directory, "a", authorized))
    secret = directory / f"d@{HOST}.key_secret"
    c = cluster.start("c", "-py_dist", "node_key", str(secret),
                      "-py_dist", "authorized_keys", str(authorized))
    assert c.eval(f"net_adm:ping('{a.node}').") == "pang"
    assert a.logged(f"its key is registered for d@{HOST}")
    assert c.node not in a.eval("nodes().")


def test_an_authorized_node_cannot_speak_in_another_nodes_name(
        cluster: Cluster, keys: tuple[Path, Path], tmp_path: Path) -> None:
    """e is an insider: its key is authorized, and b accepts its link. From
    there it floods a link-state packet in a's name (signed with its own
    key) and opens a channel and sends data in a's name (sealed with its
    own key, then not sealed at all). b refuses each, counts and logs it,
    and a's real link state, a's connection and e's link stay as they were."""
    directory, authorized = keys
    insider = tmp_path / "insider"
    e_line = keygen(insider, f"e@{HOST}")
    authorized.write_text(authorized.read_text() + e_line + "\n")
    a = cluster.start("a", *keyed(directory, "a", authorized))
    b = cluster.start("b", *keyed(directory, "b", authorized))
    assert a.eval(f"net_adm:ping('{b.node}').") == "pong"
    e = load(str(insider / f"e@{HOST}.key_secret"), str(authorized))
    a_id, b_id = node_id(a.node.encode()), node_id(b.node.encode())
    e_name = f"e@{HOST}".encode()

    ctx = zmq.Context()
    try:
        link = ctx.socket(zmq.DEALER)
        link.setsockopt(zmq.LINGER, 0)
        link.curve_secretkey, link.curve_publickey = e.curve_secret, e.curve_public
        link.curve_serverkey = e.curve_by_name[b.node.encode()]
        link.connect(f"tcp://{HOST}:{b.eval('maps:get(listen_port, py_dist:info()).')}")
        assert hand_admit(link, e_name, cluster.cookie), "e is authorized and has the cookie"

        # routing information in a's name: "a's only neighbour is e"
        lsp = lsdb.Lsp(a.node.encode(), 1 << 40, 60.0, ((e_name, 1),))
        lsp = dataclasses.replace(lsp, signature=e.sign(lsdb.signed_part(lsp)))
        link.send(frame.encode(Kind.LSP, node_id(e_name), 0) + lsdb.encode(lsp))
        # a channel and data in a's name, sealed with e's key, then plain
        names = bytes([len(a.node)]) + a.node.encode() + b.node.encode()
        for flags in (FLAG_SEALED, 0):
            for kind, seq, payload in ((Kind.OPEN, 0, names), (Kind.DATA, 1, b"\0\0\0\1x")):
                head = frame.encode(kind, a_id, b_id, 77, seq=seq, flags=flags)
                link.send(head + (e.seal(b_id, head, payload) if flags else payload))
        assert b.logged("not signed by its key")
        assert b.logged("does not open: forged or altered", "a frame not sealed")
        deadline = time.monotonic() + 5
        while (port_stat(b, "lsp_forged"), port_stat(b, "frames_forged")) != (1, 4):
            assert time.monotonic() < deadline, (port_stat(b, "lsp_forged"),
                                                 port_stat(b, "frames_forged"))
            time.sleep(0.05)
        # e's link is still up: it may be an honest node passing on what
        # another sent
        link.send(frame.encode(Kind.HEARTBEAT, node_id(e_name), 0))
        assert b.eval("[P || #{peer := P, up := true} "
                      "<- maps:get(links, maps:get(port, py_dist:info())), "
                      f"P =:= <<\"e@{HOST}\">>].") == [e_name]
    finally:
        ctx.destroy(linger=0)

    # a's link state as a made it, a's one connection, and it still works
    assert b.eval(f"[N || #{{origin := <<\"{a.node}\">>, neighbours := Ns}} "
                  f"<- maps:get(lsdb, py_dist:topology()), {{N, _}} <- Ns].") == [b.node.encode()]
    assert b.eval("nodes().") == [a.node]
    assert a.eval(f"rpc:call('{b.node}', erlang, node, []).") == b.node
