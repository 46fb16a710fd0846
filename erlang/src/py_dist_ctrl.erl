%% @doc Distribution controller: one process per connection.
%%
%% During the handshake it queues the channel's packets for dist_util's
%% f_recv.  At nodeup it hands input over to the port owner (which puts
%% packets into the runtime from then on) and becomes the output handler:
%% it drains erts with dist_ctrl_get_data and writes many distribution
%% packets per port command, grouped by flow (sending process) so that
%% Python may let one sender's small message overtake another's long one.
%%
%% It is linked to the connection's dist_util process (the "supervisor" of
%% gen_tcp_dist's vocabulary): when one of them goes, both go, and the
%% port owner, which monitors this process, tells Python to drop the
%% channel.  An exit reason of this process becomes the nodedown reason.
-module(py_dist_ctrl).

-include("py_dist.hrl").

-export([start/2, start_outbound/0, call/2, close_reasons/0]).
-export([init_inbound/2, init_outbound/1]).
%% the batching of the output phase, pure
-export([group/2]).

-define(SPAWN_OPTS, [{message_queue_data, off_heap}, {fullsweep_after, 0}]).

-record(hs, {port :: port(),
             chan :: non_neg_integer(),
             queue = queue:new() :: queue:queue(binary()),
             waiting :: undefined | {reference(), pid(), reference()},
             closed :: undefined | atom(),
             queued = 0 :: non_neg_integer(),
             paused = false :: boolean()}).

