%% @doc Distribution controller: one process per connection.
%%
%% During the handshake it queues the channel's packets for dist_util's
%% f_recv.  At nodeup it hands input over to the port owner (which puts
%% packets into the runtime from then on) and becomes the output handler:
%% it takes everything erts has with dist_ctrl_get_data into its own queue
%% by flow (sending process, see py_dist_outq) and writes many
%% distribution packets per port command, small flows first, grouped by
%% flow so that Python too may let one sender's small message overtake
%% another's long one.
%%
%% It is linked to the connection's dist_util process (the "supervisor" of
%% gen_tcp_dist's vocabulary): when one of them goes, both go, and the
%% port owner, which monitors this process, tells Python to drop the
%% channel.  An exit reason of this process becomes the nodedown reason.
-module(py_dist_ctrl).

-include("py_dist.hrl").
-include_lib("kernel/include/logger.hrl").

-export([start/2, start_outbound/0, call/2, close_reasons/0]).
-export([init_inbound/2, init_outbound/1]).
%% sys
-export([system_continue/3, system_terminate/4, system_code_change/4,
         system_get_state/1]).
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
              %% erts has data we have not taken (paused, or our queue full)
              pending = false :: boolean(),
              seqs = #{} :: seqs(),
              %% taken from erts, not yet written to the port
              queue = py_dist_outq:new() :: py_dist_outq:outq(),
              %% a writer process waits on the busy port with our last batch
              writing = false :: boolean(),
              writers = [] :: [pid()],
              %% a flow with more than this queued here is held
              hold_bytes :: pos_integer(),
              %% senders suspended, and who asked: Python, this queue, or both
              held = #{} :: #{py_dist_packet:flow() => {pid(), [held_by()]}}}).

-type held_by() :: python | queue.

%% a sender's bytes a batch takes per round: an erts fragment
-define(QUANTUM, 64 * 1024).
%% Past this much taken and not written, erts keeps the rest (and marks the
%% connection busy, as stock distribution does): a bound, not the usual way
%% (holding single senders keeps the queue well below it).
-define(QUEUE_MAX, 8 * 1024 * 1024).

