%% @doc The controller's queue of one connection's outgoing packets, by
%% flow (sending process), while the port to Python is busy.
%%
%% The controller takes every packet from erts as soon as it is there, so
%% erts's own queue for the connection stays short and never marks the
%% connection busy (which would suspend every sender on it, a pinger too);
%% it writes to the port from here, a batch at a time, smallest flows
%% first.  A ping queued behind megabytes of a stream so goes out with the
%% next batch instead of after the stream's bytes.
%%
%% Order: packets of a flow leave in the order they came; a barrier (a
%% packet of unknown sender, ?PY_DIST_FLOW_BARRIER) is overtaken by
%% nothing that came after it and overtakes nothing that came before.  The
%% queue is a run of segments: barriers, and between them a set of flows.
%% Pure: no processes, no ports.
-module(py_dist_outq).

-include("py_dist.hrl").

-export([new/0, push/3, take/3, bytes/1, flow_bytes/2, heavy/2]).
-export_type([outq/0]).

-type flow() :: py_dist_packet:flow().
-type packet() :: py_dist_packet:packet().
-type flows() :: #{flow() => {queue:queue(packet()), non_neg_integer()}}.
-type segment() :: {barrier, [packet()]} | {flows, flows()}.
%% The newest segment, which pushes go to: cheap to add to (lists newest
%% first), turned into a segment when a batch is taken or the kind changes.
-type tail() :: none | {barrier, [packet()]}
              | {flows, #{flow() => {[packet()], non_neg_integer()}}}.

-record(outq, {segments = queue:new() :: queue:queue(segment()),
               tail = none :: tail(),
               bytes = 0 :: non_neg_integer(),
               %% bytes per flow in the segments (the tail counts its own)
               per_flow = #{} :: #{flow() => pos_integer()}}).
-opaque outq() :: #outq{}.

-spec new() -> outq().
new() ->
    #outq{}.

%% @doc Bytes queued in all, as they will be written (length prefixes too).
-spec bytes(outq()) -> non_neg_integer().
bytes(#outq{bytes = Bytes}) ->
    Bytes.

-spec flow_bytes(flow(), outq()) -> non_neg_integer().
flow_bytes(Flow, #outq{per_flow = PerFlow, tail = Tail}) ->
    InTail = case Tail of
                 {flows, #{Flow := {_, N}}} -> N;
                 _ -> 0
             end,
    maps:get(Flow, PerFlow, 0) + InTail.

%% @doc The flows with more than Min bytes queued.
-spec heavy(non_neg_integer(), outq()) -> [flow()].
heavy(Min, #outq{per_flow = PerFlow, tail = Tail} = Q) ->
    InTail = case Tail of
                 {flows, Flows} -> maps:keys(Flows);
                 _ -> []
             end,
    [F || F <- lists:usort(maps:keys(PerFlow) ++ InTail), flow_bytes(F, Q) > Min].

%% @doc Queue a packet of a flow behind everything that must stay ahead of it.
-spec push(flow(), packet(), outq()) -> outq().
push(?PY_DIST_FLOW_BARRIER, {Len, _} = Packet, #outq{tail = {barrier, Ps}, bytes = B} = Q) ->
    Q#outq{tail = {barrier, [Packet | Ps]}, bytes = B + Len + 4};
push(?PY_DIST_FLOW_BARRIER, {Len, _} = Packet, #outq{bytes = B} = Q) ->
    (seal(Q))#outq{tail = {barrier, [Packet]}, bytes = B + Len + 4};
push(Flow, {Len, _} = Packet, #outq{tail = {flows, Flows}, bytes = B} = Q) ->
    Size = Len + 4,
    Flows1 = case Flows of
                 #{Flow := {Ps, N}} -> Flows#{Flow := {[Packet | Ps], N + Size}};
                 #{} -> Flows#{Flow => {[Packet], Size}}
             end,
    Q#outq{tail = {flows, Flows1}, bytes = B + Size};
push(Flow, {Len, _} = Packet, #outq{bytes = B} = Q) ->
    (seal(Q))#outq{tail = {flows, #{Flow => {[Packet], Len + 4}}}, bytes = B + Len + 4}.

%% The tail becomes the newest segment, or joins it if of the same kind
%% (two sets of flows with no barrier between are one).
seal(#outq{tail = none} = Q) ->
    Q;
seal(#outq{tail = {barrier, Ps}, segments = Segs} = Q) ->
    Packets = lists:reverse(Ps),
    Segs1 = case queue:peek_r(Segs) of
                {value, {barrier, Old}} -> queue:in({barrier, Old ++ Packets}, queue:drop_r(Segs));
                _ -> queue:in({barrier, Packets}, Segs)
            end,
    Q#outq{tail = none, segments = Segs1, per_flow = add_bytes(?PY_DIST_FLOW_BARRIER,
                                                                sizes(Packets), Q#outq.per_flow)};
seal(#outq{tail = {flows, Tail}, segments = Segs, per_flow = PerFlow} = Q) ->
    New = maps:map(fun(_, {Ps, N}) -> {queue:from_list(lists:reverse(Ps)), N} end, Tail),
    PerFlow1 = maps:fold(fun(Flow, {_, N}, Acc) -> add_bytes(Flow, N, Acc) end, PerFlow, New),
    Segs1 = case queue:peek_r(Segs) of
                {value, {flows, Old}} ->
                    Joined = maps:fold(fun(Flow, {Ps, N}, Acc) ->
                                               case Acc of
                                                   #{Flow := {OldPs, OldN}} ->
                                                       Acc#{Flow := {queue:join(OldPs, Ps),
                                                                     OldN + N}};
                                                   #{} ->
                                                       Acc#{Flow => {Ps, N}}
                                               end
                                       end, Old, New),
                    queue:in({flows, Joined}, queue:drop_r(Segs));
                _ ->
                    queue:in({flows, New}, Segs)
            end,
    Q#outq{tail = none, segments = Segs1, per_flow = PerFlow1}.

add_bytes(Flow, N, PerFlow) ->
    PerFlow#{Flow => maps:get(Flow, PerFlow, 0) + N}.

%% @doc Up to about Max bytes for one port command, as groups of one flow
%% each in the order to write them: the oldest segment first; within a set
%% of flows, each flow gives up to Quantum bytes (at least one packet) a
%% round, the flows with least queued first.  Empty when nothing is queued.
-spec take(pos_integer(), pos_integer(), outq()) -> {[{flow(), [packet(), ...]}], outq()}.
take(Max, Quantum, Q) ->
    take(Max, Quantum, seal(Q), []).

take(Budget, _Quantum, Q, Acc) when Budget =< 0 ->
    {lists:reverse(Acc), Q};
take(Budget, Quantum, #outq{segments = Segs} = Q, Acc) ->
    case queue:out(Segs) of
        {empty, _} ->
            {lists:reverse(Acc), Q};
        {{value, {barrier, Packets}}, Rest} ->
            %% in order, and no more than the budget: a port packet has a
            %% size limit on the Python side (max_frame)
            {Out, Left, Size} = take_list(Budget, Packets, [], 0),
            Rest1 = case Left of
                        [] -> Rest;
                        _ -> queue:in_r({barrier, Left}, Rest)
                    end,
            take(Budget - Size, Quantum, taken(?PY_DIST_FLOW_BARRIER, Size, Q#outq{segments = Rest1}),
                 [{?PY_DIST_FLOW_BARRIER, Out} | Acc]);
        {{value, {flows, Flows}}, Rest} ->
            {Budget1, Flows1, Q1, Taken} = rounds(Budget, Quantum, Flows, Q, []),
            Acc1 = lists:reverse(merge(lists:reverse(Taken)), Acc),
            case map_size(Flows1) of
                0 -> take(Budget1, Quantum, Q1#outq{segments = Rest}, Acc1);
                _ -> take(Budget1, Quantum, Q1#outq{segments = queue:in_r({flows, Flows1}, Rest)},
                          Acc1)
            end
    end.

%% Rounds over a set of flows while budget and packets last.  A flow alone
%% shares with no one: it takes what the budget allows at once.
rounds(Budget, _Quantum, Flows, Q, Acc) when Budget > 0, map_size(Flows) =:= 1 ->
    round(Budget, Budget, Flows, Q, Acc);
rounds(Budget, Quantum, Flows, Q, Acc) when Budget > 0, map_size(Flows) > 0 ->
    {Budget1, Flows1, Q1, Acc1} = round(Budget, Quantum, Flows, Q, Acc),
    rounds(Budget1, Quantum, Flows1, Q1, Acc1);
rounds(Budget, _Quantum, Flows, Q, Acc) ->
    {Budget, Flows, Q, Acc}.

%% One group per flow, in the order the flows first took a turn: a batch
%% goes to the port whole, so the rounds decide what goes, not its order
%% within the batch, and fewer, larger groups cost Python less.
merge(Groups) ->
    {Order, ByFlow} = lists:foldl(
                        fun({Flow, Ps}, {O, M}) ->
                                case M of
                                    #{Flow := Old} -> {O, M#{Flow := [Ps | Old]}};
                                    #{} -> {[Flow | O], M#{Flow => [Ps]}}
                                end
                        end, {[], #{}}, Groups),
    [{Flow, lists:append(lists:reverse(maps:get(Flow, ByFlow)))} || Flow <- lists:reverse(Order)].

%% One round over a set of flows, least queued first, while budget lasts.
round(Budget, Quantum, Flows, Q, Acc) ->
    Order = lists:keysort(2, maps:fold(fun(Flow, {_, N}, L) -> [{Flow, N} | L] end, [], Flows)),
    lists:foldl(
      fun({_Flow, _}, {B, _, _, _} = State) when B =< 0 ->
              State;
         ({Flow, _}, {B, Fs, Q0, A}) ->
              #{Flow := {Ps, N}} = Fs,
              {Out, Ps1, Size} = case N =< Quantum of
                                     true -> {queue:to_list(Ps), queue:new(), N};
                                     false -> take_packets(Quantum, Ps, [], 0)
                                 end,
              Fs1 = case queue:is_empty(Ps1) of
                        true -> maps:remove(Flow, Fs);
                        false -> Fs#{Flow := {Ps1, N - Size}}
                    end,
              {B - Size, Fs1, taken(Flow, Size, Q0), [{Flow, Out} | A]}
      end, {Budget, Flows, Q, Acc}, Order).

take_packets(Quantum, Ps, Out, Size) when Size >= Quantum ->
    {lists:reverse(Out), Ps, Size};
take_packets(Quantum, Ps, Out, Size) ->
    case queue:out(Ps) of
        {{value, {Len, _} = P}, Ps1} -> take_packets(Quantum, Ps1, [P | Out], Size + Len + 4);
        {empty, _} -> {lists:reverse(Out), Ps, Size}
    end.

take_list(Budget, [{Len, _} = P | Ps], Out, Size) when Size < Budget ->
    take_list(Budget, Ps, [P | Out], Size + Len + 4);
take_list(_Budget, Ps, Out, Size) ->
    {lists:reverse(Out), Ps, Size}.

taken(Flow, Size, #outq{bytes = Bytes, per_flow = PerFlow} = Q) ->
    PerFlow1 = case maps:get(Flow, PerFlow) - Size of
                   0 -> maps:remove(Flow, PerFlow);
                   Left -> PerFlow#{Flow := Left}
               end,
    Q#outq{bytes = Bytes - Size, per_flow = PerFlow1}.

sizes(Packets) ->
    lists:sum([Len + 4 || {Len, _} <- Packets]).
