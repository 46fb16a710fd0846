"""A peer that stops taking data makes its connection busy as stock's does
(OTP's distribution_SUITE freezes a node the same way): senders are
suspended, a ``nosuspend`` send answers ``nosuspend``, signals sent
meanwhile arrive after the freeze in order, and the connection stays up."""

from __future__ import annotations

from pydist_tools.cluster import Cluster

#: long enough for the sender side to notice the stall many times over;
#: the checks below are causal (what came before the thaw), not timed
FREEZE_MS = 8000

#: Erlang, in a test run on a with B and Tester bound: B's BEAM frozen as
#: OTP's freeze_node/2 does it; Tester gets `thawed` once it runs again
FREEZE = f"""spawn(B, fun() ->
                     erts_debug:set_internal_state(available_internal_state, true),
                     Tester ! freezing,
                     timer:sleep(300),
                     erts_debug:set_internal_state(block, {FREEZE_MS}),
                     Tester ! thawed
                 end),
        receive freezing -> ok after 10000 -> exit(no_freeze) end,
        timer:sleep(800),"""

#: Erlang, with B and Data bound: NoSuspend(Tries) sends Data to B with
#: [nosuspend] until erts answers nosuspend (or gives up: never)
NOSUSPEND = """NoSuspend = fun NS(0) -> never;
                        NS(N) -> case erlang:send({'__noone__', B}, Data, [nosuspend]) of
                                     nosuspend -> nosuspend;
                                     ok -> NS(N - 1)
                                 end
                    end,"""


def test_a_frozen_peer_makes_the_connection_busy(cluster: Cluster) -> None:
    a, b = cluster.start("a"), cluster.start("b")
    assert a.eval(f"net_adm:ping('{b.node}').") == "pong"
    suspended, answer, thawed_before, order, down = a.eval(f"""
        B = '{b.node}',
        Tester = self(),
        Data = binary:copy(<<253>>, 1 bsl 20),
        Record = fun Loop(Acc) ->
                     receive
                         {{report, To}} -> To ! {{recorded, lists:reverse(Acc)}};
                         M -> Loop([M | Acc])
                     end
                 end,
        Q = spawn(B, fun() -> process_flag(trap_exit, true), Record([]) end),
        erlang:monitor_node(B, true),
        {FREEZE}
        Streamer = spawn(fun S() -> {{'__noone__', B}} ! Data, S() end),
        WaitSuspended = fun W(0) -> running;
                            W(N) -> case process_info(Streamer, status) of
                                        {{status, suspended}} -> suspended;
                                        _ -> timer:sleep(10), W(N - 1)
                                    end
                        end,
        Suspended = WaitSuspended(1000),
        {NOSUSPEND}
        spawn(fun() -> Tester ! {{nosuspend, NoSuspend(100000)}} end),
        Answer = receive {{nosuspend, R}} -> R after 60000 -> no_answer end,
        ThawedBefore = receive thawed -> yes after 0 -> no end,
        P = spawn(fun() -> Q ! {{m, 1}}, exit(Q, {{bye, 2}}), Q ! {{m, 3}} end),
        case ThawedBefore of
            yes -> ok;
            no -> receive thawed -> ok after 60000 -> exit(never_thawed) end
        end,
        exit(Streamer, kill),
        Q ! {{report, self()}},
        Got = receive {{recorded, L}} -> L after 60000 -> no_report end,
        Order = [M || M <- Got, element(1, M) =:= m orelse M =:= {{'EXIT', P, {{bye, 2}}}}],
        Down = receive {{nodedown, B}} -> down after 0 -> up end,
        {{Suspended, Answer, ThawedBefore, [if is_tuple(M), element(1, M) =:= 'EXIT' -> exit;
                                             true -> M end || M <- Order], Down}}.
    """, timeout=180)
    assert suspended == "suspended"  # the stream's sender, held while the peer is frozen
    assert answer == "nosuspend"
    assert thawed_before == "no"  # answered during the freeze, not after it
    assert order == [("m", 1), "exit", ("m", 3)]
    assert down == "up"
    stats = a.eval("maps:get(stats, maps:get(port, py_dist:info())).")
    assert stats.get(b"channels_stalled", 0) >= 1
    assert a.eval(f"net_adm:ping('{b.node}').") == "pong"


def test_the_controller_hook_waits_while_the_connection_is_busy(cluster: Cluster) -> None:
    """OTP's suites make a connection busy by streaming through the
    controller's ``{send, From, Ref, Data}`` hook to a frozen node until the
    streaming process waits for its answer, then expect ``nosuspend``."""
    a, b = cluster.start("a"), cluster.start("b")
    assert a.eval(f"net_adm:ping('{b.node}').") == "pong"
    # the streamer counts as blocked when seen waiting twice, 200 ms apart
    status, answer, thawed_before = a.eval(f"""
        B = '{b.node}',
        Tester = self(),
        erts_debug:set_internal_state(available_internal_state, true),
        Ctrl = erts_debug:get_internal_state({{dist_ctrl, B}}),
        Ext = fun(T) -> <<131, E/binary>> = term_to_binary(T), E end,
        Data = binary:copy(<<253>>, 1 bsl 20),
        {FREEZE}
        Streamer = spawn(fun S() ->
                             Ref = make_ref(),
                             Ctrl ! {{send, self(), Ref,
                                      [<<131, 68, 0>>, Ext({{6, self(), '', '__noone__'}}),
                                       Ext(Data)]}},
                             receive {{Ref, ok}} -> S() end
                         end),
        WaitBlocked = fun W(0) -> running;
                          W(N) -> timer:sleep(10),
                                  case process_info(Streamer, [status, message_queue_len]) of
                                      [{{status, waiting}}, _] ->
                                          timer:sleep(200),
                                          case process_info(Streamer, status) of
                                              {{status, waiting}} -> waiting;
                                              _ -> W(N - 1)
                                          end;
                                      _ -> W(N - 1)
                                  end
                      end,
        Status = WaitBlocked(1000),
        {NOSUSPEND}
        Answer = NoSuspend(100000),
        ThawedBefore = receive thawed -> yes after 0 -> no end,
        case ThawedBefore of
            yes -> ok;
            no -> receive thawed -> ok after 60000 -> exit(never_thawed) end
        end,
        exit(Streamer, kill),
        {{Status, Answer, ThawedBefore}}.
    """, timeout=180)
    assert status == "waiting"
    assert answer == "nosuspend"
    assert thawed_before == "no"
    assert a.eval(f"net_adm:ping('{b.node}').") == "pong"
