"""The channel table: ids on the port, names between nodes, bounded memory."""

from __future__ import annotations

import random

from pydist.core.channels import Channel, ChannelTable, Link, received_key
from pydist.core.wire import FLAG_INITIATOR, PY_CHAN_BASE


def table() -> ChannelTable:
    return ChannelTable(random.Random(7))


def link() -> Link:
    return Link(1, b"b@h", "tcp://127.0.0.1:1", 0.0, 0.0, up=True)


def test_py_chan_ids_stay_in_pythons_range_and_skip_ids_in_use() -> None:
    t = table()
    ln = link()
    first = t.new_py_chan()
    assert first == PY_CHAN_BASE
    t.add(Channel(first + 1, b"b@h", 5, 1, False, ln))
    assert t.new_py_chan() == first + 2  # first+1 is taken
    t._next_py = 2**32 - 1
    assert t.new_py_chan() == 2**32 - 1
    assert t.new_py_chan() == PY_CHAN_BASE  # wrapped, never below the base


def test_add_and_remove_keep_both_indexes_and_the_link_in_step() -> None:
    t, ln = table(), link()
    ch = Channel(3, b"b@h", 5, 99, True, ln)
    t.add(ch)
    assert t[3] is ch and len(t) == 1 and ln.channels == {3}
    # a frame from the peer (which did not open the channel) finds it
    assert t.remote(received_key(5, 99, 0)) is ch
    assert t.remote(received_key(5, 99, FLAG_INITIATOR)) is None
    t.remove(ch)
    assert t == {} and ln.channels == set()
    assert t.recently_closed(ch.remote_key)


def test_new_epoch_avoids_epochs_in_use() -> None:
    t, ln = table(), link()
    taken = random.Random(7).randrange(1, 1 << 32)  # what the table would draw first
    t.add(Channel(1, b"b@h", 5, taken, True, ln))
    assert t.new_epoch(5) != taken
    assert 1 <= t.new_epoch(6) < 1 << 32


def test_recently_closed_is_bounded() -> None:
    t = table()
    for i in range(5000):
        t.remember_closed((1, i, True))
    assert not t.recently_closed((1, 0, True))
    assert t.recently_closed((1, 4999, True))
    assert len(t._closed) <= 1024
