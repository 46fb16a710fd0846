-module(py_dist_packet_tests).

-include_lib("eunit/include/eunit.hrl").
-include("py_dist.hrl").

data_packet_layout_test() ->
    Bin = iolist_to_binary(py_dist_packet:data(7, [{3, <<"abc">>}, {0, []}, {2, [<<"x">>, "y"]}])),
    ?assertEqual(<<?PY_DIST_OP_DATA, 7:32, 3:32, "abc", 0:32, 2:32, "xy">>, Bin).

data_round_trip_test() ->
    Packets = [<<>>, <<"a">>, binary:copy(<<1>>, 70000)],
    Bin = iolist_to_binary(py_dist_packet:data(16#7fffffff, [{byte_size(P), P} || P <- Packets])),
    {data, Chan, Frames} = py_dist_packet:decode(Bin),
    ?assertEqual(16#7fffffff, Chan),
    ?assertEqual({ok, Packets}, py_dist_packet:split_frames(Frames)).

tick_is_one_empty_packet_of_the_tick_flow_test() ->
    Tick = py_dist_packet:tick(5),
    ?assertEqual(<<?PY_DIST_OP_FLOWS, 5:32, ?PY_DIST_FLOW_TICK:64, 4:32, 0:32>>, Tick),
    ?assertEqual({5, [{?PY_DIST_FLOW_TICK, [<<>>]}]}, parse_flows(Tick)).

ctrl_round_trip_test() ->
    Term = {connect, 3, <<"b@h">>, <<"127.0.0.1">>, 4369},
    ?assertEqual({ctrl, Term}, py_dist_packet:decode(py_dist_packet:ctrl(Term))).

truncated_frames_test_() ->
    Whole = <<3:32, "abc", 2:32, "de">>,
    [?_assertEqual({error, truncated_frame},
                   py_dist_packet:split_frames(binary:part(Whole, 0, N)))
     || N <- lists:seq(1, byte_size(Whole) - 1), N =/= 7].

truncated_prefix_is_whole_frames_test() ->
    ?assertEqual({ok, [<<"abc">>]}, py_dist_packet:split_frames(<<3:32, "abc">>)).

bad_packets_test_() ->
    [?_assertEqual({error, empty_packet}, py_dist_packet:decode(<<>>)),
     ?_assertEqual({error, {unknown_op, 9}}, py_dist_packet:decode(<<9, 1, 2>>)),
     ?_assertEqual({error, bad_control_term},
                   py_dist_packet:decode(<<?PY_DIST_OP_CTRL, 131, 255>>)),
     %% an atom the VM has never seen is refused, not created
     ?_assertEqual({error, bad_control_term},
                   py_dist_packet:decode(<<?PY_DIST_OP_CTRL, 131, 119, 12,
                                           "zz_never_seen">>))].

%%% flows/2

flows_packet_layout_test() ->
    Bin = iolist_to_binary(py_dist_packet:flows(7, [{9, [{3, <<"abc">>}, {2, [<<"x">>, "y"]}]},
                                                  {0, [{0, []}]}])),
    ?assertEqual(<<?PY_DIST_OP_FLOWS, 7:32,
                   9:64, 13:32, 3:32, "abc", 2:32, "xy",
                   0:64, 4:32, 0:32>>, Bin).

flows_round_trip_test() ->
    Groups = [{16#7fffffffffffffff, [<<"a">>, binary:copy(<<1>>, 70000)]},
              {?PY_DIST_FLOW_BARRIER, [<<>>]},
              {2, [<<"b">>]}],
    Packets = [{G, [{byte_size(P), [P]} || P <- Ps]} || {G, Ps} <- Groups],
    Bin = iolist_to_binary(py_dist_packet:flows(16#ffffffff, Packets)),
    ?assertEqual({16#ffffffff, Groups}, parse_flows(Bin)).

flows_refuses_empty_groups_test_() ->
    [?_assertError(function_clause, py_dist_packet:flows(1, [])),
     ?_assertError(function_clause, py_dist_packet:flows(1, [{2, []}]))].

%% The OP_FLOWS packet as Python reads it.
parse_flows(<<?PY_DIST_OP_FLOWS, Chan:32, Groups/binary>>) ->
    {Chan, parse_groups(Groups)}.

parse_groups(<<Flow:64, Len:32, Frames:Len/binary, Rest/binary>>) ->
    {ok, Packets} = py_dist_packet:split_frames(Frames),
    [{Flow, Packets} | parse_groups(Rest)];
parse_groups(<<>>) ->
    [].

%%% classify/1
%%
%% Packets as erts writes them with the atom cache off: <<131,68,0>>, then
%% the control message without its version byte.  Erts encodes atoms as
%% UTF-8 (minor version 2: the fast path); the default encoding of
%% term_to_binary in OTP 25 uses ATOM_EXT, which only the slow path reads.

-define(FAST, [{minor_version, 2}]).
-define(SLOW, [{minor_version, 1}]).

ctl(Control, Enc) ->
    <<131, Ext/binary>> = term_to_binary(Control, Enc),
    Ext.

whole(Control, Enc) ->
    <<131, 68, 0, (ctl(Control, Enc))/binary, 107, 0, 2, "hi">>.

first_fragment(SeqId, FragId, Control) ->
    <<131, 69, SeqId:64, FragId:64, 0, (ctl(Control, ?FAST))/binary, "payload">>.

later_fragment(SeqId, FragId) ->
    <<131, 70, SeqId:64, FragId:64, "more payload">>.

flow_of(Pid) ->
    <<131, 88, 119, L, _:L/binary, Id:32, Serial:32, _:32>> = term_to_binary(Pid, ?FAST),
    max(2, (Id bsl 32) bor Serial).

both(Control) ->
    [py_dist_packet:classify(whole(Control, Enc)) || Enc <- [?FAST, ?SLOW]].

peer() ->
    spawn(fun() -> ok end).

sender_is_the_second_element_test_() ->
    Me = self(),
    To = peer(),
    Ref = make_ref(),
    F = {flow, flow_of(Me)},
    Ops = [{1, Me, To},                       % LINK
           {3, Me, To, normal},               % EXIT
           {4, Me, To},                       % UNLINK
           {6, Me, '', some_name},            % REG_SEND
           {7, Me, To},                       % GROUP_LEADER
           {8, Me, To, kill},                 % EXIT2
           {13, Me, To, token, normal},       % EXIT_TT
           {16, Me, '', some_name, token},    % REG_SEND_TT
           {18, Me, To, token, kill},         % EXIT2_TT
           {19, Me, To, Ref},                 % MONITOR_P
           {19, Me, some_name, Ref},          % MONITOR_P of a name
           {20, Me, To, Ref},                 % DEMONITOR_P
           {21, Me, To, Ref, normal},         % MONITOR_P_EXIT
           {22, Me, To},                      % SEND_SENDER
           {23, Me, To, token},               % SEND_SENDER_TT
           {24, Me, To},                      % PAYLOAD_EXIT
           {25, Me, To, token},               % PAYLOAD_EXIT_TT
           {26, Me, To},                      % PAYLOAD_EXIT2
           {27, Me, To, token},               % PAYLOAD_EXIT2_TT
           {28, Me, To, Ref},                 % PAYLOAD_MONITOR_P_EXIT
           {33, Me, Ref},                     % ALIAS_SEND
           {34, Me, Ref, token}],             % ALIAS_SEND_TT
    [?_assertEqual({Op, [F, F]}, {Op, both(C)}) || C <- Ops, Op <- [element(1, C)]].

spawn_request_sender_is_from_test() ->
    Me = self(),
    Gl = group_leader(),
    F = {flow, flow_of(Me)},
    ?assertEqual([F, F], both({29, make_ref(), Me, Gl, {m, f, 2}, [link, monitor]})),
    ?assertEqual([F, F], both({30, make_ref(), Me, Gl, {m, f, 2}, [], token})).

unlink_id_sender_is_from_test_() ->
    Me = self(),
    To = peer(),
    F = {flow, flow_of(Me)},
    %% the id as SMALL_INTEGER_EXT, INTEGER_EXT and SMALL_BIG_EXT
    [?_assertEqual([F, F], both({Op, Id, Me, To}))
     || Op <- [35, 36], Id <- [7, 70000, 1 bsl 62]].

spawn_reply_sender_is_the_new_process_test_() ->
    To = self(),
    New = peer(),
    [?_assertEqual([{flow, flow_of(New)}, {flow, flow_of(New)}],
                   both({31, make_ref(), To, 2, New})),
     ?_assertEqual([{flow, flow_of(New)}, {flow, flow_of(New)}],
                   both({32, make_ref(), To, 0, New, token})),
     %% a failed spawn: no process sends the reply
     ?_assertEqual([barrier, barrier], both({31, make_ref(), To, 0, system_limit}))].

no_sender_is_a_barrier_test_() ->
    To = self(),
    [?_assertEqual([barrier, barrier], both(C))
     || C <- [{21, some_name, To, make_ref(), normal},   % MONITOR_P_EXIT of a name
              {28, some_name, To, make_ref()},           % PAYLOAD_MONITOR_P_EXIT
              {2, '', To},                               % SEND
              {12, '', To, token},                       % SEND_TT
              {5, self(), To},                           % NODE_LINK, obsolete
              {99, self(), To},                          % an op we do not know
              {22, hd(erlang:ports()), To},              % a port is no process
              {22, 5, To},
              {22},
              {op, self(), To},
              [22, self(), To]]].

same_process_same_flow_other_process_other_flow_test() ->
    Me = self(),
    [P1, P2] = [peer(), peer()],
    [{flow, A}, {flow, A}] = both({22, Me, P1}),
    [{flow, A}, {flow, A}] = both({6, Me, '', name}),
    [{flow, B}, {flow, B}] = both({22, P1, Me}),
    [{flow, C}, {flow, C}] = both({22, P2, Me}),
    ?assertEqual(3, length(lists:usort([A, B, C]))),
    ?assert(lists:min([A, B, C]) >= 2).

fragments_test_() ->
    Me = self(),
    F = flow_of(Me),
    [?_assertEqual({first_fragment, 16#4800000093, 4, F},
                   py_dist_packet:classify(first_fragment(16#4800000093, 4, {6, Me, '', sink}))),
     ?_assertEqual({first_fragment, 1, 2, ?PY_DIST_FLOW_BARRIER},
                   py_dist_packet:classify(first_fragment(1, 2, {2, '', Me}))),
     ?_assertEqual({fragment, 16#4800000093, 3},
                   py_dist_packet:classify(later_fragment(16#4800000093, 3))),
     ?_assertEqual({fragment, 1, 1},
                   py_dist_packet:classify(<<131, 70, 1:64, 1:64>>))].

garbage_is_a_barrier_test_() ->
    Whole = whole({22, self(), self()}, ?FAST),
    <<_:3/binary, Ctl/binary>> = Whole,
    [?_assertEqual(barrier, py_dist_packet:classify(B))
     || B <- [<<>>, <<131>>, <<131, 68>>, <<131, 68, 0>>, <<131, 69, 1:64>>, <<131, 70, 1:64>>,
              <<131, 68, 1, Ctl/binary>>,              % atom cache references
              <<112, 131, Ctl/binary>>,                % pass-through header
              <<131, 68, 0, 104, 3, 97>>,
              <<131, 68, 0, 104, 3, 97, 22, 88, 119, 200>>,
              <<131, 68, 0, 255, 255, 255>>,
              binary:copy(<<255, 0, 131>>, 20)]].

%% Cut anywhere, a packet gives its sender or a barrier, never another
%% flow and never a crash.
truncated_packets_are_safe_test() ->
    Me = self(),
    Packets = [whole(C, Enc) || C <- [{22, Me, Me}, {29, make_ref(), Me, Me, {m, f, 0}, []},
                                       {31, make_ref(), Me, 0, Me}, {35, 1 bsl 62, Me, Me}],
                                Enc <- [?FAST, ?SLOW]],
    F = {flow, flow_of(Me)},
    [?assert(lists:member(py_dist_packet:classify(binary:part(P, 0, N)), [F, barrier]))
     || P <- Packets, N <- lists:seq(0, byte_size(P))].

%% The fast path reads up to the sender and no further; the slow path
%% needs the whole control message.
fast_path_reads_only_up_to_the_sender_test() ->
    Me = self(),
    Cut = fun(Enc) ->
                  Ctl = ctl({22, Me, Me}, Enc),
                  Pid = ctl(Me, Enc),
                  binary:part(<<131, 68, 0, Ctl/binary>>, 0, 3 + 4 + byte_size(Pid))
          end,
    ?assertEqual({flow, flow_of(Me)}, py_dist_packet:classify(Cut(?FAST))),
    ?assertEqual(barrier, py_dist_packet:classify(Cut(?SLOW))).

%% The iolists dist_ctrl_get_data/1 returns: the header in a binary of its
%% own, then the control message, then the message; other shapes too.
classify_packet_test_() ->
    Me = self(),
    Ctl = ctl({22, Me, Me}, ?FAST),
    Slow = ctl({22, Me, Me}, ?SLOW),
    F = {flow, flow_of(Me)},
    Frag = <<131, 69, 7:64, 3:64, 0>>,
    [?_assertEqual(F, py_dist_packet:classify_packet([<<131, 68, 0>>, Ctl, <<107, 0, 1, 0>>])),
     ?_assertEqual(F, py_dist_packet:classify_packet([<<131, 68, 0>>, Slow])),
     ?_assertEqual(F, py_dist_packet:classify_packet(<<131, 68, 0, Ctl/binary>>)),
     ?_assertEqual(F, py_dist_packet:classify_packet([[131, <<68>>], [0 | Ctl], <<1>>])),
     ?_assertEqual(F, py_dist_packet:classify_packet([<<131, 68, 0, Ctl/binary>>, <<"x">>])),
     ?_assertEqual({first_fragment, 7, 3, flow_of(Me)},
                   py_dist_packet:classify_packet([Frag, Ctl, binary:copy(<<1>>, 65000)])),
     ?_assertEqual({fragment, 7, 2},
                   py_dist_packet:classify_packet([<<131, 70, 7:64, 2:64>>, <<1, 2, 3>>])),
     ?_assertEqual(barrier, py_dist_packet:classify_packet([<<131, 68, 0>>, <<104>>])),
     ?_assertEqual(barrier, py_dist_packet:classify_packet([])),
     ?_assertEqual(barrier, py_dist_packet:classify_packet([<<131, 68, 1>>, Ctl]))].

%% Any split of a packet into an iolist classifies as the packet does.
classify_packet_any_split_test() ->
    Me = self(),
    P = whole({29, make_ref(), Me, Me, {m, f, 0}, []}, ?FAST),
    Want = py_dist_packet:classify(P),
    ?assertEqual({flow, flow_of(Me)}, Want),
    [?assertEqual(Want, py_dist_packet:classify_packet(
                          [binary:part(P, 0, A),
                           [binary:part(P, A, B - A)],
                           binary:part(P, B, byte_size(P) - B)]))
     || A <- lists:seq(0, byte_size(P)), B <- lists:seq(A, byte_size(P), 7)].

%%% The controller's batches (py_dist_ctrl:group/2)

erts(Control) ->
    [<<131, 68, 0>>, ctl(Control, ?FAST), <<107, 0, 1, 0>>].

packet(IoData) ->
    {iolist_size(IoData), IoData}.

group_keeps_flow_order_and_splits_at_barriers_test() ->
    [P1, P2, P3] = [self(), peer(), peer()],
    [F1, F2, F3] = [flow_of(P) || P <- [P1, P2, P3]],
    %% P1 sends a message in three fragments, P2 and P3 small ones, and
    %% a SEND without a sender falls in the middle
    A1 = packet([<<131, 69, 9:64, 3:64, 0>>, ctl({22, P1, P3}, ?FAST), <<"a1">>]),
    A2 = packet([<<131, 70, 9:64, 2:64>>, <<"a2">>]),
    A3 = packet([<<131, 70, 9:64, 1:64>>, <<"a3">>]),
    B1 = packet(erts({22, P2, P1})),
    B2 = packet(erts({6, P2, '', sink})),
    C1 = packet(erts({33, P3, make_ref()})),
    X = packet(erts({2, '', P1})),
    Y = packet(erts({5})),
    {Groups, Seqs} = py_dist_ctrl:group([A1, B1, A2, C1, X, Y, B2, A3], #{}),
    ?assertEqual(#{}, Seqs),
    ?assert(lists:all(fun({_, Ps}) -> Ps =/= [] end, Groups)),
    {Before, [{?PY_DIST_FLOW_BARRIER, [X, Y]} | After]} =
        lists:splitwith(fun({F, _}) -> F =/= ?PY_DIST_FLOW_BARRIER end, Groups),
    ?assertEqual(lists:sort([{F1, [A1, A2]}, {F2, [B1]}, {F3, [C1]}]), lists:sort(Before)),
    ?assertEqual(lists:sort([{F2, [B2]}, {F1, [A3]}]), lists:sort(After)).

group_follows_fragments_across_batches_test() ->
    Me = self(),
    F = flow_of(Me),
    First = packet([<<131, 69, 9:64, 3:64, 0>>, ctl({22, Me, Me}, ?FAST), <<"a1">>]),
    Second = packet([<<131, 70, 9:64, 2:64>>, <<"a2">>]),
    Last = packet([<<131, 70, 9:64, 1:64>>, <<"a3">>]),
    {[{F, [First]}], S1} = py_dist_ctrl:group([First], #{}),
    ?assertEqual(#{9 => F}, S1),
    {[{F, [Second]}], S1} = py_dist_ctrl:group([Second], S1),
    ?assertEqual({[{F, [Last]}], #{}}, py_dist_ctrl:group([Last], S1)),
    %% a fragment of a sequence not seen beginning is a barrier
    ?assertEqual({[{?PY_DIST_FLOW_BARRIER, [Last]}], #{}}, py_dist_ctrl:group([Last], #{})),
    %% so are the fragments of a message whose sender is unknown
    NoSender = packet([<<131, 69, 9:64, 2:64, 0>>, ctl({2, '', Me}, ?FAST), <<"b1">>]),
    ?assertEqual({[{?PY_DIST_FLOW_BARRIER, [NoSender, Last]}], #{}},
                 py_dist_ctrl:group([NoSender, Last], S1)),
    %% a message in a single fragment leaves nothing behind
    Single = packet([<<131, 69, 10:64, 1:64, 0>>, ctl({22, Me, Me}, ?FAST), <<"c">>]),
    ?assertEqual({[{F, [Single]}], #{}}, py_dist_ctrl:group([Single], #{})).

%% Many senders in random order: each flow's packets come out in the order
%% they went in, and nothing crosses a barrier.
group_random_batches_test() ->
    Pids = [self() | [peer() || _ <- lists:seq(1, 5)]],
    rand:seed(exsss, {1, 2, 3}),
    In = [case rand:uniform(8) of
              1 -> packet(erts({2, '', self(), N}));
              K -> packet(erts({22, lists:nth(min(K - 1, 6), Pids), self(), N}))
          end || N <- lists:seq(1, 500)],
    {Groups, #{}} = py_dist_ctrl:group(In, #{}),
    Out = lists:append([Ps || {_, Ps} <- Groups]),
    ?assertEqual(lists:sort(In), lists:sort(Out)),
    FlowOf = fun(P) -> {F, _} = py_dist_ctrl_flow(P), F end,
    [?assertEqual([P || P <- In, FlowOf(P) =:= F], [P || P <- Out, FlowOf(P) =:= F])
     || F <- lists:usort([G || {G, _} <- Groups])],
    %% between barriers, the same packets as in the input
    ?assertEqual(segments(In, FlowOf), [lists:sort(S) || S <- segments(Out, FlowOf)]),
    ?assert(lists:all(fun({_, Ps}) -> Ps =/= [] end, Groups)).

py_dist_ctrl_flow({_, IoData}) ->
    case py_dist_packet:classify_packet(IoData) of
        {flow, F} -> {F, ok};
        barrier -> {?PY_DIST_FLOW_BARRIER, ok}
    end.

segments(Packets, FlowOf) ->
    segments(Packets, FlowOf, [], []).

segments([P | Ps], FlowOf, Seg, Acc) ->
    case FlowOf(P) of
        ?PY_DIST_FLOW_BARRIER -> segments(Ps, FlowOf, [], [[P], lists:sort(Seg) | Acc]);
        _ -> segments(Ps, FlowOf, [P | Seg], Acc)
    end;
segments([], _FlowOf, Seg, Acc) ->
    [S || S <- lists:reverse([lists:sort(Seg) | Acc]), S =/= []].

%% A flow names its sending process again, for the controller to hold it.
flow_pid_test() ->
    Pid = spawn(fun() -> receive stop -> ok end end),
    Packet = whole({22, Pid, self()}, ?FAST),
    {flow, Flow} = py_dist_packet:classify(Packet),
    ?assertEqual(Pid, py_dist_packet:flow_pid(Flow)),
    Pid ! stop,
    timer:sleep(10),
    ?assertEqual(undefined, py_dist_packet:flow_pid(Flow)),
    ?assertEqual(undefined, py_dist_packet:flow_pid(0)),
    ?assertEqual(undefined, py_dist_packet:flow_pid(1)),
    ?assertEqual(undefined, py_dist_packet:flow_pid(-5)).

%%% Lanes

lane_packet_layout_test() ->
    Notify = term_to_binary({self(), tag}),
    Payload = term_to_binary({name, hello}),
    Bin = iolist_to_binary(py_dist_packet:lane(?PY_DIST_LANE_REALTIME, 250, <<"b@h">>,
                                               Notify, Payload)),
    ?assertEqual({?PY_DIST_LANE_REALTIME, 250, <<"b@h">>, Notify, Payload}, parse_lane(Bin)),
    ?assertEqual({name, hello}, binary_to_term(element(5, parse_lane(Bin)))).

lane_packet_without_notify_test() ->
    Node = <<"nöde@höst"/utf8>>,
    Bin = iolist_to_binary(py_dist_packet:lane(?PY_DIST_LANE_UNORDERED, 0, Node, <<>>,
                                               [<<"pay">>, "load"])),
    ?assertEqual(<<?PY_DIST_OP_LANE, 1, 0:32, (byte_size(Node)):16, Node/binary,
                   0:16, "payload">>, Bin),
    ?assertEqual({1, 0, Node, <<>>, <<"payload">>}, parse_lane(Bin)).

lane_refuses_what_does_not_fit_test_() ->
    Big = binary:copy(<<0>>, 1 bsl 16),
    [?_assertError(function_clause, py_dist_packet:lane(0, 0, <<"b@h">>, <<>>, <<>>)),
     ?_assertError(function_clause, py_dist_packet:lane(4, 0, <<"b@h">>, <<>>, <<>>)),
     ?_assertError(function_clause, py_dist_packet:lane(1, 1 bsl 32, <<"b@h">>, <<>>, <<>>)),
     ?_assertError(function_clause, py_dist_packet:lane(1, 0, Big, <<>>, <<>>)),
     ?_assertError(function_clause, py_dist_packet:lane(1, 0, <<"b@h">>, Big, <<>>))].

deliver_decode_test_() ->
    Payload = term_to_binary({self(), {hello, <<"x">>}}),
    [?_assertEqual({deliver, Payload},
                   py_dist_packet:decode(<<?PY_DIST_OP_DELIVER, Payload/binary>>)),
     %% undecoded: the port owner decodes it, atoms and all
     ?_assertEqual({deliver, <<131, 119, 5, "zz_xy">>},
                   py_dist_packet:decode(<<?PY_DIST_OP_DELIVER, 131, 119, 5, "zz_xy">>)),
     ?_assertEqual({deliver, <<>>}, py_dist_packet:decode(<<?PY_DIST_OP_DELIVER>>))].

%% The OP_LANE packet as Python reads it.
parse_lane(<<?PY_DIST_OP_LANE, Lane, Deadline:32, NodeLen:16, Node:NodeLen/binary,
             NotifyLen:16, Notify:NotifyLen/binary, Payload/binary>>) ->
    {Lane, Deadline, Node, Notify, Payload}.

%% A header that refers to the atom cache never reaches erts (which has
%% none for a process controller): the handle is not even touched, so a
%% fake one shows it; the frames before it were handed over first.
atom_cache_refs_test_() ->
    NoHandle = make_ref(),
    Frame = fun(P) -> <<(byte_size(P)):32, P/binary>> end,
    Plain = <<131, 68, 3, 16#88, 16#08, 0, 1, "a", 1, 1, "b", 2, 1, "c">>,
    Frag = <<131, 69, 1:64, 2:64, 1, 16#08, 0, 1, "a">>,
    [?_assertEqual({error, {corrupted_header, Plain}},
                   py_dist_packet:put_frames(NoHandle, Frame(Plain))),
     ?_assertEqual({error, {corrupted_header, Frag}},
                   py_dist_packet:put_packet(NoHandle, Frag)),
     ?_assertMatch({error, {corrupted_header, <<131, 68, 255>>}},
                   py_dist_packet:put_packet(NoHandle, <<131, 68, 255>>)),
     %% no references: it goes to erts (which refuses the fake handle)
     ?_assertError(badarg, py_dist_packet:put_packet(NoHandle, <<131, 68, 0, 131, 106>>)),
     ?_assertEqual(ok, py_dist_packet:put_frames(NoHandle, <<>>))].
