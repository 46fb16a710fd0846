-module(py_dist_outq_tests).

-include_lib("eunit/include/eunit.hrl").
-include("py_dist.hrl").

-define(B, ?PY_DIST_FLOW_BARRIER).

p(Tag, Size) -> {Size, [Tag]}.

push_all(Items) ->
    lists:foldl(fun({Flow, P}, Q) -> py_dist_outq:push(Flow, P, Q) end, py_dist_outq:new(), Items).

%% Everything, batch by batch, as the controller writes it.
drain(Max, Quantum, Q) ->
    case py_dist_outq:take(Max, Quantum, Q) of
        {[], Q1} -> {[], Q1};
        {Groups, Q1} -> {Rest, Q2} = drain(Max, Quantum, Q1), {Groups ++ Rest, Q2}
    end.

packets(Groups) -> [{F, P} || {F, Ps} <- Groups, P <- Ps].

empty_queue_gives_nothing_test() ->
    Q = py_dist_outq:new(),
    ?assertEqual({[], Q}, py_dist_outq:take(100, 10, Q)),
    ?assertEqual(0, py_dist_outq:bytes(Q)).

a_small_flow_goes_before_a_large_one_test() ->
    Stream = [{5, p({s, I}, 60000)} || I <- lists:seq(1, 20)],
    Q = push_all(Stream ++ [{9, p(ping, 30)}]),
    ?assertEqual(20 * 60004 + 34, py_dist_outq:bytes(Q)),
    ?assertEqual(34, py_dist_outq:flow_bytes(9, Q)),
    {[First | _], Q1} = py_dist_outq:take(256 * 1024, 64 * 1024, Q),
    ?assertEqual({9, [p(ping, 30)]}, First),
    ?assertEqual(0, py_dist_outq:flow_bytes(9, Q1)).

a_batch_keeps_to_its_budget_test() ->
    Q = push_all([{5, p({s, I}, 1000)} || I <- lists:seq(1, 100)]),
    {Groups, Q1} = py_dist_outq:take(10000, 4000, Q),
    Taken = packets(Groups),
    ?assertEqual(10, length(Taken)),  % alone, a flow takes up to the budget
    ?assertEqual(100 * 1004 - 10 * 1004, py_dist_outq:bytes(Q1)),
    %% with another flow it takes a quantum a round: 3 rounds of 4 packets
    Q2 = py_dist_outq:push(6, p(x, 2000), Q),
    {Groups2, _} = py_dist_outq:take(10000, 4000, Q2),
    ?assertEqual([{6, [p(x, 2000)]}, {5, lists:sublist([P || {_, P} <- packets(Groups)] ++
                                                        [p({s, 11}, 1000), p({s, 12}, 1000)],
                                                        8)}],
                 Groups2).

large_flows_share_a_batch_test() ->
    Q = push_all(lists:append([[{5, p({a, I}, 1000)}, {6, p({b, I}, 1000)}]
                               || I <- lists:seq(1, 50)])),
    {Groups, _} = py_dist_outq:take(8000, 2000, Q),
    Flows = [F || {F, _} <- packets(Groups)],
    ?assertEqual(4, length([F || F <- Flows, F =:= 5])),
    ?assertEqual(4, length([F || F <- Flows, F =:= 6])).

nothing_overtakes_a_barrier_test() ->
    Q = push_all([{5, p(a1, 10)}, {?B, p(barrier, 10)}, {6, p(tiny, 1)}, {5, p(a2, 10)}]),
    {Groups, Q1} = drain(1000, 1000, Q),
    ?assertEqual([{5, p(a1, 10)}, {?B, p(barrier, 10)}, {6, p(tiny, 1)}, {5, p(a2, 10)}],
                 packets(Groups)),
    ?assertEqual(0, py_dist_outq:bytes(Q1)).

%% Any mix of flows and barriers, any batch sizes: every packet comes out
%% once; each flow's packets in order; every barrier after everything
%% pushed before it and before everything pushed after it; the counts
%% right at the end.
random_mixes_keep_every_order_test_() ->
    [?_test(random_mix(Seed)) || Seed <- lists:seq(1, 200)].

random_mix(Seed) ->
    rand:seed(exsss, {Seed, Seed * 7, Seed * 13}),
    Items = [begin
                 Flow = case rand:uniform(10) of 1 -> ?B; N -> N + 1 end,
                 {Flow, p(I, rand:uniform(3000))}
             end || I <- lists:seq(1, rand:uniform(300))],
    Q = push_all(Items),
    {Groups, Q1} = drain(rand:uniform(20000), rand:uniform(5000), Q),
    Out = packets(Groups),
    ?assertEqual(lists:sort(Items), lists:sort(Out)),
    Pos = maps:from_list([{Tag, I} || {I, {_, {_, [Tag]}}} <- lists:enumerate(Out)]),
    [?assertEqual([T || {F, {_, [T]}} <- Items, F =:= Flow],
                  [T || {F, {_, [T]}} <- Out, F =:= Flow])
     || Flow <- lists:usort([F || {F, _} <- Items])],
    [begin
         [?assert(maps:get(Before, Pos) < maps:get(Tag, Pos)) || {_, {_, [Before]}} <- Ahead],
         [?assert(maps:get(After, Pos) > maps:get(Tag, Pos)) || {_, {_, [After]}} <- Behind]
     end || {Ahead, [{?B, {_, [Tag]}} | Behind]} <- splits(Items)],
    ?assertEqual(0, py_dist_outq:bytes(Q1)),
    ?assertEqual(0, py_dist_outq:flow_bytes(2, Q1)).

%% Every way to cut the list before an element.
splits(Items) ->
    [lists:split(N, Items) || N <- lists:seq(0, length(Items) - 1)].

heavy_flows_test() ->
    Q = push_all([{5, p(a, 600)}, {6, p(b, 100)}, {5, p(c, 600)}, {?B, p(x, 10)},
                  {5, p(d, 600)}]),
    ?assertEqual([5], py_dist_outq:heavy(1000, Q)),
    ?assertEqual([5, 6], lists:sort(py_dist_outq:heavy(50, Q))),
    {_, Q1} = py_dist_outq:take(1300, 1300, Q),
    ?assertEqual(604, py_dist_outq:flow_bytes(5, Q1)),
    ?assertEqual([], py_dist_outq:heavy(1000, Q1)).

a_long_run_of_barriers_is_cut_to_the_budget_test() ->
    Q = push_all([{?B, p({x, I}, 1000)} || I <- lists:seq(1, 10)] ++ [{5, p(after_, 10)}]),
    {[{?B, First}], Q1} = py_dist_outq:take(3000, 1000, Q),
    ?assertEqual([p({x, I}, 1000) || I <- [1, 2, 3]], First),
    {Rest, Q2} = drain(3000, 1000, Q1),
    ?assertEqual([{?B, p({x, I}, 1000)} || I <- lists:seq(4, 10)] ++ [{5, p(after_, 10)}],
                 packets(Rest)),
    ?assertEqual(0, py_dist_outq:bytes(Q2)).