-type seqs() :: #{SeqId :: non_neg_integer() => py_dist_packet:flow()}.

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
        {timeout, _TRef, recv} ->
            handshake(S);  % a recv timer that fired as it was cancelled
        {py_dist_data, Frames} ->
            handshake(serve_recv(enqueue(Frames, S)));
        {Ref, From, {handshake_complete, _Node, _DHandle}}
          when S#hs.closed =/= undefined ->
            From ! {Ref, {error, closed}},
            exit(exit_reason(S#hs.closed));
        {Ref, From, {handshake_complete, _Node, DHandle}} ->
            Max = py_dist_config:get(max_batch),
            hand_over_input(DHandle, S),
            tell_up(S),
            false = erlang:dist_ctrl_set_opt(DHandle, get_size, true),
            From ! {Ref, ok},
            process_flag(priority, normal),
            erlang:dist_ctrl_get_data_notification(DHandle),
            output(#out{dhandle = DHandle, port = S#hs.port, chan = S#hs.chan,
                        max = Max, paused = S#hs.paused,
                        hold_bytes = max(?QUANTUM, py_dist_config:get(flow_bytes) div 2)});
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
        {system, From, Request} ->
            sys:handle_system_msg(Request, From, self(), ?MODULE, [], {handshake, S});
        Other ->
            unexpected(Other),
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
%% Python takes lane messages only from nodes with a connection up: the
%% handshake has checked the cookie end to end.  Written by this process
%% after the handshake's last packet (written by dist_util's, which waits
%% for this call), so Python sees them in that order.
tell_up(#hs{port = Port, chan = Chan}) ->
    py_dist_port_writer:write_now(Port, py_dist_packet:ctrl({up, Chan})).

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
        py_dist_resume ->
            output(send_data(O#out{paused = false, pending = false}));
        py_dist_written ->
            output(send_data(O#out{writing = false}));
        dist_tick when O#out.paused ->
            %% order-free, and the connection's one sign of life while
            %% paused; if the port is busy, bytes are moving anyway
            _ = port_try(O#out.port, py_dist_packet:tick(O#out.chan)),
            output(O);
        dist_tick ->
            Tick = py_dist_outq:push(?PY_DIST_FLOW_TICK, {0, <<>>}, O#out.queue),
            output(flush(O#out{queue = Tick}));
        {py_dist_hold_flow, Flow} ->
            output(hold_flow(Flow, python, O));
        {py_dist_release_flow, Flow} ->
            output(release_flow(Flow, python, O));
        {py_dist_closed, Reason} ->
            exit(exit_reason(Reason));
        {'EXIT', Pid, normal} when is_pid(Pid) ->
            case lists:member(Pid, O#out.writers) of
                true -> output(O#out{writers = lists:delete(Pid, O#out.writers)});
                false -> exit(normal)
            end;
        {'EXIT', _Pid, Reason} ->
            exit(Reason);
        {send, From, Ref, Data} ->
            %% Raw distribution data for the connection, as gen_tcp_dist
            %% takes it "for testing only": OTP's distribution suites
            %% inject packets so.  In order with all taken before it.
            Packet = iolist_to_binary(Data),
            Q = py_dist_outq:push(?PY_DIST_FLOW_BARRIER, {byte_size(Packet), Packet},
                                  O#out.queue),
            O1 = flush(O#out{queue = Q}),
            From ! {Ref, ok},
            output(O1);
        {system, From, Request} ->
            sys:handle_system_msg(Request, From, self(), ?MODULE, [], {output, O});
        {timeout, _TRef, recv} ->
            output(O);  % a handshake recv timer that fired as it was cancelled
        Other ->
            unexpected(Other),
            output(O)
    end.

unexpected(Msg) ->
    ?LOG_WARNING("py_dist: a connection's controller got an unexpected message: ~0P",
                 [Msg, 10]).

%%% sys: sys:get_state/1 and friends work on a controller, in either phase

%% @private
system_continue(_Parent, _Debug, {handshake, S}) ->
    handshake(S);
system_continue(_Parent, _Debug, {output, O}) ->
    output(O).

%% @private
-spec system_terminate(term(), pid(), [sys:dbg_opt()], term()) -> no_return().
system_terminate(Reason, _Parent, _Debug, _State) ->
    exit(Reason).

%% @private
system_code_change(State, _Module, _OldVsn, _Extra) ->
    {ok, State}.

%% @private
system_get_state({_Phase, State}) ->
    {ok, State}.

%% A sender has too much data queued, in Python's outbox or in our queue:
%% suspend that process, as a busy distribution port would, but only it.
%% The controller goes on taking from erts, so the runtime's queue stays
%% short and a process sending a small message is never suspended behind a
%% large stream.  Suspensions are tied to this process: should it exit,
%% erts lifts them.  A sender runs again when neither asks to hold it.
hold_flow(Flow, Who, #out{held = Held} = O) ->
    case Held of
        #{Flow := {Pid, Whos}} ->
            O#out{held = Held#{Flow := {Pid, lists:usort([Who | Whos])}}};
        #{} ->
            case py_dist_packet:flow_pid(Flow) of
                Pid when is_pid(Pid) ->
                    try erlang:suspend_process(Pid, [asynchronous, unless_suspending]) of
                        true -> O#out{held = Held#{Flow => {Pid, [Who]}}};
                        false -> O
                    catch
                        error:badarg -> O  % gone already, or one of ours
                    end;
                _ ->
                    O
            end
    end.

release_flow(Flow, Who, #out{held = Held} = O) ->
    case Held of
        #{Flow := {Pid, [Who]}} ->
            try erlang:resume_process(Pid)
            catch error:badarg -> ok  % exited while held
            end,
            O#out{held = maps:remove(Flow, Held)};
        #{Flow := {Pid, Whos}} ->
            O#out{held = Held#{Flow := {Pid, lists:delete(Who, Whos)}}};
        #{} ->
            O
    end.

%% Take what erts has, then write a batch if the port is free.
send_data(O) ->
    flush(pull(O)).

%% Everything erts has for us, into our queue, and ask to be told when
%% there is more: up to a batch while the port is free (out with it
%% first), up to the queue's bound while a writer waits on the port; while
%% paused, leave it in erts.  Then hold the senders with too much queued.
pull(#out{paused = true} = O) ->
    O#out{pending = true};
pull(#out{queue = Q, seqs = Seqs, writing = Writing, max = Max} = O) ->
    Limit = case Writing of
                true -> ?QUEUE_MAX;
                false -> Max
            end,
    {Q1, Seqs1, Pending} = pull(O#out.dhandle, Q, Seqs, Limit),
    HoldBytes = O#out.hold_bytes,
    Held = O#out.held,
    lists:foldl(fun(Flow, Acc) -> hold_flow(Flow, queue, Acc) end,
                O#out{queue = Q1, seqs = Seqs1, pending = Pending},
                [F || F <- py_dist_outq:heavy(HoldBytes, Q1), F >= 2,
                      not held_by(F, queue, Held)]).

held_by(Flow, Who, Held) ->
    case Held of
        #{Flow := {_, Whos}} -> lists:member(Who, Whos);
        #{} -> false
    end.

pull(DHandle, Q, Seqs, Limit) ->
    case py_dist_outq:bytes(Q) >= Limit of
        true ->
            {Q, Seqs, true};
        false ->
            case erlang:dist_ctrl_get_data(DHandle) of
                none ->
                    erlang:dist_ctrl_get_data_notification(DHandle),
                    {Q, Seqs, false};
                Packet ->
                    {Q1, Seqs1} = queue_packet(Packet, Q, Seqs),
                    pull(DHandle, Q1, Seqs1, Limit)
            end
    end.

%% One batch of up to max bytes per port command (the per-packet cost on
%% the Python side is what limits small-message throughput), small flows
%% first.  A busy port does not stop the controller: a writer process
%% waits on it with the batch, and meanwhile we keep taking from erts.
flush(#out{writing = true} = O) ->
    O;
flush(#out{paused = true} = O) ->
    O;
flush(#out{queue = Q, max = Max, port = Port} = O) ->
    case py_dist_outq:take(Max, ?QUANTUM, Q) of
        {[], _} ->
            O;
        {Groups, Q1} ->
            O1 = release_drained(Groups, O#out{queue = Q1}),
            Data = py_dist_packet:flows(O#out.chan, Groups),
            case port_try(Port, Data) of
                true ->
                    receive
                        py_dist_pause -> O1#out{paused = true, pending = true}
                    after 0 ->
                            send_data(O1)
                    end;
                false ->
                    Ctrl = self(),
                    Writer = spawn_link(fun() -> port_send(Port, Data),
                                                 Ctrl ! py_dist_written
                                        end),
                    O1#out{writing = true, writers = [Writer | O1#out.writers]}
            end
    end.

%% Write if the port is not busy: whether it was written.
port_try(Port, Data) ->
    try erlang:port_command(Port, Data, [nosuspend])
    catch error:badarg -> exit({py_dist, port_exit})
    end.

%% Senders held for our queue whose share of it is down to half.
release_drained(Groups, #out{held = Held, queue = Q, hold_bytes = HoldBytes} = O) ->
    lists:foldl(
      fun({Flow, _}, Acc) ->
              case held_by(Flow, queue, Held)
                  andalso py_dist_outq:flow_bytes(Flow, Q) =< HoldBytes div 2 of
                  true -> release_flow(Flow, queue, Acc);
                  false -> Acc
              end
      end, O, Groups).

%% @doc The groups a run of packets from erts makes in the controller's
%% queue, in the order one unbounded batch takes them, and the fragmented
%% messages still going on: the controller's classification and queueing,
%% minus erts and the port.
-spec group([py_dist_packet:packet()], seqs()) ->
          {[{py_dist_packet:flow(), [py_dist_packet:packet()]}], seqs()}.
group(Packets, Seqs) ->
    {Q, Seqs1} = lists:foldl(fun(Packet, {Q0, S0}) -> queue_packet(Packet, Q0, S0) end,
                             {py_dist_outq:new(), Seqs}, Packets),
    {Groups, _} = py_dist_outq:take(1 bsl 62, 1 bsl 62, Q),
    {Groups, Seqs1}.

%% A packet from erts into the queue, in the flow of its sender.
queue_packet({_Len, Data} = Packet, Q, Seqs) ->
    {Flow, Seqs1} = flow(py_dist_packet:classify_packet(Data), Seqs),
    {py_dist_outq:push(Flow, Packet, Q), Seqs1}.

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
