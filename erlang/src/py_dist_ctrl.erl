%% @doc Distribution controller: one process per connection.
%%
%% During the handshake it queues the channel's packets for dist_util's
%% f_recv.  At nodeup it hands input over to the port owner (which puts
%% packets into the runtime from then on) and becomes the output handler:
%% it takes what erts has with dist_ctrl_get_data, a batch of up to
%% max_batch bytes at a time, tags each packet with its flow (the sending
%% process, read from the packet's header) and writes the batch in one
%% port command.  It queues nothing and reorders nothing: Python's outbox
%% is the one place that schedules a connection's flows and decides which
%% sender is held (README, "Flows"), so the controller only carries out
%% what Python asks: pause and resume the connection, suspend and resume
%% one sender.
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
%% the flow tagging of the output phase, pure
-export([group/2]).

-define(SPAWN_OPTS, [{message_queue_data, off_heap}, {fullsweep_after, 0}]).

-record(hs, {port :: port(),
             chan :: non_neg_integer(),
             queue = queue:new() :: queue:queue(binary()),
             waiting :: undefined | {reference(), pid(), reference()},
             closed :: undefined | atom(),
             queued = 0 :: non_neg_integer(),
             paused = false :: boolean()}).

%% Output state once the connection is up.  While Python reports the
%% connection paused (its outbox full, its link congested) the controller
%% leaves data in erts, which then suspends this connection's senders and
%% answers nosuspend sends with nosuspend (busy_dist_port), as stock
%% distribution does for a slow peer; no other connection waits.
%% Only the first fragment of a message names its sender: seqs keeps the
%% flow of each fragmented message whose later fragments are still to come.
-record(out, {dhandle :: erlang:dist_handle(),
              node :: node(),
              port :: port(),
              chan :: non_neg_integer(),
              max :: pos_integer(),
              paused = false :: boolean(),
              seqs = #{} :: seqs(),
              %% a writer process waits on the busy port with our last batch
              writing = false :: boolean(),
              writers = [] :: [pid()],
              %% the next batch, taken from erts meanwhile: newest first
              next = [] :: [{py_dist_packet:flow(), py_dist_packet:packet()}],
              next_bytes = 0 :: non_neg_integer(),
              %% who injected packets into the next batch, and into the
              %% writer's: answered once their batch is on the port
              next_replies = [] :: [{pid(), reference()}],
              writer_replies = [] :: [{pid(), reference()}],
              %% senders Python asked to hold, suspended by us
              held = #{} :: #{py_dist_packet:flow() => pid()},
              %% the connection's nodelay, as net_kernel:setopts/getopts see it
              nodelay = true :: boolean()}).

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
        {Ref, From, {handshake_complete, Node, DHandle}} ->
            Max = py_dist_config:get(max_batch),
            hand_over_input(DHandle, S),
            tell_up(S),
            false = erlang:dist_ctrl_set_opt(DHandle, get_size, true),
            From ! {Ref, ok},
            process_flag(priority, normal),
            erlang:dist_ctrl_get_data_notification(DHandle),
            output(#out{dhandle = DHandle, node = Node, port = S#hs.port, chan = S#hs.chan,
                        max = Max, paused = S#hs.paused,
                        nodelay = py_dist:socket_opt(nodelay, true)});
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
    Put = put_in_order([{packet, P} || P <- queue:to_list(Q)]
                       ++ [{frames, F} || F <- Late], DHandle),
    ok = erlang:dist_ctrl_input_handler(DHandle, whereis(py_dist_port)),
    ok = py_dist_port:up(Chan, DHandle),
    %% malformed input: nothing after it reached erts, and the connection
    %% goes down from the output loop, as when the port owner finds it
    case Put of
        ok -> ok;
        {error, Error} -> self() ! {py_dist_closed, Error}, ok
    end.

put_in_order([{packet, P} | Rest], DHandle) ->
    put_next(py_dist_packet:put_packet(DHandle, P), Rest, DHandle);
put_in_order([{frames, F} | Rest], DHandle) ->
    put_next(py_dist_packet:put_frames(DHandle, F), Rest, DHandle);
put_in_order([], _DHandle) ->
    ok.

put_next(ok, Rest, DHandle) -> put_in_order(Rest, DHandle);
put_next({error, _} = Error, _Rest, _DHandle) -> Error.

collect_forwarded(Acc) ->
    receive
        {py_dist_data, Frames} -> collect_forwarded([Frames | Acc])
    after 0 ->
            lists:reverse(Acc)
    end.

%%% Connection up: output

