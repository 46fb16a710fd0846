"""Lanes per process: py_dist:set_lane/1 puts a process's plain ``!`` sends
on a lane; every other process's sends, and the process's own signals and
fragmented messages, stay on the connection."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable

from pydist_tools.cluster import Cluster, ErlNode

from .helpers import COLLECTOR, collected, port_stat, port_stats


def _lane_process(node: ErlNode, lane: str) -> tuple[str, str]:
    """Register ``lanep`` on ``node``: a process that sets ``lane`` (twice)
    and then sends what it is asked to (:func:`_send_from`); what set_lane/1
    returned each time."""
    old, again = node.eval(
        "Self = self(), "
        f"P = spawn(fun() -> Old = py_dist:set_lane({lane}), "
        f"Again = py_dist:set_lane({lane}), Self ! {{set, Old, Again}}, "
        "(fun L() -> receive {send, Msgs, From} -> [D ! M || {D, M} <- Msgs], "
        "From ! sent, L(); stop -> ok end end)() end), "
        "register(lanep, P), receive {set, O, A} -> {O, A} after 10000 -> timeout end.")
    return old, again


def _send_from(node: ErlNode, sends: str) -> None:
    """``lanep`` sends each ``{Dest, Msg}`` of the list ``sends``, with ``!``."""
    assert node.eval(f"lanep ! {{send, {sends}, self()}}, "
                     "receive sent -> ok after 30000 -> timeout end.") == "ok"


def _pair(cluster: Cluster) -> tuple[ErlNode, ErlNode]:
    a, b = cluster.start("a"), cluster.start("b")
    assert a.eval(f"net_adm:ping('{b.node}').") == "pong"
    b.eval(COLLECTOR)
    return a, b


def _process_lanes(node: ErlNode) -> int:
    count: int = node.eval("maps:get(process_lanes, maps:get(port, py_dist:info()), -1).")
    return count


def _until(check: Callable[[], bool], what: str, seconds: float = 15) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_one_process_on_the_unreliable_lane_the_other_on_the_connection(
        cluster: Cluster) -> None:
    a, b = _pair(cluster)
    sent = port_stat(a, "lane_unreliable_sent")
    delivered = port_stat(b, "lane_unreliable_delivered")
    assert _lane_process(a, "unreliable") == ("reliable", "unreliable")
    assert _process_lanes(a) == 1
    # to the collector's pid and to its registered name; meanwhile another
    # process sends to the same node with !
    inbox = f"rpc:call('{b.node}', erlang, whereis, [inbox])"
    a.eval(f"Inbox = {inbox}, spawn(fun() -> [Inbox ! {{plain, I}} || I <- lists:seq(1, 150)] "
           "end), ok.")
    _send_from(a, f"[{{{inbox}, {{lane, I}}}} || I <- lists:seq(1, 100)] ++ "
                  f"[{{{{inbox, '{b.node}'}}, {{lane_named, I}}}} || I <- lists:seq(1, 100)]")
    _until(lambda: len([m for m in collected(b) if m[0] == "plain"]) == 150, "plain sends")
    # every send of the lane's process was counted on the lane, none of the other's
    assert port_stat(a, "lane_unreliable_sent") - sent == 200
    dropped = sum(v for k, v in port_stats(a).items()
                  if k.startswith(b"lane_unreliable_dropped"))
    _until(lambda: port_stat(b, "lane_unreliable_delivered") - delivered == 200 - dropped,
           "lane deliveries")
    got = collected(b)
    for tag in ("lane", "lane_named"):
        numbers = [m[1] for m in got if m[0] == tag]
        assert len(set(numbers)) == len(numbers) and set(numbers) <= set(range(1, 101))
    assert len([m for m in got if m[0] in ("lane", "lane_named")]) == 200 - dropped
    assert [m[1] for m in got if m[0] == "plain"] == list(range(1, 151))  # in order


def test_signals_and_fragmented_messages_stay_on_the_connection(cluster: Cluster) -> None:
    """A process on the unordered lane links to a remote process, sends it
    a 1 MiB binary and small messages: the link, the binary (cut into
    fragments) and the exit coming back go on the connection, the small
    messages alone on the lane."""
    a, b = _pair(cluster)
    sent = port_stat(a, "lane_unordered_sent")
    result = a.eval(
        "Self = self(), "
        f"Partner = rpc:call('{b.node}', erlang, spawn, "
        "[fun() -> receive {bin, B, From} -> From ! {size, byte_size(B)} end, "
        "exit(done) end]), "
        "spawn(fun() -> process_flag(trap_exit, true), reliable = py_dist:set_lane(unordered), "
        "link(Partner), "
        f"[{{inbox, '{b.node}'}} ! {{small, I}} || I <- lists:seq(1, 10)], "
        "Partner ! {bin, binary:copy(<<7>>, 1 bsl 20), self()}, "
        "Size = receive {size, S} -> S after 20000 -> none end, "
        "Exit = receive {'EXIT', Partner, R} -> R after 20000 -> none end, "
        "Self ! {result, Size, Exit, py_dist:get_lane()} end), "
        "receive {result, S, E, L} -> {S, E, L} after 45000 -> timeout end.", timeout=60)
    assert result == (1 << 20, "done", "unordered")
    _until(lambda: len(collected(b)) == 10, "small lane messages")
    assert sorted(m[1] for m in collected(b)) == list(range(1, 11))
    assert port_stat(a, "lane_unordered_sent") - sent == 10
    # the process ended: its lane is forgotten here and in the port program
    _until(lambda: _process_lanes(a) == 0, "the lane of a process that exited is cleared")


def test_a_restarted_port_program_is_told_the_lanes(cluster: Cluster) -> None:
    a, b = _pair(cluster)
    assert _lane_process(a, "{realtime, 500}") == ("reliable", ("realtime", 500))
    os_pid = a.eval("maps:get(os_pid, py_dist:info()).")
    os.kill(os_pid, signal.SIGKILL)
    _until(lambda: a.eval("maps:get(os_pid, py_dist:info()).") not in (os_pid, "undefined"),
           "the port program is restarted")
    _until(lambda: _process_lanes(a) == 1, "the restarted port program is told the lanes")
    _until(lambda: a.eval(f"net_adm:ping('{b.node}').") == "pong", "reconnected")
    sent = port_stat(a, "lane_realtime_sent")
    _send_from(a, f"[{{{{inbox, '{b.node}'}}, {{rt, I}}}} || I <- lists:seq(1, 5)]")
    assert port_stat(a, "lane_realtime_sent") - sent == 5
    _until(lambda: len(collected(b)) == 5, "realtime lane messages")


def test_a_bad_lane_is_a_badarg(cluster: Cluster) -> None:
    a = cluster.start("a")
    for bad in ("fast", "{realtime, 0}", "{realtime, -1}", "{deadline, 5}"):
        assert a.eval(f"try py_dist:set_lane({bad}) catch error:badarg -> badarg end.") \
            == "badarg"
    assert a.eval("py_dist:get_lane().") == "reliable"
    assert _process_lanes(a) == 0
