%% Agent that lets a Python harness drive a node over stdin/stdout.
%%
%% Used by the test suite, the demo and the benchmark; not part of the
%% py_dist application.  Each request line is "Id Expression." and each
%% answer is "@@R Id Hex" where Hex is term_to_binary({ok, Value}) or
%% term_to_binary({error, {Class, Reason}}) in hexadecimal.
-module(pd_agent).

-export([start/0, eval/1]).
-export([ordered_receiver/2, blast/3, sink/0, pinger/2, echo/0,
         throughput/4, rtt/2, head_of_line/4, checked_sink/0, checked_streams/4, checked_bulk/3, checked_settle/2, collect_nodedown/1, wait_for_nodes/2,
         watch_nodes/0, nodedowns/1, ask/1, gap_receiver/2]).
-export([watch_events/0, events/0, log/2]).

start() ->
    io:setopts(standard_io, [binary, {encoding, latin1}]),
    io:put_chars(standard_io, <<"@@READY\n">>),
    loop().

loop() ->
    case io:get_line(standard_io, "") of
        eof -> erlang:halt(0);
        {error, _} -> erlang:halt(0);
        Line -> handle(Line), loop()
    end.

handle(Line) ->
    [IdText, Expr] = binary:split(string:trim(Line), <<" ">>),
    Result = eval(binary_to_list(Expr)),
    Hex = binary:encode_hex(term_to_binary(Result)),
    io:put_chars(standard_io, [<<"@@R ">>, IdText, <<" ">>, Hex, <<"\n">>]).

eval(Text) ->
    try
        {ok, Tokens, _} = erl_scan:string(Text),
        {ok, Exprs} = erl_parse:parse_exprs(Tokens),
        {value, Value, _} = erl_eval:exprs(Exprs, erl_eval:new_bindings()),
        {ok, Value}
    catch
        Class:Reason -> {error, {Class, Reason}}
    end.

%%% Helpers the harness calls on nodes (compiled, so they measure the
%%% carrier and not the interpreter).