output(#out{} = O) ->
    receive
        dist_data ->
            output(send_data(O));
        py_dist_pause ->
            output(O#out{paused = true});
        py_dist_resume ->
            output(send_data(O#out{paused = false}));
        py_dist_written ->
            reply(O#out.writer_replies),
            output(send_data(O#out{writing = false, writer_replies = []}));
        dist_tick ->
            %% order-free: if the port is busy, bytes are moving anyway
            _ = port_try(O#out.port, py_dist_packet:tick(O#out.chan)),
            output(O);
        {py_dist_hold_flow, Flow} ->
            output(hold_flow(Flow, O));
        {py_dist_release_flow, Flow} ->
            output(release_flow(Flow, O));
        {py_dist_closed, {corrupted_header, Header}} ->
            corrupted_header(Header, O);
        {py_dist_closed, Reason} ->
            exit(exit_reason(Reason));
        {'EXIT', Pid, normal} when is_pid(Pid) ->
            case lists:member(Pid, O#out.writers) of
                true -> output(O#out{writers = lists:delete(Pid, O#out.writers)});
                false -> exit(normal)
            end;
        {'EXIT', _Pid, Reason} ->
            exit(Reason);
        {Ref, From, {setopts, Opts}} ->
            %% net_kernel:setopts(Node, Opts): see py_dist:setopts/2
            case py_dist:socket_opts(Opts) of
                {ok, #{nodelay := NoDelay}} ->
                    From ! {Ref, ok},
                    output(O#out{nodelay = NoDelay});
                {ok, #{}} ->
                    From ! {Ref, ok},
                    output(O);
                {error, _} = Error ->
                    From ! {Ref, Error},
                    output(O)
            end;
        {Ref, From, {getopts, Opts}} ->
            From ! {Ref, py_dist:socket_getopts(Opts, O#out.nodelay)},
            output(O);
        {send, From, Ref, Data} ->
            %% Raw distribution data for the connection, as gen_tcp_dist
            %% takes it "for testing only": OTP's distribution suites
            %% inject packets so.  In order with all taken before it, and
            %% answered once written: while the connection is paused the
            %% sender waits, as on gen_tcp_dist's blocked socket.
            output(inject(iolist_to_binary(Data), {From, Ref}, O));
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

%% Python has too much of one sender queued: suspend that process, as a
%% busy distribution port would, but only it.  The controller goes on
%% taking from erts, so the runtime's queue stays short and a process
%% sending a small message is never suspended behind a large stream.
%% Suspensions are tied to this process: should it exit, erts lifts them.
hold_flow(Flow, #out{held = Held} = O) when is_map_key(Flow, Held) ->
    O;
hold_flow(Flow, #out{held = Held} = O) ->
    case py_dist_packet:flow_pid(Flow) of
        Pid when is_pid(Pid) ->
            try erlang:suspend_process(Pid, [asynchronous, unless_suspending]) of
                true -> O#out{held = Held#{Flow => Pid}};
                false -> O
            catch
                error:badarg -> O  % gone already, or one of ours
            end;
        undefined ->
            O
    end.

release_flow(Flow, #out{held = Held} = O) ->
    case maps:take(Flow, Held) of
        {Pid, Held1} ->
            try erlang:resume_process(Pid)
            catch error:badarg -> ok  % exited while held
            end,
            O#out{held = Held1};
        error ->
            O
    end.

%% Take a batch from erts and write it, unless paused.  While a writer
%% waits on the busy port, take the next batch and no more: erts keeps the
%% rest, and it is Python, reading the port, that decides the order.
send_data(#out{paused = true} = O) ->
    O;
send_data(#out{writing = true} = O) ->
    pull(O);
send_data(O) ->
    write(pull(O)).

pull(#out{next_bytes = Bytes, max = Max} = O) when Bytes >= Max ->
    O;  % erts keeps the rest; we take it once this batch is out
pull(#out{dhandle = DHandle, next = Next, seqs = Seqs} = O) ->
    case erlang:dist_ctrl_get_data(DHandle) of
        none ->
            erlang:dist_ctrl_get_data_notification(DHandle),
            O;
        {Len, Data} = Packet ->
            {Flow, Seqs1} = flow(py_dist_packet:classify_packet(Data), Seqs),
            pull(O#out{next = [{Flow, Packet} | Next], seqs = Seqs1,
                       next_bytes = O#out.next_bytes + Len + 4})
    end.

%% One batch per port command (the per-packet cost on the Python side is
%% what limits small-message throughput).  A busy port does not stop the
%% controller: a writer process waits on it with the batch, and meanwhile
%% we take the next one and answer Python.
write(#out{next = []} = O) ->
    O;
write(#out{next = Next, port = Port, next_replies = Replies} = O) ->
    Data = py_dist_packet:flows(O#out.chan, groups(lists:reverse(Next))),
    O1 = O#out{next = [], next_bytes = 0, next_replies = []},
    case port_try(Port, Data) of
        true ->
            reply(Replies),
            receive
                py_dist_pause -> O1#out{paused = true}
            after 0 ->
                    send_data(O1)
            end;
        false ->
            Ctrl = self(),
            Writer = spawn_link(fun() -> port_send(Port, Data),
                                         Ctrl ! py_dist_written
                                end),
            pull(O1#out{writing = true, writers = [Writer | O1#out.writers],
                        writer_replies = Replies})
    end.

%% Injected data goes in the next batch, behind all taken before it.
inject(Packet, From, #out{next = Next, next_bytes = Bytes, next_replies = Replies} = O) ->
    Size = byte_size(Packet),
    send_data(O#out{next = [{?PY_DIST_FLOW_BARRIER, {Size, Packet}} | Next],
                    next_bytes = Bytes + Size + 4,
                    next_replies = [From | Replies]}).

reply(Replies) ->
    lists:foreach(fun({From, Ref}) -> From ! {Ref, ok} end, lists:reverse(Replies)).

%% Write if the port is not busy: whether it was written.
port_try(Port, Data) ->
    try erlang:port_command(Port, Data, [nosuspend])
    catch error:badarg -> exit({py_dist, port_exit})
    end.

port_send(Port, Data) ->
    try erlang:port_command(Port, Data)
    catch error:badarg -> exit({py_dist, port_exit})
    end.

%% @doc The groups a run of packets from erts is written in, and the
%% fragmented messages still going on: the controller's flow tagging minus
%% erts and the port.
-spec group([py_dist_packet:packet()], seqs()) ->
          {[{py_dist_packet:flow(), [py_dist_packet:packet(), ...]}], seqs()}.
group(Packets, Seqs) ->
    {Tagged, Seqs1} = lists:mapfoldl(
                        fun({_, Data} = Packet, S0) ->
                                {Flow, S1} = flow(py_dist_packet:classify_packet(Data), S0),
                                {{Flow, Packet}, S1}
                        end, Seqs, Packets),
    {groups(Tagged), Seqs1}.

%% A batch as groups of one flow each: between two barriers a flow's
%% packets go in one group, in their order, the groups in the order their
%% flows first came; a barrier keeps its place.  Fewer, larger groups cost
%% Python less, and only a flow's own order matters (Erlang orders
%% signals per pair of processes).
groups(Tagged) ->
    groups(Tagged, [], #{}, []).

groups([{?PY_DIST_FLOW_BARRIER, _} | _] = Tagged, Order, Segment, Acc) when Order =/= [] ->
    groups(Tagged, [], #{}, segment(Order, Segment, Acc));
groups([{?PY_DIST_FLOW_BARRIER, Packet} | Rest], [], _, [{?PY_DIST_FLOW_BARRIER, Ps} | Acc]) ->
    groups(Rest, [], #{}, [{?PY_DIST_FLOW_BARRIER, [Packet | Ps]} | Acc]);
groups([{?PY_DIST_FLOW_BARRIER, Packet} | Rest], [], _, Acc) ->
    groups(Rest, [], #{}, [{?PY_DIST_FLOW_BARRIER, [Packet]} | Acc]);
groups([{Flow, Packet} | Rest], Order, Segment, Acc) ->
    case Segment of
        #{Flow := Ps} -> groups(Rest, Order, Segment#{Flow := [Packet | Ps]}, Acc);
        #{} -> groups(Rest, [Flow | Order], Segment#{Flow => [Packet]}, Acc)
    end;
groups([], Order, Segment, Acc) ->
    lists:reverse([{F, lists:reverse(Ps)} || {F, Ps} <- segment(Order, Segment, Acc)]).

%% A segment's groups onto the accumulator (newest first, packets too).
segment(Order, Segment, Acc) ->
    lists:foldr(fun(Flow, A) -> [{Flow, maps:get(Flow, Segment)} | A] end, Acc, Order).

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

%% Input whose header erts must not see (py_dist_packet:put_packet/2):
%% reported in erts's words for a corrupt header, and the connection
%% killed, the reason erts gives when it kills one for corrupt input.
-spec corrupted_header(binary(), #out{}) -> no_return().
corrupted_header(Header, #out{node = Node, chan = Chan}) ->
    ?LOG_WARNING("~tw got a corrupted distribution header from ~tw on "
                 "distribution channel ~w~n~tw", [node(), Node, Chan, Header]),
    exit(killed).

%% A peer that closed its end, or whose node went away (its port program
%% said goodbye), is what stock distribution calls connection_closed: its
%% TCP connection closed (kernel's erl_distribution_SUITE checks it);
%% everything else names the py_dist cause.
exit_reason(peer_closed) -> connection_closed;
exit_reason(peer_exit) -> connection_closed;
exit_reason(Reason) -> {py_dist, Reason}.

%% @doc The close reasons Python may send; listing them here makes the
%% atoms exist before a control term that carries one is decoded safely.
-spec close_reasons() -> [atom()].
close_reasons() ->
    ?PY_DIST_CLOSE_REASONS.
