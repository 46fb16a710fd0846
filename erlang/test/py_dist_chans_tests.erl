-module(py_dist_chans_tests).

-include_lib("eunit/include/eunit.hrl").
-include("py_dist.hrl").

-define(BASE, ?PY_DIST_PY_CHAN_BASE).

%% Stand-ins: the table only stores controllers, monitors and handles.
ctrl(N) -> list_to_pid("<0.1." ++ integer_to_list(N) ++ ">").

add(Chan, Ctrl, C) -> py_dist_chans:add(Chan, Ctrl, make_ref(), C).

alloc_add(Ctrl, C0) ->
    {Chan, C1} = py_dist_chans:alloc(C0),
    {Chan, add(Chan, Ctrl, C1)}.

%%% Allocation

alloc_counts_up_from_one_test() ->
    C = py_dist_chans:new(),
    {Chans, _} = lists:mapfoldl(fun(N, Acc) -> alloc_add(ctrl(N), Acc) end,
                                C, lists:seq(1, 5)),
    ?assertEqual([1, 2, 3, 4, 5], Chans).

alloc_without_add_moves_on_test() ->
    %% an id handed out is not reused at once, even before add/4
    {A, C1} = py_dist_chans:alloc(py_dist_chans:new()),
    {B, _} = py_dist_chans:alloc(C1),
    ?assertEqual({1, 2}, {A, B}).

alloc_wraps_below_base_test() ->
    C0 = py_dist_chans:new(?BASE - 2),
    {A, C1} = alloc_add(ctrl(1), C0),
    {B, C2} = alloc_add(ctrl(2), C1),
    {D, _} = alloc_add(ctrl(3), C2),
    ?assertEqual([?BASE - 2, ?BASE - 1, 1], [A, B, D]).

alloc_skips_ids_in_use_test() ->
    C0 = add(1, ctrl(1), add(2, ctrl(2), add(4, ctrl(4), py_dist_chans:new()))),
    {A, C1} = alloc_add(ctrl(10), C0),
    {B, C2} = alloc_add(ctrl(11), C1),
    {D, _} = alloc_add(ctrl(12), C2),
    ?assertEqual([3, 5, 6], [A, B, D]).

alloc_skips_in_use_across_the_wrap_test() ->
    C0 = add(?BASE - 1, ctrl(1), add(1, ctrl(2), py_dist_chans:new(?BASE - 1))),
    ?assertMatch({2, _}, py_dist_chans:alloc(C0)).

alloc_reuses_a_forgotten_id_after_the_wrap_test() ->
    C0 = add(1, ctrl(1), py_dist_chans:new(?BASE - 1)),
    {ok, _, C1} = py_dist_chans:forget(ctrl(1), C0),
    {A, C2} = alloc_add(ctrl(2), C1),
    {B, _} = alloc_add(ctrl(3), C2),
    ?assertEqual([?BASE - 1, 1], [A, B]).

alloc_ids_unique_test() ->
    C0 = py_dist_chans:new(?BASE - 50),
    {Chans, C} = lists:mapfoldl(fun(N, Acc) -> alloc_add(ctrl(N), Acc) end,
                                C0, lists:seq(1, 200)),
    ?assertEqual(200, length(lists:usort(Chans))),
    ?assert(lists:all(fun(Ch) -> Ch >= 1 andalso Ch < ?BASE end, Chans)),
    ?assertEqual(200, py_dist_chans:count(C)),
    check(C).

new_refuses_ids_out_of_range_test_() ->
    [?_assertError(function_clause, py_dist_chans:new(N)) || N <- [0, ?BASE, -1]].

%%% States