%% Register Name, receive Senders * N messages {Sender, I}; check that each
%% sender's numbers arrive 1..N in order.
ordered_receiver(Name, {Senders, N}) ->
    Parent = self(),
    Pid = spawn_opt(fun() ->
                        register(Name, self()),
                        Parent ! {registered, self()},
                        Result = receive_ordered(Senders * N, #{}, N),
                        receive {get, From} -> From ! {result, Result} end
                end, [{message_queue_data, off_heap}]),
    receive {registered, Pid} -> Pid end.

receive_ordered(0, Seen, N) ->
    case lists:all(fun(V) -> V =:= N end, maps:values(Seen)) of
        true -> {ok, maps:size(Seen)};
        false -> {error, {incomplete, Seen}}
    end;
receive_ordered(Left, Seen, N) ->
    receive
        {S, I} when is_integer(S), is_integer(I) ->
            Expected = maps:get(S, Seen, 0) + 1,
            case I of
                Expected -> receive_ordered(Left - 1, Seen#{S => I}, N);
                _ -> {error, {out_of_order, S, I, Expected}}
            end
    after 60000 ->
            {error, {timeout, Seen}}
    end.

blast(Dest, S, N) ->
    [Dest ! {S, I} || I <- lists:seq(1, N)],
    ok.

%% A process that counts what it gets and answers {count, From}.
sink() ->
    %% off_heap: a sink that falls behind a fast carrier must not slow down
    %% further by copying its growing mailbox at every garbage collection
    spawn_opt(fun() -> sink(0, 0) end, [{message_queue_data, off_heap}]).

sink(Msgs, Bytes) ->
    receive
        {count, From} -> From ! {count, Msgs, Bytes}, sink(Msgs, Bytes);
        {data, B} -> sink(Msgs + 1, Bytes + byte_size(B));
        _ -> sink(Msgs + 1, Bytes)
    end.

echo() ->
    spawn(fun Loop() -> receive {From, Msg} -> From ! {self(), Msg}, Loop() end end).

pinger(Echo, Count) ->
    [begin
         T0 = erlang:monotonic_time(microsecond),
         Echo ! {self(), ping},
         receive {Echo, ping} -> erlang:monotonic_time(microsecond) - T0 end
     end || _ <- lists:seq(1, Count)].

%% Senders processes each send Size-byte binaries to Sink for Millis ms;
%% returns {Messages, Bytes, Micros} as counted by the sink.
throughput(Sink, Size, Senders, Millis) ->
    Bin = binary:copy(<<7>>, Size),
    {count, M0, B0} = ask(Sink),
    T0 = erlang:monotonic_time(microsecond),
    Deadline = T0 + Millis * 1000,
    Pids = [spawn_monitor(fun() -> send_until(Sink, {data, Bin}, Deadline) end)
            || _ <- lists:seq(1, Senders)],
    [receive {'DOWN', R, process, P, _} -> ok end || {P, R} <- Pids],
    {count, M1, B1} = ask(Sink),
    {M1 - M0, B1 - B0, erlang:monotonic_time(microsecond) - T0}.

ask(Sink) ->
    Sink ! {count, self()},
    receive {count, _, _} = C -> C after 120000 -> exit(sink_timeout) end.

send_until(Sink, Msg, Deadline) ->
    case erlang:monotonic_time(microsecond) < Deadline of
        true ->
            [Sink ! Msg || _ <- lists:seq(1, 100)],
            send_until(Sink, Msg, Deadline);
        false ->
            ok
    end.

rtt(Node, Count) ->
    Echo = rpc:call(Node, pd_agent, echo, []),
    pinger(Echo, Count).

%% Round trips to an echo on Node while Streamers processes stream
%% Size-byte binaries to a sink there: {RTTs, Bytes streamed, Micros}.
head_of_line(Node, Size, Streamers, Count) ->
    Echo = rpc:call(Node, pd_agent, echo, []),
    Sink = rpc:call(Node, pd_agent, sink, []),
    Bin = binary:copy(<<7>>, Size),
    {count, _, B0} = ask(Sink),
    T0 = erlang:monotonic_time(microsecond),
    Pids = [spawn_monitor(fun Stream() -> Sink ! {data, Bin}, Stream() end)
            || _ <- lists:seq(1, Streamers)],
    timer:sleep(300),  % the streams fill every queue on the way first
    Rtts = pinger(Echo, Count),
    [exit(P, kill) || {P, _} <- Pids],
    [receive {'DOWN', R, process, P, _} -> ok end || {P, R} <- Pids],
    {count, _, B1} = ask(Sink),
    {Rtts, B1 - B0, erlang:monotonic_time(microsecond) - T0}.

%% A sink that checks every {checked, Streamer, I, Crc, Bin} it gets:
%% answers {checked, From} with {Counts per streamer, Bad}.
checked_sink() ->
    spawn_opt(fun() -> checked_sink(#{}, 0) end, [{message_queue_data, off_heap}]).

checked_sink(Counts, Bad) ->
    receive
        {checked, From} ->
            From ! {checked, Counts, Bad},
            checked_sink(Counts, Bad);
        {checked, S, I, Crc, Bin} ->
            Next = maps:get(S, Counts, 0) + 1,
            Ok = I =:= Next andalso erlang:crc32(Bin) =:= Crc,
            checked_sink(Counts#{S => Next}, Bad + (case Ok of true -> 0; false -> 1 end))
    end.

%% Streamers processes send Size-byte messages (each its own content) to
%% Sink while the Pings round trips of a third process to an echo on the
%% sink's node run; then the streams stop.  Returns {Rtts, Sent per
%% streamer}, once the sink has had them all (or {error, ...}).
checked_streams(Sink, Size, Streamers, Pings) ->
    Echo = rpc:call(node(Sink), pd_agent, echo, []),
    Self = self(),
    Pids = [spawn_link(fun() -> checked_stream(Self, Sink, S, Size, 1) end)
            || S <- lists:seq(1, Streamers)],
    timer:sleep(300),  % every queue on the way full first
    Rtts = pinger(Echo, Pings),
    [P ! stop || P <- Pids],
    Sent = maps:from_list([receive {sent, P, S, N} -> {S, N} end || P <- Pids]),
    {Rtts, Sent}.

checked_stream(Parent, Sink, S, Size, I) ->
    receive
        stop -> Parent ! {sent, self(), S, I - 1}
    after 0 ->
            Bin = rand:bytes(16),
            Msg = binary:copy(Bin, Size div 16),
            Sink ! {checked, S, I, erlang:crc32(Msg), Msg},
            checked_stream(Parent, Sink, S, Size, I + 1)
    end.

%% What Sink has checked once it has Total messages (or one bad, or 60 s
%% went by): {Counts per streamer, Bad}.
checked_settle(Sink, Total) ->
    checked_settle(Sink, Total, 600).

checked_settle(Sink, Total, Tries) ->
    Sink ! {checked, self()},
    receive
        {checked, Counts, Bad} ->
            case lists:sum(maps:values(Counts)) >= Total orelse Bad > 0 orelse Tries =:= 0 of
                true -> {Counts, Bad};
                false -> timer:sleep(100), checked_settle(Sink, Total, Tries - 1)
            end
    end.

%% Streamers processes send small checked messages to Sink while one
%% more process sends it a checked binary of each of Sizes (random
%% content, so a fragment out of place shows), in order; then the small
%% streams stop.  Returns the count sent per streamer, the big sender's
%% under the key big.
checked_bulk(Sink, Sizes, Streamers) ->
    Self = self(),
    Pids = [spawn_link(fun() -> checked_stream(Self, Sink, S, 16, 1) end)
            || S <- lists:seq(1, Streamers)],
    {Big, Ref} = spawn_monitor(
                   fun() ->
                           lists:foldl(fun(Size, I) ->
                                               Bin = crypto:strong_rand_bytes(Size),
                                               Sink ! {checked, big, I, erlang:crc32(Bin), Bin},
                                               I + 1
                                       end, 1, Sizes)
                   end),
    receive {'DOWN', Ref, process, Big, normal} -> ok end,
    [P ! stop || P <- Pids],
    Sent = maps:from_list([receive {sent, P, S, N} -> {S, N} end || P <- Pids]),
    Sent#{big => length(Sizes)}.

%% Block until a nodedown for Node arrives; return the system time of it
%% (microseconds) and the reason.
collect_nodedown(Node) ->
    Parent = self(),
    Pid = spawn(fun() ->
                        ok = net_kernel:monitor_nodes(true, [nodedown_reason]),
                        Parent ! {watching, self()},
                        R = receive {nodedown, Node, Info} ->
                                    {os:system_time(microsecond),
                                     proplists:get_value(nodedown_reason, Info)}
                            end,
                        receive {get, From} -> From ! {nodedown, R} end
                end),
    receive {watching, Pid} -> Pid end.

wait_for_nodes(Nodes, Millis) ->
    Deadline = erlang:monotonic_time(millisecond) + Millis,
    wait_nodes(lists:sort(Nodes), Deadline).

wait_nodes(Nodes, Deadline) ->
    Have = lists:sort(nodes()),
    case Nodes -- Have of
        [] -> ok;
        Missing ->
            case erlang:monotonic_time(millisecond) > Deadline of
                true -> {missing, Missing};
                false -> timer:sleep(20), wait_nodes(Nodes, Deadline)
            end
    end.

%% A process that records every nodedown from now on; nodedowns/1 reads them.
watch_nodes() ->
    Parent = self(),
    Pid = spawn(fun() ->
                        ok = net_kernel:monitor_nodes(true, [nodedown_reason]),
                        Parent ! {watching, self()},
                        watch_loop([])
                end),
    receive {watching, Pid} -> Pid end.

watch_loop(Downs) ->
    receive
        {nodedown, Node, Info} ->
            watch_loop([{Node, proplists:get_value(nodedown_reason, Info)} | Downs]);
        {get, From} ->
            From ! {nodedowns, lists:reverse(Downs)},
            watch_loop(Downs);
        _ ->
            watch_loop(Downs)
    end.

%% [{Node, Reason}] seen by a watch_nodes/0 process, oldest first.
nodedowns(Watcher) ->
    Watcher ! {get, self()},
    receive {nodedowns, Downs} -> Downs after 5000 -> timeout end.

%% From now on keep every logger event of py_dist_events (metadata
%% `py_dist'), at any level; events/0 reads them.  (This module is the
%% logger handler: log/2.)
watch_events() ->
    Parent = self(),
    Owner = spawn(fun() ->
                          ets:new(pd_events, [named_table, public, ordered_set]),
                          Parent ! {keeping, self()},
                          receive stop -> ok end
                  end),
    receive {keeping, Owner} -> ok end,
    ok = logger:set_module_level(py_dist_events, all),
    logger:add_handler(pd_events, ?MODULE, #{level => all}).

log(#{level := Level, msg := {report, Report}, meta := #{py_dist := Category}}, _Config) ->
    ets:insert(pd_events, {erlang:unique_integer([monotonic]), Level, Category, Report});
log(_Event, _Config) ->
    ok.

%% [{Level, Category, Report}], oldest first.
events() ->
    [{Level, Category, Report} || {_, Level, Category, Report} <- ets:tab2list(pd_events)].

%% Register Name, receive N messages {S, I} from one sender, I = 1..N in
%% order; answer {ok, LongestStallMicros} (the longest wait between two
%% messages) or {error, What}.
gap_receiver(Name, N) ->
    Parent = self(),
    Pid = spawn_opt(fun() ->
                            register(Name, self()),
                            Parent ! {registered, self()},
                            R = receive_gaps(1, N, undefined, 0),
                            receive {get, From} -> From ! {result, R} end
                    end, [{message_queue_data, off_heap}]),
    receive {registered, Pid} -> Pid end.

receive_gaps(I, N, _Last, Max) when I > N ->
    {ok, Max};
receive_gaps(I, N, Last, Max) ->
    receive
        {_, I} ->
            Now = erlang:monotonic_time(microsecond),
            Gap = case Last of undefined -> 0; _ -> Now - Last end,
            receive_gaps(I + 1, N, Now, max(Max, Gap));
        {_, J} when is_integer(J) ->
            {error, {out_of_order, J, I}}
    after 60000 ->
            {error, {timeout, I}}
    end.