%% Output state once the connection is up.  While Python reports the link
%% congested the controller is paused: it leaves data in erts, which then
%% suspends this connection's senders (busy_dist_port), as stock
%% distribution does for a slow peer, and no other connection waits.
%% Only the first fragment of a message names its sender: seqs keeps the
%% flow of each fragmented message whose later fragments are still to come.
-record(out, {dhandle :: erlang:dist_handle(),
              port :: port(),
              chan :: non_neg_integer(),
              max :: pos_integer(),
              paused = false :: boolean(),
              pending = false :: boolean(),
              seqs = #{} :: seqs(),
              held = #{} :: #{py_dist_packet:flow() => pid()}}).

-type seqs() :: #{SeqId :: non_neg_integer() => py_dist_packet:flow()}.

%% A batch being built: the groups a barrier closed, newest first, and the
%% open ones, one per flow; packets of a group newest first.
-type batch() :: {[{py_dist_packet:flow(), [py_dist_packet:packet()]}],
                  #{py_dist_packet:flow() => [py_dist_packet:packet()]}}.

%% What a peer may send before our side of the handshake is complete: the
%% handshake itself, and whatever it writes in the moment between its
%% nodeup and ours.  More is a peer misbehaving.
-define(HANDSHAKE_QUEUE_MAX, 16 * 1024 * 1024).

%%% API

%% @doc Start the controller of a channel that Python accepted.
-spec start(port(), non_neg_integer()) -> pid().
start(Port, Chan) ->
    spawn_opt(?MODULE, init_inbound, [Port, Chan],
              [{priority, max} | ?SPAWN_OPTS]).

%% @doc Start the controller of an outbound channel, linked to the caller.
-spec start_outbound() -> pid().
start_outbound() ->
    spawn_opt(?MODULE, init_outbound, [self()],
              [link, {priority, max} | ?SPAWN_OPTS]).

%% @doc Synchronous request to a controller, gen_tcp_dist style: it fails
%% with the controller's exit reason rather than hanging.
-spec call(pid(), term()) -> term().
call(Ctrl, Msg) ->
    Ref = erlang:monitor(process, Ctrl),
    Ctrl ! {Ref, self(), Msg},
    receive
        {Ref, Res} ->
            erlang:demonitor(Ref, [flush]),
            Res;
        {'DOWN', Ref, process, Ctrl, Reason} ->
            exit({dist_controller_exit, Reason})
    end.

%%% Handshake phase

init_inbound(Port, Chan) ->
    process_flag(trap_exit, true),
    handshake(#hs{port = Port, chan = Chan}).

init_outbound(Owner) ->
    process_flag(trap_exit, true),
    case py_dist_port:register_channel(self()) of
        {ok, Chan, Port} ->
            handshake(#hs{port = Port, chan = Chan});
        {error, Reason} ->
            unlink(Owner),
            exit({py_dist, Reason})
    end.

handshake(#hs{} = S) ->
    receive
        {Ref, From, {supervisor, Pid}} ->
            From ! {Ref, link(Pid)},
            handshake(S);
        {Ref, From, channel} ->
            From ! {Ref, {S#hs.chan, S#hs.port}},
            handshake(S);
        {Ref, From, {recv, Timeout}} ->
            handshake(serve_recv(S#hs{waiting = recv_timer(Ref, From, Timeout)}));
        {timeout, TRef, recv} when element(3, S#hs.waiting) =:= TRef ->
            {Ref, From, TRef} = S#hs.waiting,
            From ! {Ref, {error, timeout}},
            handshake(S#hs{waiting = undefined});
        {py_dist_data, Frames} ->
            handshake(serve_recv(enqueue(Frames, S)));
        {Ref, From, {handshake_complete, _Node, _DHandle}}
          when S#hs.closed =/= undefined ->
            From ! {Ref, {error, closed}},
            exit(exit_reason(S#hs.closed));
        {Ref, From, {handshake_complete, _Node, DHandle}} ->
            Max = py_dist_config:get(max_batch),
            hand_over_input(DHandle, S),
            false = erlang:dist_ctrl_set_opt(DHandle, get_size, true),
            From ! {Ref, ok},
            process_flag(priority, normal),
            erlang:dist_ctrl_get_data_notification(DHandle),
            output(#out{dhandle = DHandle, port = S#hs.port, chan = S#hs.chan,
                        max = Max, paused = S#hs.paused});
        py_dist_pause ->
            handshake(S#hs{paused = true});
        py_dist_resume ->
            handshake(S#hs{paused = false});
        {py_dist_closed, Reason} ->
            %% Like a socket closed under a handshake: noticed at the next
            %% recv.  A handshake that lost a simultaneous connect waits for
            %% net_kernel to end it; dying now would fail the connection
            %% that won.
            handshake(serve_recv(S#hs{closed = Reason}));
        {'EXIT', _Pid, Reason} ->
            exit(Reason);
        _ ->
            handshake(S)
    end.

recv_timer(Ref, From, infinity) ->
    {Ref, From, make_ref()};
recv_timer(Ref, From, Timeout) ->
    {Ref, From, erlang:start_timer(Timeout, self(), recv)}.

enqueue(Frames, #hs{queued = Queued}) when Queued + byte_size(Frames) > ?HANDSHAKE_QUEUE_MAX ->
    exit({py_dist, handshake_queue_full});
enqueue(Frames, #hs{queue = Q, queued = Queued} = S) ->
    case py_dist_packet:split_frames(Frames) of
        {ok, Packets} ->
            S#hs{queue = queue:join(Q, queue:from_list(Packets)),
                 queued = Queued + byte_size(Frames)};
        {error, Reason} ->
            exit({py_dist, Reason})
    end.

serve_recv(#hs{waiting = undefined} = S) ->
    S;
serve_recv(#hs{waiting = {Ref, From, TRef}, queue = Q} = S) ->
    case queue:out(Q) of
        {{value, Packet}, Q1} ->
            cancel_timer(TRef),
            From ! {Ref, {ok, binary_to_list(Packet)}},
            S#hs{queue = Q1, waiting = undefined};
        {empty, _} when S#hs.closed =/= undefined ->
            cancel_timer(TRef),
            From ! {Ref, {error, closed}},
            S#hs{waiting = undefined};
        {empty, _} ->
            S
    end.

cancel_timer(TRef) when is_reference(TRef) ->
    _ = erlang:cancel_timer(TRef),
    ok.

%% Packets that arrived after the last handshake message belong to the
%% connection: put them in order before the port owner starts putting
%% later ones.  hold/1 returns only once the owner stopped forwarding, so
%% what is in our mailbox then is complete.
hand_over_input(DHandle, #hs{chan = Chan, queue = Q}) ->
    ok = py_dist_port:hold(Chan),
    Late = collect_forwarded([]),
    [erlang:dist_ctrl_put_data(DHandle, P) || P <- queue:to_list(Q)],
    [ok = py_dist_packet:put_frames(DHandle, F) || F <- Late],
    ok = erlang:dist_ctrl_input_handler(DHandle, whereis(py_dist_port)),
    ok = py_dist_port:up(Chan, DHandle).

collect_forwarded(Acc) ->
    receive
        {py_dist_data, Frames} -> collect_forwarded([Frames | Acc])
    after 0 ->
            lists:reverse(Acc)
    end.

%%% Connection up: output

output(#out{} = O) ->
    receive
        dist_data when O#out.paused ->
            output(O#out{pending = true});
        dist_data ->
            output(send_data(O));
        py_dist_pause ->
            output(O#out{paused = true});
        py_dist_resume when O#out.pending ->
            output(send_data(O#out{paused = false, pending = false}));
        py_dist_resume ->
            output(O#out{paused = false});
        dist_tick ->
            port_send(O#out.port, py_dist_packet:tick(O#out.chan)),
            output(O);
        {py_dist_hold_flow, Flow} ->
            output(hold_flow(Flow, O));
        {py_dist_release_flow, Flow} ->
            output(release_flow(Flow, O));
        {py_dist_closed, Reason} ->
            exit(exit_reason(Reason));
        {'EXIT', _Pid, Reason} ->
            exit(Reason);
        _ ->
            output(O)
    end.

%% Python has too much of one sender's data queued: suspend that process,
%% as a busy distribution port would, but only it.  The controller goes on
%% pulling from erts, so the runtime's queue stays short and a process
%% sending a small message is never suspended behind a large stream.
%% Suspensions are tied to this process: should it exit, erts lifts them.
hold_flow(Flow, #out{held = Held} = O) ->
    case py_dist_packet:flow_pid(Flow) of
        Pid when is_pid(Pid), not is_map_key(Flow, Held) ->
            try erlang:suspend_process(Pid, [asynchronous, unless_suspending]) of
                true -> O#out{held = Held#{Flow => Pid}};
                false -> O
            catch
                error:badarg -> O  % gone already, or one of ours
            end;
        _ ->
            O
    end.

release_flow(Flow, #out{held = Held} = O) ->
    case maps:take(Flow, Held) of
        {Pid, Rest} ->
            try erlang:resume_process(Pid)
            catch error:badarg -> ok  % exited while held
            end,
            O#out{held = Rest};
        error ->
            O
    end.

%% Drain erts and ask to be told when there is more; or, when a pause
%% arrives between two batches, leave the rest in erts until resumed.
send_data(O) ->
    case drain(O, O#out.seqs, 0, new_batch()) of
        {done, Seqs} ->
            erlang:dist_ctrl_get_data_notification(O#out.dhandle),
            O#out{seqs = Seqs};
        {paused, Seqs} ->
            O#out{paused = true, pending = true, seqs = Seqs}
    end.

%% Batch up to max bytes per port command: the per-packet cost on the
%% Python side is what limits small-message throughput.
drain(#out{max = Max} = O, Seqs, Size, Batch) when Size >= Max ->
    port_send(O#out.port, py_dist_packet:flows(O#out.chan, batch_groups(Batch))),
    receive
        py_dist_pause -> {paused, Seqs}
    after 0 ->
            drain(O, Seqs, 0, new_batch())
    end;
drain(O, Seqs, Size, Batch) ->
    case erlang:dist_ctrl_get_data(O#out.dhandle) of
        none when Size =:= 0 ->
            {done, Seqs};
        none ->
            port_send(O#out.port, py_dist_packet:flows(O#out.chan, batch_groups(Batch))),
            {done, Seqs};
        {Len, Data} = Packet ->
            {Flow, Seqs1} = flow(py_dist_packet:classify_packet(Data), Seqs),
            drain(O, Seqs1, Size + Len + 4, batch_add(Flow, Packet, Batch))
    end.

%% @doc What drain/4 does with a run of packets, minus erts and the port:
%% their groups for one port command, and the fragmented messages still
%% going on.
-spec group([py_dist_packet:packet()], seqs()) ->
          {[{py_dist_packet:flow(), [py_dist_packet:packet()]}], seqs()}.
group(Packets, Seqs) ->
    {Batch, Seqs1} =
        lists:foldl(fun({_Len, Data} = Packet, {B, S}) ->
                            {Flow, S1} = flow(py_dist_packet:classify_packet(Data), S),
                            {batch_add(Flow, Packet, B), S1}
                    end, {new_batch(), Seqs}, Packets),
    {batch_groups(Batch), Seqs1}.

%% The flow a packet goes in.  Later fragments carry only their sequence:
%% they follow the first one's flow, and one of a sequence we did not see
%% begin (or whose sender is unknown) is a barrier.  The last fragment is
%% FragId 1, and a message in one fragment is complete at once.
-spec flow(py_dist_packet:class(), seqs()) -> {py_dist_packet:flow(), seqs()}.
flow({flow, Flow}, Seqs) ->
    {Flow, Seqs};
flow({first_fragment, SeqId, FragId, Flow}, Seqs)
  when FragId =< 1; Flow =:= ?PY_DIST_FLOW_BARRIER ->
    {Flow, maps:remove(SeqId, Seqs)};
flow({first_fragment, SeqId, _FragId, Flow}, Seqs) ->
    {Flow, Seqs#{SeqId => Flow}};
flow({fragment, SeqId, FragId}, Seqs) ->
    case Seqs of
        #{SeqId := Flow} when FragId =< 1 -> {Flow, maps:remove(SeqId, Seqs)};
        #{SeqId := Flow} -> {Flow, Seqs};
        #{} -> {?PY_DIST_FLOW_BARRIER, Seqs}
    end;
flow(barrier, Seqs) ->
    {?PY_DIST_FLOW_BARRIER, Seqs}.

-spec new_batch() -> batch().
new_batch() ->
    {[], #{}}.

%% Packets of a flow join its open group, in order.  A barrier must not be
%% overtaken nor overtake: it closes the open groups (their order among
%% themselves is free) and stands in a group of its own after them, which
%% the barriers right behind it join.
-spec batch_add(py_dist_packet:flow(), py_dist_packet:packet(), batch()) -> batch().
batch_add(?PY_DIST_FLOW_BARRIER, Packet, {[{?PY_DIST_FLOW_BARRIER, Ps} | Closed], Open})
  when map_size(Open) =:= 0 ->
    {[{?PY_DIST_FLOW_BARRIER, [Packet | Ps]} | Closed], Open};
batch_add(?PY_DIST_FLOW_BARRIER, Packet, {Closed, Open}) ->
    {[{?PY_DIST_FLOW_BARRIER, [Packet]} | close(Open, Closed)], #{}};
batch_add(Flow, Packet, {Closed, Open}) ->
    case Open of
        #{Flow := Ps} -> {Closed, Open#{Flow := [Packet | Ps]}};
        #{} -> {Closed, Open#{Flow => [Packet]}}
    end.

%% The groups of a batch, oldest first, their packets in order.
-spec batch_groups(batch()) -> [{py_dist_packet:flow(), [py_dist_packet:packet()]}].
batch_groups({Closed, Open}) ->
    lists:foldl(fun({Flow, Ps}, Acc) -> [{Flow, lists:reverse(Ps)} | Acc] end,
                [], close(Open, Closed)).

close(Open, Closed) ->
    maps:fold(fun(Flow, Ps, Acc) -> [{Flow, Ps} | Acc] end, Closed, Open).

port_send(Port, Data) ->
    try erlang:port_command(Port, Data)
    catch error:badarg -> exit({py_dist, port_exit})
    end.

%% A peer that closed its end is what stock distribution calls
%% connection_closed; everything else names the py_dist cause.
exit_reason(peer_closed) -> connection_closed;
exit_reason(Reason) -> {py_dist, Reason}.

%% @doc The close reasons Python may send; listing them here makes the
%% atoms exist before a control term that carries one is decoded safely.
-spec close_reasons() -> [atom()].
close_reasons() ->
    ?PY_DIST_CLOSE_REASONS.