handshake_forwards_test() ->
    C = add(7, ctrl(1), py_dist_chans:new()),
    ?assertEqual({forward, ctrl(1)}, py_dist_chans:data(7, <<"a">>, C)),
    ?assertEqual(none, py_dist_chans:data(8, <<"a">>, C)),
    ?assertEqual({ok, ctrl(1)}, py_dist_chans:ctrl_of(7, C)),
    ?assertEqual({ok, 7}, py_dist_chans:chan_of(ctrl(1), C)),
    ?assertEqual(#{7 => {handshake, ctrl(1)}}, py_dist_chans:routes(C)).

hold_then_up_hands_over_in_order_test() ->
    DHandle = make_ref(),  % a stand-in: the table never looks inside
    C0 = py_dist_chans:hold(7, add(7, ctrl(1), py_dist_chans:new())),
    ?assertEqual(#{7 => {hold, ctrl(1), []}}, py_dist_chans:routes(C0)),
    C = lists:foldl(fun(F, Acc) ->
                            {held, Acc1} = py_dist_chans:data(7, F, Acc),
                            Acc1
                    end, C0, [<<"1">>, <<"2">>, <<"3">>]),
    {ok, Held, Up} = py_dist_chans:up(7, DHandle, C),
    ?assertEqual([<<"1">>, <<"2">>, <<"3">>], Held),
    ?assertEqual({put, DHandle}, py_dist_chans:data(7, <<"4">>, Up)),
    ?assertEqual({ok, ctrl(1)}, py_dist_chans:ctrl_of(7, Up)),
    check(Up).

up_with_nothing_held_test() ->
    C = py_dist_chans:hold(7, add(7, ctrl(1), py_dist_chans:new())),
    ?assertMatch({ok, [], _}, py_dist_chans:up(7, make_ref(), C)).

hold_and_up_only_from_their_state_test() ->
    C0 = add(7, ctrl(1), py_dist_chans:new()),
    %% up without hold, or on no channel: nothing
    ?assertEqual(none, py_dist_chans:up(7, make_ref(), C0)),
    ?assertEqual(none, py_dist_chans:up(8, make_ref(), C0)),
    %% hold on no channel, or twice: nothing more
    ?assertEqual(C0, py_dist_chans:hold(8, C0)),
    C1 = py_dist_chans:hold(7, C0),
    {held, C2} = py_dist_chans:data(7, <<"x">>, C1),
    ?assertEqual(C2, py_dist_chans:hold(7, C2)),
    %% hold once up: nothing
    {ok, _, C3} = py_dist_chans:up(7, make_ref(), C2),
    ?assertEqual(C3, py_dist_chans:hold(7, C3)),
    ?assertEqual(none, py_dist_chans:up(7, make_ref(), C3)).

forget_test() ->
    Ref = make_ref(),
    C0 = py_dist_chans:add(3, ctrl(1), Ref, add(4, ctrl(2), py_dist_chans:new())),
    {ok, Ref, C1} = py_dist_chans:forget(ctrl(1), C0),
    ?assertEqual(error, py_dist_chans:forget(ctrl(1), C1)),
    ?assertEqual(error, py_dist_chans:ctrl_of(3, C1)),
    ?assertEqual(error, py_dist_chans:chan_of(ctrl(1), C1)),
    ?assertEqual(none, py_dist_chans:data(3, <<"x">>, C1)),
    ?assertEqual({ok, ctrl(2)}, py_dist_chans:ctrl_of(4, C1)),
    ?assertEqual(1, py_dist_chans:count(C1)),
    check(C1).

forget_in_every_state_test_() ->
    Held = py_dist_chans:hold(5, add(5, ctrl(1), py_dist_chans:new())),
    {ok, [], Up} = py_dist_chans:up(5, make_ref(), Held),
    [?_assertMatch({ok, _, _}, py_dist_chans:forget(ctrl(1), C))
     || C <- [add(5, ctrl(1), py_dist_chans:new()), Held, Up]].

clear_test() ->
    R1 = make_ref(),
    R2 = make_ref(),
    C0 = py_dist_chans:add(?BASE, ctrl(2), R2,
                           py_dist_chans:add(1, ctrl(1), R1, py_dist_chans:new())),
    {_, C1} = py_dist_chans:alloc(C0),
    {Gone, C2} = py_dist_chans:clear(C1),
    ?assertEqual([{ctrl(1), R1}, {ctrl(2), R2}], lists:sort(Gone)),
    ?assertEqual(0, py_dist_chans:count(C2)),
    ?assertEqual(#{}, py_dist_chans:ctrls(C2)),
    %% allocation goes on where it was
    ?assertMatch({3, _}, py_dist_chans:alloc(C2)).

%%% Random sequences against a model

random_sequences_test_() ->
    {timeout, 60,
     fun() ->
             _ = rand:seed(exsss, {17, 42, 2024}),
             lists:foreach(fun(_) -> run(300) end, lists:seq(1, 50))
     end}.

%% The model: chan -> {State, Ctrl, HeldInOrder}; applied next to the table.
run(Steps) ->
    Start = case rand:uniform(2) of
                1 -> 1;
                2 -> ?BASE - rand:uniform(20)  % soon wraps
            end,
    run(Steps, py_dist_chans:new(Start), #{}, 1).

run(0, C, Model, _NextCtrl) ->
    check(C),
    check_model(C, Model);
run(N, C0, Model0, NextCtrl) ->
    {C, Model, NextCtrl1} = step(rand:uniform(8), C0, Model0, NextCtrl),
    check(C),
    check_model(C, Model),
    run(N - 1, C, Model, NextCtrl1).

step(1, C0, Model, NextCtrl) ->  % an outbound connection
    Ctrl = ctrl(NextCtrl),
    {Chan, C1} = py_dist_chans:alloc(C0),
    ?assertNot(is_map_key(Chan, Model)),
    ?assert(Chan >= 1 andalso Chan < ?BASE),
    {add(Chan, Ctrl, C1), Model#{Chan => {handshake, Ctrl, []}}, NextCtrl + 1};
step(2, C, Model, NextCtrl) ->  % an accepted one, named by Python
    Chan = ?BASE + rand:uniform(30),
    case is_map_key(Chan, Model) of
        true ->
            {C, Model, NextCtrl};
        false ->
            Ctrl = ctrl(NextCtrl),
            {add(Chan, Ctrl, C), Model#{Chan => {handshake, Ctrl, []}}, NextCtrl + 1}
    end;
step(3, C0, Model, NextCtrl) ->  % a controller goes (or one long gone)
    case pick(Model) of
        {Chan, {_, Ctrl, _}} ->
            {ok, _Ref, C} = py_dist_chans:forget(Ctrl, C0),
            {C, maps:remove(Chan, Model), NextCtrl};
        none ->
            ?assertEqual(error, py_dist_chans:forget(ctrl(0), C0)),
            {C0, Model, NextCtrl}
    end;
step(4, C0, Model, NextCtrl) ->  % hold
    Chan = any_chan(Model),
    C = py_dist_chans:hold(Chan, C0),
    case Model of
        #{Chan := {handshake, Ctrl, []}} ->
            {C, Model#{Chan := {hold, Ctrl, []}}, NextCtrl};
        #{} ->
            ?assertEqual(C0, C),
            {C, Model, NextCtrl}
    end;
step(5, C0, Model, NextCtrl) ->  % up
    Chan = any_chan(Model),
    DHandle = {dhandle, Chan},
    case Model of
        #{Chan := {hold, Ctrl, Held}} ->
            {ok, Got, C} = py_dist_chans:up(Chan, DHandle, C0),
            ?assertEqual(Held, Got),
            {C, Model#{Chan := {up, Ctrl, DHandle}}, NextCtrl};
        #{} ->
            ?assertEqual(none, py_dist_chans:up(Chan, DHandle, C0)),
            {C0, Model, NextCtrl}
    end;
step(6, C, Model, NextCtrl) ->  % the port program goes
    case rand:uniform(10) of
        1 ->
            {Gone, C1} = py_dist_chans:clear(C),
            ?assertEqual(lists:sort([{Ctrl, Ref} || {Ctrl, {_, Ref}} <- maps:to_list(py_dist_chans:ctrls(C))]),
                         lists:sort(Gone)),
            {C1, #{}, NextCtrl};
        _ ->
            {C, Model, NextCtrl}
    end;
step(_, C0, Model, NextCtrl) ->  % data
    Chan = any_chan(Model),
    Frames = integer_to_binary(rand:uniform(1000000)),
    case {Model, py_dist_chans:data(Chan, Frames, C0)} of
        {#{Chan := {handshake, Ctrl, _}}, {forward, Ctrl}} ->
            {C0, Model, NextCtrl};
        {#{Chan := {hold, Ctrl, Held}}, {held, C}} ->
            {C, Model#{Chan := {hold, Ctrl, Held ++ [Frames]}}, NextCtrl};
        {#{Chan := {up, _, DHandle}}, {put, DHandle}} ->
            {C0, Model, NextCtrl};
        {#{}, none} ->
            ?assertNot(is_map_key(Chan, Model)),
            {C0, Model, NextCtrl}
    end.

%% A channel in use most of the time, else any.
any_chan(Model) ->
    case {rand:uniform(5), pick(Model)} of
        {1, _} -> rand:uniform(10);
        {_, {Chan, _}} -> Chan;
        {_, none} -> rand:uniform(10)
    end.

pick(Model) when map_size(Model) =:= 0 ->
    none;
pick(Model) ->
    L = maps:to_list(Model),
    lists:nth(rand:uniform(length(L)), L).

%% routes and ctrls agree: one entry each per channel, naming each other;
%% ids of either side in their range.
check(C) ->
    Routes = py_dist_chans:routes(C),
    Ctrls = py_dist_chans:ctrls(C),
    ?assertEqual(map_size(Routes), map_size(Ctrls)),
    ?assertEqual(map_size(Routes), py_dist_chans:count(C)),
    maps:foreach(fun(Ctrl, {Chan, Ref}) ->
                         ?assert(is_reference(Ref)),
                         ?assertMatch(#{Chan := _}, Routes),
                         ?assertEqual(Ctrl, element(2, maps:get(Chan, Routes))),
                         ?assertEqual({ok, Chan}, py_dist_chans:chan_of(Ctrl, C)),
                         ?assertEqual({ok, Ctrl}, py_dist_chans:ctrl_of(Chan, C))
                 end, Ctrls),
    ok.

check_model(C, Model) ->
    Expected = maps:map(fun(_Chan, {handshake, Ctrl, []}) -> {handshake, Ctrl};
                           (_Chan, {hold, Ctrl, Held}) -> {hold, Ctrl, lists:reverse(Held)};
                           (_Chan, {up, Ctrl, DHandle}) -> {up, Ctrl, DHandle}
                        end, Model),
    ?assertEqual(Expected, py_dist_chans:routes(C)).
