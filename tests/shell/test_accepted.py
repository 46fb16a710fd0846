"""The watch over accepted connections (pydist.shell.accepted): a
connection with no admitted link is shut down at its deadline, one with an
admitted link never; and the two system calls, on real sockets."""

from __future__ import annotations

import os
import socket

from hypothesis import given, settings
from hypothesis import strategies as st

from pydist.core.admission import ADMIT_TIMEOUT
from pydist.shell.accepted import CHECK_EVERY, GRACE, AcceptWatch, ident, shut_down

ENDS = (("10.0.0.2", 40000), ("10.0.0.1", 4370))
OTHER_ENDS = (("10.0.0.3", 40001), ("10.0.0.1", 4370))
LIMIT = ADMIT_TIMEOUT + GRACE


def test_a_connection_that_carries_nothing_is_shut_at_its_deadline() -> None:
    watch = AcceptWatch()
    watch.accepted(7, ENDS, 0.0)
    assert watch.expired(LIMIT - 0.01, lambda key: False) == []
    assert watch.expired(LIMIT, lambda key: False) == [(7, ENDS)]
    assert watch.conns == {}


def test_an_admitted_link_keeps_its_connection_until_forgotten() -> None:
    watch = AcceptWatch()
    admitted = {b"k"}
    watch.carries(b"k", 7, ENDS, 0.0)
    watch.accepted(7, ENDS, 0.1)  # the monitor's word after the first message
    assert watch.expired(100.0, admitted.__contains__) == []
    assert watch.expired(1000.0, admitted.__contains__) == []
    # the link goes down: its BYE gets GRACE to leave
    admitted.clear()
    watch.forgot(b"k", 1000.0)
    assert not watch.knows(b"k")
    assert watch.expired(1000.0 + GRACE - 0.01, admitted.__contains__) == []
    assert watch.expired(1000.0 + GRACE, admitted.__contains__) == [(7, ENDS)]


def test_a_refused_link_shuts_its_connection_a_grace_after() -> None:
    watch = AcceptWatch()
    watch.accepted(7, ENDS, 0.0)
    watch.carries(b"k", 7, ENDS, 0.0)
    watch.forgot(b"k", 0.5)
    assert watch.expired(0.5 + GRACE, lambda key: False) == [(7, ENDS)]


def test_a_reused_number_is_a_new_connection() -> None:
    watch = AcceptWatch()
    watch.accepted(7, ENDS, 0.0)
    # the first connection went, a new one took its number; the new one's
    # first message is read before the monitor's words about either
    watch.carries(b"new", 7, OTHER_ENDS, 3.0)
    watch.disconnected(7)
    watch.accepted(7, OTHER_ENDS, 3.1)
    assert watch.expired(3.1 + LIMIT, lambda key: key == b"new") == []
    assert watch.expired(3.1 + LIMIT, lambda key: False) == []  # not looked at again
    watch.forgot(b"new", 50.0)
    assert watch.expired(50.0 + GRACE, lambda key: False) == [(7, OTHER_ENDS)]


def test_a_connection_gone_is_not_shut() -> None:
    watch = AcceptWatch()
    watch.accepted(7, ENDS, 0.0)
    watch.disconnected(7)
    assert watch.expired(LIMIT, lambda key: False) == []


OPS = st.lists(st.tuples(st.sampled_from(["accept", "carry", "admit", "forget", "gone", "tick"]),
                         st.integers(0, 1), st.integers(0, 1),
                         st.floats(0, 2, allow_nan=False)), max_size=60)


@settings(max_examples=300, deadline=None)
@given(OPS)
def test_never_an_admitted_link_shut_and_every_idle_one_shut_in_time(ops: list) -> None:
    """Against a model of the connections: none carrying an admitted link is
    shut, and one that never carried a link is shut within CHECK_EVERY of
    its deadline when the watch is asked every turn."""
    watch = AcceptWatch()
    now = 0.0
    live: dict[int, tuple[float, int]] = {}   # fd -> (deadline, generation)
    on: dict[bytes, int] = {}                 # link -> fd, links the core holds
    up: set[bytes] = set()
    carried: set[int] = set()                 # generations that carried a link
    gen = 0
    for op, fd, k, dt in ops:
        now += dt
        key = bytes([k])
        gen += 1
        ends = (("h", gen), ("me", 1))
        if op == "accept" and fd not in live:
            live[fd] = (now + LIMIT, gen)
            watch.accepted(fd, ends, now)
        elif op == "carry" and fd in live and key not in on:
            on[key] = fd
            carried.add(live[fd][1])
            watch.carries(key, fd, (("h", live[fd][1]), ("me", 1)), now)
        elif op == "admit" and key in on:
            up.add(key)
        elif op == "forget" and key in on:
            fd_of = on.pop(key)
            up.discard(key)
            watch.forgot(key, now)
            deadline, g = live.get(fd_of, (0.0, 0))
            if fd_of in live:
                live[fd_of] = (min(deadline, now + GRACE), g)
        elif op == "gone" and fd in live:
            del live[fd]
            for key_on in [x for x, f in on.items() if f == fd]:
                del on[key_on]
                up.discard(key_on)
                watch.forgot(key_on, now)
            watch.disconnected(fd)
        for shut, ((_, g), _) in watch.expired(now, up.__contains__):
            assert shut in live and live[shut][1] == g
            assert not any(f == shut for key_on, f in on.items() if key_on in up)
            deadline = live.pop(shut)[0]
            assert deadline <= now
            for key_on in [x for x, f in on.items() if f == shut]:
                del on[key_on]  # the core sees the link die
                watch.forgot(key_on, now)
        for deadline, g in live.values():
            if g not in carried:
                assert now < deadline + CHECK_EVERY, "an idle connection left open"


def test_shut_down_ends_the_connection_it_was_told() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(listener.getsockname())
    server, _ = listener.accept()
    try:
        ends = ident(server.fileno())
        assert ends == (server.getpeername(), server.getsockname())
        # a different connection's ends: left alone
        assert not shut_down(server.fileno(), (("127.0.0.1", 1), ends[1]))
        client.settimeout(0.2)
        try:
            assert client.recv(1) != b""
        except TimeoutError:
            pass  # still open: nothing to read
        assert shut_down(server.fileno(), ends)
        client.settimeout(5)
        assert client.recv(1) == b""  # the far end sees the end of the stream
        assert server.fileno() >= 0   # shut down, not closed: the owner closes it
    finally:
        for s in (client, server, listener):
            s.close()


def test_a_descriptor_that_is_no_socket_has_no_ends() -> None:
    r, w = os.pipe()
    try:
        assert ident(r) is None
        assert not shut_down(r, ENDS)
        os.write(w, b"x")
        assert os.read(r, 1) == b"x"  # and is left as it was
    finally:
        os.close(r)
        os.close(w)
