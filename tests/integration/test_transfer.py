"""Large messages and ordering under concurrency."""

from __future__ import annotations

from pathlib import Path

import pytest

from pydist_tools.cluster import Cluster


@pytest.mark.parametrize("size", [1 << 20, 64 << 20], ids=["1MiB", "64MiB"])
def test_large_binaries_arrive_intact_both_ways(cluster: Cluster, size: int) -> None:
    a, b = cluster.start("a"), cluster.start("b")
    assert b.eval(f"net_adm:ping('{a.node}').") == "pong"
    # b -> a: a checksums what it got
    assert b.eval(f"""
        B = crypto:strong_rand_bytes({size}),
        erlang:md5(B) =:= rpc:call('{a.node}', erlang, md5, [B], 60000).
    """) is True
    # a -> b: a sends the binary and its checksum, b checks
    assert b.eval(f"""
        {{Bin, Sum}} = rpc:call('{a.node}', erlang, apply,
            [fun() -> X = crypto:strong_rand_bytes({size}), {{X, erlang:md5(X)}} end, []], 60000),
        {{byte_size(Bin), erlang:md5(Bin) =:= Sum}}.
    """) == (size, True)


def test_eight_senders_keep_their_order(cluster: Cluster) -> None:
    a, b = cluster.start("a"), cluster.start("b")
    assert b.eval(f"net_adm:ping('{a.node}').") == "pong"
    senders, count = 8, 10_000
    a.eval(f"persistent_term:put(r, "
           f"pd_agent:ordered_receiver(ordered_inbox, {{{senders}, {count}}})).")
    b.eval(f"""
        [spawn(pd_agent, blast, [{{ordered_inbox, '{a.node}'}}, S, {count}])
         || S <- lists:seq(1, {senders})], ok.
    """)
    result = a.eval("""
        persistent_term:get(r) ! {get, self()},
        receive {result, R} -> R after 90000 -> timeout end.
    """, timeout=120)
    assert result == ("ok", senders)


def test_huge_messages_intact_among_small_ones(cluster: Cluster) -> None:
    """64 MiB, 256 MiB and 64 MiB binaries from one process while four
    others stream small messages to the same receiver: each big one
    arrives whole (its checksum holds), and every sender's messages, the
    big sender's too, arrive in the order sent, none lost."""
    a, b = cluster.start("a"), cluster.start("b")
    assert b.eval(f"net_adm:ping('{a.node}').") == "pong"
    b.eval(f"persistent_term:put(sink, rpc:call('{a.node}', pd_agent, checked_sink, [])).")
    sent = b.eval(f"pd_agent:checked_bulk(persistent_term:get(sink), "
                  f"[{64 << 20}, {256 << 20}, {64 << 20}], 4).", timeout=300)
    assert sent["big"] == 3
    assert all(sent[s] >= 1 for s in range(1, 5)), sent
    counts, bad = b.eval(
        f"pd_agent:checked_settle(persistent_term:get(sink), {sum(sent.values())}).",
        timeout=120)
    assert bad == 0
    assert counts == sent, (counts, sent)


def test_the_port_program_keeps_its_heap_unless_told_otherwise(cluster: Cluster) -> None:
    """glibc's malloc settings that spare the port program a page fault per
    4 KiB it carries reach it, and a value from the environment wins."""
    def malloc_env(pid: int) -> dict[str, str]:
        raw = Path(f"/proc/{pid}/environ").read_bytes().decode()
        pairs = (item.split("=", 1) for item in raw.split("\0") if item.startswith("MALLOC_"))
        return dict(pairs)

    a = cluster.start("a")
    b = cluster.start("b", env={"MALLOC_TRIM_THRESHOLD_": "1048576"})
    assert malloc_env(a.port_pid) == {"MALLOC_MMAP_THRESHOLD_": "4194304",
                                      "MALLOC_TRIM_THRESHOLD_": "67108864"}
    assert malloc_env(b.port_pid) == {"MALLOC_MMAP_THRESHOLD_": "4194304",
                                      "MALLOC_TRIM_THRESHOLD_": "1048576"}
