-module(py_dist_send_tests).

-include_lib("eunit/include/eunit.hrl").
-include("py_dist.hrl").

-define(PORT_KEY, {py_dist_port, port}).

%%% lane_of/1

lane_of_each_option_test_() ->
    [?_assertEqual(reliable, py_dist:lane_of([])),
     ?_assertEqual(reliable, py_dist:lane_of([reliable])),
     ?_assertEqual({?PY_DIST_LANE_UNORDERED, 0, none}, py_dist:lane_of([unordered])),
     ?_assertEqual({?PY_DIST_LANE_UNRELIABLE, 0, none}, py_dist:lane_of([unreliable])),
     ?_assertEqual({?PY_DIST_LANE_REALTIME, 0, none}, py_dist:lane_of([realtime])),
     ?_assertEqual({?PY_DIST_LANE_REALTIME, 40, none}, py_dist:lane_of([{deadline, 40}])),
     %% nothing to drop on the reliable lane, so nothing to tell
     ?_assertEqual(reliable, py_dist:lane_of([{notify, t}]))].

lane_of_combinations_test_() ->
    [?_assertEqual({?PY_DIST_LANE_UNORDERED, 0, none},
                   py_dist:lane_of([reliable, unordered])),
     ?_assertEqual({?PY_DIST_LANE_UNRELIABLE, 0, none},
                   py_dist:lane_of([unreliable, unordered])),
     ?_assertEqual({?PY_DIST_LANE_UNRELIABLE, 0, none},
                   py_dist:lane_of([unordered, unreliable, reliable])),
     ?_assertEqual({?PY_DIST_LANE_REALTIME, 0, none},
                   py_dist:lane_of([unreliable, realtime, unordered])),
     ?_assertEqual({?PY_DIST_LANE_REALTIME, 30, none},
                   py_dist:lane_of([realtime, {deadline, 30}])),
     ?_assertEqual({?PY_DIST_LANE_REALTIME, 30, none},
                   py_dist:lane_of([unordered, {deadline, 30}])),
     %% the shortest deadline, wherever it stands
     ?_assertEqual({?PY_DIST_LANE_REALTIME, 20, none},
                   py_dist:lane_of([{deadline, 50}, {deadline, 20}, {deadline, 70}])),
     %% the first tag
     ?_assertEqual({?PY_DIST_LANE_UNORDERED, 0, {notify, a}},
                   py_dist:lane_of([{notify, a}, unordered, {notify, b}])),
     ?_assertEqual({?PY_DIST_LANE_REALTIME, 5, {notify, {x, make_ref}}},
                   py_dist:lane_of([{deadline, 5}, {notify, {x, make_ref}}])),
     %% the wire has 32 bits
     ?_assertEqual({?PY_DIST_LANE_REALTIME, 16#FFFFFFFF, none},
                   py_dist:lane_of([{deadline, 1 bsl 40}]))].

lane_of_junk_is_badarg_test_() ->
    [?_assertError(badarg, py_dist:lane_of(Junk))
     || Junk <- [unordered, #{}, [unordered | realtime], [fast], [{deadline, 0}],
                 [{deadline, -5}], [{deadline, 1.5}], [{deadline, soon}], [deadline],
                 [notify], [{notify}], [{notify, a, b}], [unordered, "realtime"],
                 [{reliable, true}]]].

%%% set_send_opts/1, get_send_opts/0

send_opts_round_trip_test() ->
    ?assertEqual([], py_dist:get_send_opts()),
    ?assertEqual([], py_dist:set_send_opts([unordered, {notify, t}])),
    ?assertEqual([unordered, {notify, t}], py_dist:get_send_opts()),
    ?assertEqual([unordered, {notify, t}], py_dist:set_send_opts([{deadline, 9}])),
    ?assertEqual([{deadline, 9}], py_dist:get_send_opts()),
    %% junk changes nothing
    ?assertError(badarg, py_dist:set_send_opts([junk])),
    ?assertEqual([{deadline, 9}], py_dist:get_send_opts()),
    ?assertEqual([{deadline, 9}], py_dist:set_send_opts([])),
    ?assertEqual([], py_dist:get_send_opts()),
    ?assertEqual(undefined, get({py_dist, send_opts})).

send_opts_are_per_process_test() ->
    _ = py_dist:set_send_opts([realtime]),
    try
        Self = self(),
        spawn(fun() -> Self ! {theirs, py_dist:get_send_opts()} end),
        ?assertEqual([theirs], receive {theirs, Opts} -> [theirs | Opts] end)
    after
        py_dist:set_send_opts([])
    end.

%%% send/2,3 on this node: as `!'

lane_options() ->
    [[], [reliable], [unordered], [unreliable], [realtime], [{deadline, 10}],
     [unordered, {notify, t}], [realtime, {deadline, 1}, {notify, t}]].

send_to_local_pid_delivers_on_every_lane_test_() ->
    [?_assertEqual({got, Opts}, send_and_receive(fun(Self) -> Self end, Opts))
     || Opts <- lane_options()].

send_to_local_names_delivers_test_() ->
    Name = py_dist_send_tests_receiver,
    Setup = fun() -> true = register(Name, self()) end,
    Cleanup = fun(_) -> unregister(Name) end,
    {setup, local, Setup, Cleanup,
     [?_assertEqual({got, Opts}, send_and_receive(Dest, Opts))
      || Opts <- lane_options(),
         Dest <- [fun(_) -> Name end, fun(_) -> {Name, node()} end]]}.

send_with_a_port_gone_delivers_locally_test() ->
    %% a stale entry, as after the port owner's end
    Port = open_port({spawn_executable, "/bin/cat"}, [{packet, 4}, binary]),
    true = port_close(Port),
    with_port_term(Port, fun() ->
        ?assertEqual({error, no_port}, py_dist_port:port()),
        ?assertEqual({got, [unordered]}, send_and_receive(fun(S) -> S end, [unordered]))
    end).

send_with_default_opts_test() ->
    _ = py_dist:set_send_opts([unreliable, {notify, t}]),
    try
        ?assertEqual(ok, py_dist:send(self(), default)),
        ?assertEqual(default, receive M -> M after 1000 -> timeout end)
    after
        py_dist:set_send_opts([])
    end.

send_to_unregistered_local_name_is_badarg_as_with_bang_test() ->
    ?assertError(badarg, py_dist:send(py_dist_send_tests_nobody, m, [unordered])).

send_junk_is_badarg_test_() ->
    [?_assertError(badarg, py_dist:send(self(), m, [junk])),
     ?_assertError(badarg, py_dist:send("me", m, [unordered])),
     ?_assertError(badarg, py_dist:send({a, "b@h"}, m, [unordered]))].

send_remote_with_no_port_falls_back_test() ->
    %% not distributed here, so `!' to another node goes nowhere; no crash
    ?assertEqual({error, no_port}, py_dist_port:port()),
    ?assertEqual(ok, py_dist:send({name, 'b@h'}, m, [unordered])),
    ?assertEqual(ok, py_dist:send(remote_pid(), m, [realtime])).

%%% send/3 to another node: a lane packet on the port

lane_packet_layout_test() ->
    ?assertEqual({?PY_DIST_LANE_UNORDERED, 0, <<"b@h">>, <<>>, {name, {hello, 1}}},
                 decode_lane(py_dist:lane_packet(py_dist:lane_of([unordered]), 'b@h',
                                                 name, {hello, 1}))),
    Pid = remote_pid(),
    Choice = py_dist:lane_of([{deadline, 25}, {notify, {my, tag}}]),
    {Lane, Deadline, Node, Notify, Payload} =
        decode_lane(py_dist:lane_packet(Choice, 'b@h', Pid, big)),
    ?assertEqual({?PY_DIST_LANE_REALTIME, 25, <<"b@h">>}, {Lane, Deadline, Node}),
    ?assertEqual({self(), {my, tag}}, binary_to_term(Notify)),
    ?assertEqual({Pid, big}, Payload).

%% The port program stands in for by cat(1): what send/3 writes comes back.
%% This node is not distributed, so no connection to b@h can be made: the
%% message is not written (the far node would not take it) and the sender
%% is told, if it asked.
send_to_a_node_not_connected_writes_nothing_test() ->
    with_cat(fun(Port) ->
        ok = py_dist:send({name, 'b@h'}, {hello, 1}, [unordered, {notify, t1}]),
        ?assertEqual({py_dist_dropped, t1, not_connected},
                     receive {py_dist_dropped, _, _} = D -> D after 1000 -> timeout end),
        ok = py_dist:send(remote_pid(), m, [realtime]),
        ?assertEqual(nothing, receive {Port, _} = P -> P after 200 -> nothing end)
    end).

default_opts_take_the_lane_test() ->
    with_cat(fun(Port) ->
        _ = py_dist:set_send_opts([unreliable, {notify, t2}]),
        try
            ok = py_dist:send({name, 'b@h'}, m),
            ?assertEqual({py_dist_dropped, t2, not_connected},
                         receive {py_dist_dropped, _, _} = D -> D after 1000 -> timeout end),
            ?assertEqual(nothing, receive {Port, _} = P -> P after 200 -> nothing end)
        after
            py_dist:set_send_opts([])
        end
    end).

reliable_and_local_sends_skip_the_port_test() ->
    with_cat(fun(Port) ->
        ok = py_dist:send({name, 'b@h'}, m, [reliable]),
        ok = py_dist:send(self(), local, [unordered]),
        ?assertEqual(local, receive local -> local after 1000 -> timeout end),
        ?assertEqual(nothing, receive {Port, _} = P -> P after 200 -> nothing end)
    end).

huge_notify_tag_is_badarg_test() ->
    with_cat(fun(_Port) ->
        ?assertError(badarg, py_dist:send({name, 'b@h'}, m,
                                          [unordered, {notify, binary:copy(<<1>>, 70000)}]))
    end).

%%% The port owner's side

deliver_test() ->
    Name = py_dist_send_tests_deliver,
    true = register(Name, self()),
    try
        ok = py_dist_port:deliver(term_to_binary({self(), to_pid})),
        ok = py_dist_port:deliver(term_to_binary({Name, to_name})),
        ?assertEqual([to_pid, to_name], [receive M -> M after 1000 -> timeout end
                                         || _ <- [1, 2]])
    after
        unregister(Name)
    end.

deliver_never_crashes_test() ->
    quiet(fun() ->
        ok = py_dist_port:deliver(term_to_binary({py_dist_send_tests_nobody, m})),
        ok = py_dist_port:deliver(term_to_binary({remote_pid(), m})),
        ok = py_dist_port:deliver(term_to_binary({"me", m})),
        ok = py_dist_port:deliver(term_to_binary(m)),
        ok = py_dist_port:deliver(<<131, 255>>),
        ok = py_dist_port:deliver(<<>>),
        ?assertEqual(nothing, receive M -> M after 100 -> nothing end)
    end).

dropped_test() ->
    ok = py_dist_port:dropped(term_to_binary({self(), {my, tag}}), congested),
    ?assertEqual({py_dist_dropped, {my, tag}, congested},
                 receive M -> M after 1000 -> timeout end),
    ok = py_dist_port:dropped(term_to_binary({remote_pid(), t}), deadline),
    ok = py_dist_port:dropped(term_to_binary(self()), deadline),
    ok = py_dist_port:dropped(<<131, 119, 5, "zz_xq">>, deadline),
    ok = py_dist_port:dropped(<<1, 2, 3>>, deadline),
    ?assertEqual(nothing, receive M2 -> M2 after 100 -> nothing end).

%%% Helpers

send_and_receive(DestOf, Opts) ->
    Ref = make_ref(),
    ok = py_dist:send(DestOf(self()), {Ref, Opts}, Opts),
    receive {Ref, Got} -> {got, Got} after 1000 -> timeout end.

%% A pid of the node b@h.
remote_pid() ->
    binary_to_term(<<131, 88, 119, 3, "b@h", 7:32, 0:32, 1:32>>).

with_cat(Fun) ->
    Port = open_port({spawn_executable, "/bin/cat"}, [{packet, 4}, binary]),
    try
        with_port_term(Port, fun() ->
            ?assertEqual({ok, Port}, py_dist_port:port()),
            Fun(Port)
        end)
    after
        catch port_close(Port)
    end.

with_port_term(Port, Fun) ->
    persistent_term:put(?PORT_KEY, Port),
    try Fun()
    after persistent_term:erase(?PORT_KEY)
    end.

decode_lane(Packet) ->
    <<?PY_DIST_OP_LANE, Lane, Deadline:32, NodeLen:16, Node:NodeLen/binary,
      NotifyLen:16, Notify:NotifyLen/binary, Payload/binary>> = iolist_to_binary(Packet),
    {Lane, Deadline, Node, Notify, binary_to_term(Payload)}.

quiet(Fun) ->
    #{level := Level} = logger:get_primary_config(),
    ok = logger:set_primary_config(level, none),
    try Fun()
    after logger:set_primary_config(level, Level)
    end.
