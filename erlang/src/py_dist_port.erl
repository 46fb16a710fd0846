%% @doc Owner of the Python port program.
%%
%% Starts the program with the node (from childspecs, before net_kernel
%% listens), restarts it if it dies, and dispatches every inbound port
%% packet by channel id.  During a handshake the channel's packets go to its
%% controller; once the connection is up this process is the channel's input
%% handler (erlang:dist_ctrl_input_handler/2) and puts the packets into the
%% runtime itself, which saves a process hop per inbound packet.
%%
%% The channel table is a pure value (py_dist_chans) that this process
%% asks what to do; it does the monitors, messages and puts itself.
%%
%% Messages of py_dist:send/3 are written by their senders straight to the
%% port, found without a call (port/0); those that arrive on a lane are
%% delivered here, by py_dist_lanes.
%%
%% This process never blocks on the port: inbound traffic of every
%% connection depends on it.  The only data it writes are control
%% messages, handed to its one writer (py_dist_port_writer), which keeps
%% them in order and waits when the port is busy.
-module(py_dist_port).
-behaviour(gen_server).

-include("py_dist.hrl").
-include_lib("kernel/include/logger.hrl").

-export([start_link/0, listen/1, name_unlistened/1, set_acceptor/1, register_channel/1,
         hold/1, up/2, info/0, reachable/1, command/1, query/1, port/0,
         cookie/1]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2, terminate/2]).

-define(REACHABLE, py_dist_reachable).
%% The persistent_term key of the port, for port/0.
-define(PORT_KEY, {py_dist_port, port}).

-ifdef(TEST).
%% for the tests of lane delivery, which now lives in py_dist_lanes
-export([deliver/1, dropped/2]).
-endif.

-type chan() :: py_dist_chans:chan().

-record(state, {port :: port() | undefined,
                %% writes this process's control messages, in order
                writer :: pid(),
                os_pid :: non_neg_integer() | undefined,
                node :: binary() | undefined,
                listen_port :: non_neg_integer() | undefined,
                acceptor :: pid() | undefined,
                chans = py_dist_chans:new() :: py_dist_chans:chans(),
                info_waiting = #{} :: #{integer() => {info, gen_server:from()}
                                                   | {query, reference()}},
                next_info = 1 :: integer(),
                restarts = 0 :: non_neg_integer(),
                holding = false :: boolean(),
                %% the node's own cookie as the port program last got it
                cookie :: binary() | undefined}).

%% How often the node's own cookie is checked for a change
%% (erlang:set_cookie/1 tells nobody): a new cookie admits new links
%% within this time.
-define(COOKIE_CHECK_MS, 1000).

%% The spawn driver reads the pipe from Python as fast as it can, whatever
%% this process's mailbox holds.  Past ?HOLD_AT queued messages Python is
%% asked to stop reading its links until the mailbox is down to ?RELEASE_AT:
%% the mailbox then stays bounded by those plus Python's own output buffer.
-define(HOLD_AT, 4096).
-define(RELEASE_AT, 512).

%%% API

-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() ->
    gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

%% @doc Tell Python its node name; returns the port its listener is bound to.
-spec listen(binary()) -> {ok, inet:port_number()} | {error, term()}.
listen(NodeName) ->
    gen_server:call(?MODULE, {listen, NodeName}, infinity).

%% @doc A node that never listens (`-dist_listen false', or a dynamic
%% name) never called listen/1, and Python's links need a name before the
%% first connection: the node's own, or, for a dynamic name (OTP 23's
%% `-sname undefined', what `erl -remsh' uses: the peer of the first
%% connection names the node in its handshake), a random one on its host,
%% kept for the port program's life (the node's name, once given, is for
%% distribution only: links, routes and lanes know it by this one).
%% Nothing if the port program has a name.  Without an acceptor such a
%% node refuses incoming connections, as stock does.
-spec name_unlistened(node()) -> ok.
name_unlistened(MyNode) ->
    gen_server:call(?MODULE, {name_unlistened, MyNode}, infinity).

-spec set_acceptor(pid()) -> ok.
set_acceptor(Pid) ->
    gen_server:call(?MODULE, {set_acceptor, Pid}).

%% @doc Allocate a channel id for an outbound connection controlled by Ctrl.
-spec register_channel(pid()) -> {ok, chan(), port()} | {error, no_port}.
register_channel(Ctrl) ->
    gen_server:call(?MODULE, {register_channel, Ctrl}).

%% @doc Stop forwarding the channel's packets to its controller and keep
%% them here until up/2: the first half of handing input over at nodeup.
-spec hold(chan()) -> ok.
hold(Chan) ->
    gen_server:call(?MODULE, {hold, Chan}).

%% @doc Second half: put the held packets, then put every later one directly.
-spec up(chan(), erlang:dist_handle()) -> ok.
up(Chan, DHandle) ->
    gen_server:call(?MODULE, {up, Chan, DHandle}).

%% @doc Whether the port program can reach the node, over a link or a
%% route: then a new connection to it needs no epmd lookup (and through a
%% route, none would answer).  Read without a call: it is on the path of
%% every connection setup.
-spec reachable(binary()) -> boolean().
reachable(Node) ->
    try ets:member(?REACHABLE, Node)
    catch error:badarg -> false
    end.

%% @doc The carrier's state: this side's, and the port program's links and
%% counters under `port' (absent if the program does not answer in time).
-spec info() -> map().
info() ->
    gen_server:call(?MODULE, info, 10000).

%% @doc Hand a control message to the port program (dropped while it is
%% being restarted; py_dist_neighbours repeats what must survive that).
%% The caller writes it, waiting if the port is busy, so that what the
%% caller asks next (query/1) reaches the port after it; this process
%% itself never waits on the port.
-spec command(tuple()) -> ok.
command(Term) ->
    case gen_server:call(?MODULE, port) of
        {ok, Port} -> write(Port, Term);
        {error, no_port} -> ok
    end.

%% @doc Ask the port program (`topology'); {error, no_answer} if it does
%% not answer in time.  Written by the caller too, for the same order.
-spec query(topology) -> {ok, term()} | {error, no_answer}.
query(What) ->
    Alias = alias([reply]),
    case gen_server:call(?MODULE, {register_query, Alias}) of
        {ok, Ref, Port} ->
            write(Port, {query, Ref, What}),
            receive
                {py_dist_reply, Ref, Answer} -> {ok, Answer}
            after 5000 ->
                    unalias(Alias),
                    {error, no_answer}
            end;
        {error, no_port} ->
            unalias(Alias),
            {error, no_answer}
    end.

%% @doc The cookie dist_util uses with Node (`own': the node's own), as
%% the port program's link proofs need it; `<<>>' when there is none.
-spec cookie(node() | own) -> binary().
cookie(Node) ->
    Cookie = case Node of
                 own -> auth:get_cookie();
                 _ -> auth:get_cookie(Node)
             end,
    case Cookie of
        nocookie -> <<>>;
        _ -> atom_to_binary(Cookie)
    end.

%% @doc The port program's port, for writers that cannot afford a call per
%% packet (py_dist:send/3).  Read from a persistent term, written only when
%% the program starts; a port that has exited since is no port.
-spec port() -> {ok, port()} | {error, no_port}.
port() ->
    case persistent_term:get(?PORT_KEY, undefined) of
        undefined ->
            {error, no_port};
        Port ->
            case erlang:port_info(Port, id) of
                undefined -> {error, no_port};
                _ -> {ok, Port}
            end
    end.

write(Port, Term) ->
    py_dist_port_writer:write_now(Port, py_dist_packet:ctrl(Term)).

%%% gen_server

init([]) ->
    process_flag(trap_exit, true),
    %% a bad value stops the start here, with the key's name
    _ = py_dist_config:advertised(py_dist_config:get(advertise_endpoint)),
    %% load the module whose code names every close reason atom
    _ = py_dist_ctrl:close_reasons(),
    _ = port_info_keys(),
    ?REACHABLE = ets:new(?REACHABLE, [named_table, protected, set, {read_concurrency, true}]),
    process_flag(message_queue_data, off_heap),
    Writer = py_dist_port_writer:start_link(),
    case start_port() of
        {ok, Port, OsPid, ListenPort} ->
            publish(Port),
            S = #state{port = Port, writer = Writer, os_pid = OsPid, listen_port = ListenPort},
            tell_process_opts(S),
            {ok, S};
        {error, Reason} ->
            {stop, Reason}
    end.

handle_call({listen, Node}, _From, #state{listen_port = ListenPort} = S) ->
    send_ctrl(S, {set_node, Node}),
    send_ctrl(S, {advertise, endpoint(Node, ListenPort)}),
    %% one check loop for the node's life, however often it is renamed
    S#state.node =:= undefined andalso
        erlang:send_after(?COOKIE_CHECK_MS, self(), check_cookie),
    {reply, {ok, ListenPort}, give_cookie(S#state{node = Node})};
handle_call({name_unlistened, _MyNode}, _From, #state{node = Node} = S)
  when Node =/= undefined ->
    {reply, ok, S};
handle_call({name_unlistened, MyNode}, From, S) ->
    Node = case string:split(atom_to_list(MyNode), "@") of
               ["undefined", Host] ->
                   %% rand, not crypto: py_dist depends on kernel and stdlib
                   %% only, and a release's remote shell (relx: -boot
                   %% start_clean with the release's applications) has no
                   %% crypto to load
                   Tag = binary:encode_hex(rand:bytes(8)),
                   Dynamic = iolist_to_binary(["pydist_dynamic_", string:lowercase(Tag),
                                               $@, Host]),
                   ?LOG_INFO("py_dist: a dynamic node name; this node's links call it ~ts",
                             [Dynamic]),
                   Dynamic;
               _ ->
                   atom_to_binary(MyNode, utf8)
           end,
    {reply, {ok, _}, S1} = handle_call({listen, Node}, From, S),
    {reply, ok, S1};
handle_call({set_acceptor, Pid}, _From, S) ->
    {reply, ok, S#state{acceptor = Pid}};
handle_call({register_channel, _Ctrl}, _From, #state{port = undefined} = S) ->
    {reply, {error, no_port}, S};
handle_call({register_channel, Ctrl}, From, #state{chans = Chans0} = S0) ->
    {Chan, Chans} = py_dist_chans:alloc(Chans0),
    S = S0#state{chans = Chans},
    %% the caller writes its connect after the close that freed the id
    reply_in_order(From, {ok, Chan, S#state.port}, S),
    {noreply, add_route(Chan, Ctrl, S)};
handle_call({hold, Chan}, _From, #state{chans = Chans} = S) ->
    {reply, ok, S#state{chans = py_dist_chans:hold(Chan, Chans)}};
handle_call({up, Chan, DHandle}, _From, #state{chans = Chans} = S) ->
    case py_dist_chans:up(Chan, DHandle, Chans) of
        {ok, Held, Chans1} ->
            {reply, ok, put_held(Chan, DHandle, Held, S#state{chans = Chans1})};
        none ->
            {reply, ok, S}
    end;
handle_call(info, From, #state{next_info = Ref, info_waiting = Waiting} = S) ->
    case send_ctrl(S, {info, Ref}) of
        true ->
            erlang:send_after(5000, self(), {info_timeout, Ref}),
            {noreply, S#state{next_info = Ref + 1,
                              info_waiting = Waiting#{Ref => {info, From}}}};
        false ->
            {reply, local_info(S), S}
    end;
handle_call(port, _From, #state{port = undefined} = S) ->
    {reply, {error, no_port}, S};
handle_call(port, From, #state{port = Port} = S) ->
    reply_in_order(From, {ok, Port}, S),
    {noreply, S};
handle_call({register_query, _Alias}, _From, #state{port = undefined} = S) ->
    {reply, {error, no_port}, S};
handle_call({register_query, Alias}, From,
            #state{next_info = Ref, info_waiting = Waiting, port = Port} = S) ->
    erlang:send_after(5000, self(), {info_timeout, Ref}),
    reply_in_order(From, {ok, Ref, Port}, S),
    {noreply, S#state{next_info = Ref + 1, info_waiting = Waiting#{Ref => {query, Alias}}}}.

local_info(S) ->
    #{os_pid => S#state.os_pid,
      listen_port => S#state.listen_port,
      node => S#state.node,
      channels => py_dist_chans:count(S#state.chans),
      restarts => S#state.restarts}.

%% The atoms of the port program's answers and reports; naming them here
%% makes them exist for the safe decode of its control messages.
port_info_keys() ->
    [links, peer, up, dialled, channels, stats,
     chan, epoch, initiator, paused, unacked_bytes, reorder_bytes, next_seq, expected,
     queued_bytes, flows, inflight_budget, min_rtt_us, hold_flow, release_flow,
     reachable, unreachable, neighbour_up, neighbour_down, reply, loss, link_up, link_down,
     cookie_please,
     node, lsdb, origin, seq, age_left, neighbours, routes, dest, via, cost, static,
     endpoint,
     dropped, deliver, no_route, congested, deadline, overflow, link_refused,
     process_lanes, lost].

answer_info(Ref, Answer, #state{info_waiting = Waiting} = S) ->
    case maps:take(Ref, Waiting) of
        {{info, From}, Rest} ->
            Info = local_info(S),
            gen_server:reply(From, case Answer of
                                       undefined -> Info;
                                       _ -> Info#{port => Answer}
                                   end),
            S#state{info_waiting = Rest};
        {{query, Alias}, Rest} ->
            is_map(Answer) andalso (Alias ! {py_dist_reply, Ref, Answer}),
            S#state{info_waiting = Rest};
        error ->
            S
    end.

handle_cast(Msg, S) ->
    ?LOG_WARNING("py_dist: the port owner got an unexpected cast: ~0P", [Msg, 10]),
    {noreply, S}.

handle_info({Port, {data, Packet}}, #state{port = Port} = S) ->
    {noreply, pace_input(inbound(py_dist_packet:decode(Packet), S))};
handle_info({'DOWN', _Ref, process, Ctrl, _Reason}, S) ->
    {noreply, ctrl_down(Ctrl, S)};
handle_info({Port, {exit_status, Status}}, #state{port = Port} = S) ->
    {noreply, port_down({exit_status, Status}, S)};
handle_info({'EXIT', Port, Reason}, #state{port = Port} = S) ->
    {noreply, port_down(Reason, S)};
handle_info({'EXIT', Writer, Reason}, #state{writer = Writer} = S) ->
    ?LOG_ERROR("py_dist: the port writer exited (~0p); starting another", [Reason]),
    {noreply, S#state{writer = py_dist_port_writer:start_link()}};
handle_info({info_timeout, Ref}, S) ->
    {noreply, answer_info(Ref, undefined, S)};
handle_info(restart_port, #state{port = undefined} = S) ->
    {noreply, restart_port(S)};
handle_info(check_cookie, S) ->
    erlang:send_after(?COOKIE_CHECK_MS, self(), check_cookie),
    {noreply, give_cookie(S)};
handle_info({Port, _}, S) when is_port(Port) ->
    {noreply, S};  % the rest of a port program that exited and was replaced
handle_info({'EXIT', Port, _}, S) when is_port(Port) ->
    {noreply, S};
handle_info(restart_port, S) ->
    {noreply, S};  % restarted already
handle_info(Other, S) ->
    ?LOG_WARNING("py_dist: the port owner got an unexpected message: ~0P", [Other, 10]),
    {noreply, S}.

terminate(_Reason, #state{port = Port}) when is_port(Port) ->
    catch port_close(Port),
    ok;
terminate(_Reason, _S) ->
    ok.

%%% Inbound

pace_input(#state{holding = Holding} = S) ->
    {message_queue_len, Queued} = erlang:process_info(self(), message_queue_len),
    if
        not Holding andalso Queued > ?HOLD_AT ->
            send_ctrl(S, {input, hold}),
            S#state{holding = true};
        Holding andalso Queued < ?RELEASE_AT ->
            send_ctrl(S, {input, release}),
            S#state{holding = false};
        true ->
            S
    end.

inbound({data, Chan, Frames}, #state{chans = Chans} = S) ->
    case py_dist_chans:data(Chan, Frames, Chans) of
        {put, DHandle} ->
            put_frames(Chan, DHandle, Frames, S);
        {forward, Ctrl} ->
            Ctrl ! {py_dist_data, Frames},
            S;
        {held, Chans1} ->
            S#state{chans = Chans1};
        none ->
            S
    end;
inbound({deliver, Payload}, S) ->
    py_dist_lanes:deliver(Payload),
    S;
inbound({ctrl, {dropped, Notify, Reason}}, S) when is_binary(Notify), is_atom(Reason) ->
    py_dist_lanes:dropped(Notify, Reason),
    S;
inbound({ctrl, {accepted, Chan, Peer}}, S) ->
    accepted(Chan, Peer, S);
inbound({ctrl, {closed, Chan, Reason}}, #state{chans = Chans} = S) ->
    case py_dist_chans:ctrl_of(Chan, Chans) of
        {ok, Ctrl} ->
            Ctrl ! {py_dist_closed, Reason},
            forget(Ctrl, S);
        error ->
            S
    end;
inbound({ctrl, {hold_flow, Chan, Flow}}, S) ->
    tell_ctrl(Chan, {py_dist_hold_flow, Flow}, S);
inbound({ctrl, {release_flow, Chan, Flow}}, S) ->
    tell_ctrl(Chan, {py_dist_release_flow, Flow}, S);
inbound({ctrl, {pause, Chan}}, S) ->
    tell_ctrl(Chan, py_dist_pause, S);
inbound({ctrl, {resume, Chan}}, S) ->
    tell_ctrl(Chan, py_dist_resume, S);
inbound({ctrl, {reachable, Peer}}, S) when is_binary(Peer) ->
    true = ets:insert(?REACHABLE, {Peer}),
    py_dist_events:reachable(Peer),
    S;
inbound({ctrl, {unreachable, Peer}}, S) when is_binary(Peer) ->
    true = ets:delete(?REACHABLE, Peer),
    py_dist_events:unreachable(Peer),
    S;
inbound({ctrl, {name_taken, Seed}}, S) when is_binary(Seed) ->
    %% As epmd refuses a second node of one name: this node's name belongs
    %% to another live node of the cluster, so it stops joining.  (Stock
    %% distribution fails the boot then; here the node was already up.)
    py_dist_events:name_taken(Seed, S#state.node),
    py_dist_neighbours:give_up(),
    S;
inbound({ctrl, {lost, Peer, Flow, Count}}, S)
  when is_binary(Peer), is_integer(Flow), is_integer(Count), Count > 0 ->
    py_dist_process_opts:lost(Peer, Flow, Count),
    S;
inbound({ctrl, {loss, Peer, Reason, Unacked}}, S) when is_binary(Peer) ->
    py_dist_losses:report(Peer, Reason, Unacked),
    py_dist_events:loss(Peer, Reason, Unacked),
    S;
inbound({ctrl, {link_refused, Peer, Why}}, S) when is_binary(Peer), is_atom(Why) ->
    py_dist_events:link_refused(Peer, Why),
    S;
inbound({ctrl, {cookie_please, Peer}}, S) when is_binary(Peer) ->
    %% A link from Peer did not prove the cookie Python has: the one
    %% dist_util would use with Peer, if erlang:set_cookie/2 set one (a
    %% node whose name is no atom here has none), and the node's own
    %% first, should it have changed since the last check.
    S1 = give_cookie(S),
    Cookie = try binary_to_existing_atom(Peer) of
                 Node -> cookie(Node)
             catch error:badarg -> cookie(own)
             end,
    send_ctrl(S1, {cookie_for, Peer, Cookie}),
    S1;
inbound({ctrl, {link_up, Peer}}, S) when is_binary(Peer) ->
    py_dist_events:link_up(Peer),
    S;
inbound({ctrl, {link_down, Peer, Reason}}, S) when is_binary(Peer), is_binary(Reason) ->
    py_dist_events:link_down(Peer, Reason),
    S;
inbound({ctrl, {neighbour_up, Peer}}, S) when is_binary(Peer) ->
    py_dist_neighbours:link_state(Peer, up),
    S;
inbound({ctrl, {neighbour_down, Peer}}, S) when is_binary(Peer) ->
    py_dist_neighbours:link_state(Peer, down),
    S;
inbound({ctrl, {info, Ref, Port}}, S) when is_map(Port) ->
    answer_info(Ref, Port, S);
inbound({ctrl, {reply, Ref, Answer}}, S) ->
    answer_info(Ref, Answer, S);
inbound({ctrl, Other}, S) ->
    ?LOG_WARNING("py_dist: unexpected control message from the port: ~0p",
                 [Other]),
    S;
inbound({error, Reason}, S) ->
    ?LOG_ERROR("py_dist: bad packet from the port: ~0p", [Reason]),
    S.

-ifdef(TEST).
-spec deliver(binary()) -> ok.
deliver(Payload) ->
    py_dist_lanes:deliver(Payload).

-spec dropped(binary(), atom()) -> ok.
dropped(Notify, Reason) ->
    py_dist_lanes:dropped(Notify, Reason).
-endif.

tell_ctrl(Chan, Msg, #state{chans = Chans} = S) ->
    case py_dist_chans:ctrl_of(Chan, Chans) of
        {ok, Ctrl} -> Ctrl ! Msg, ok;
        error -> ok
    end,
    S.

put_frames(Chan, DHandle, Frames, S) ->
    try py_dist_packet:put_frames(DHandle, Frames) of
        ok ->
            S;
        {error, Reason} ->
            fail_channel(Chan, Reason, S)
    catch
        %% The connection is on its way down, and its controller's exit
        %% cleans the route up: erts refuses the handle (badarg), or, once
        %% it has taken the connection down and cleared its input handler,
        %% refuses us as the handler (notsup).
        error:badarg -> S;
        error:notsup -> S
    end.

put_held(_Chan, _DHandle, [], S) ->
    S;
put_held(Chan, DHandle, [Frames | Rest], S) ->
    S1 = put_frames(Chan, DHandle, Frames, S),
    case py_dist_chans:ctrl_of(Chan, S1#state.chans) of
        {ok, _Ctrl} -> put_held(Chan, DHandle, Rest, S1);
        error -> S1  % malformed data took the connection down: the rest goes with it
    end.

%% Malformed data takes down the one connection it came on.  A corrupt
%% header the controller reports itself, as erts would.
fail_channel(Chan, {corrupted_header, _} = Reason, #state{chans = Chans} = S) ->
    {ok, Ctrl} = py_dist_chans:ctrl_of(Chan, Chans),
    Ctrl ! {py_dist_closed, Reason},
    send_ctrl(S, {close, Chan, protocol_error}),
    forget(Ctrl, S);
fail_channel(Chan, Reason, #state{chans = Chans} = S) ->
    ?LOG_ERROR("py_dist: channel ~w: ~0p; closing the connection",
               [Chan, Reason]),
    {ok, Ctrl} = py_dist_chans:ctrl_of(Chan, Chans),
    Ctrl ! {py_dist_closed, Reason},
    send_ctrl(S, {close, Chan, Reason}),
    forget(Ctrl, S).

accepted(Chan, Peer, #state{acceptor = undefined} = S) ->
    ?LOG_WARNING("py_dist: connection from ~ts before listen; refused", [Peer]),
    send_ctrl(S, {close, Chan, not_listening}),
    S;
accepted(Chan, Peer, #state{acceptor = Acceptor, port = Port} = S) ->
    Ctrl = py_dist_ctrl:start(Port, Chan),
    Acceptor ! {py_dist_accept, Ctrl, Peer},
    add_route(Chan, Ctrl, S).

%%% Channels

add_route(Chan, Ctrl, #state{chans = Chans} = S) ->
    Ref = erlang:monitor(process, Ctrl),
    S#state{chans = py_dist_chans:add(Chan, Ctrl, Ref, Chans)}.

forget(Ctrl, #state{chans = Chans} = S) ->
    case py_dist_chans:forget(Ctrl, Chans) of
        {ok, Ref, Chans1} ->
            erlang:demonitor(Ref, [flush]),
            S#state{chans = Chans1};
        error ->
            S
    end.

%% A controller ended: its connection is gone, so Python drops the channel.
%% Everything the controller wrote is in the port queue before this close.
ctrl_down(Ctrl, #state{chans = Chans} = S) ->
    case py_dist_chans:chan_of(Ctrl, Chans) of
        {ok, Chan} ->
            send_ctrl(S, {close, Chan, down}),
            forget(Ctrl, S);
        error ->
            S
    end.

%%% The port program

%% Rare (the program's start) as a persistent term update must be: it
%% costs every process a scan.  The entry of a port gone stays until the
%% next start; port/0 checks it is alive.
publish(Port) ->
    persistent_term:put(?PORT_KEY, Port).

port_down(Reason, #state{chans = Chans0} = S) ->
    ?LOG_ERROR("py_dist: port program ~w exited (~0p); its connections go "
               "down and it is restarted", [S#state.os_pid, Reason]),
    {Ctrls, Chans} = py_dist_chans:clear(Chans0),
    _ = [Ctrl ! {py_dist_closed, port_exit} || {Ctrl, _Ref} <- Ctrls],
    _ = [erlang:demonitor(Ref, [flush]) || {_Ctrl, Ref} <- Ctrls],
    true = ets:delete_all_objects(?REACHABLE),
    restart_port(S#state{port = undefined, os_pid = undefined,
                         chans = Chans, holding = false}).

restart_port(#state{restarts = N} = S) ->
    case start_port(S#state.listen_port) of
        {ok, Port, OsPid, _ListenPort} ->
            publish(Port),
            S1 = S#state{port = Port, os_pid = OsPid, restarts = N + 1, cookie = undefined},
            py_dist_neighbours:port_restarted(),
            tell_process_opts(S1),
            case S#state.node of
                Node when is_binary(Node) ->
                    send_ctrl(S1, {set_node, Node}),
                    send_ctrl(S1, {advertise, endpoint(Node, S#state.listen_port)}),
                    give_cookie(S1);
                undefined ->
                    S1
            end;
        {error, Reason} ->
            ?LOG_ERROR("py_dist: cannot restart the port program: ~0p",
                       [Reason]),
            erlang:send_after(py_dist_config:get(restart_delay), self(),
                              restart_port),
            S#state{restarts = N + 1}
    end.

%% Where other nodes reach this one, advertised in the link state for
%% py_dist_epmd: the host of its name, as with epmd, and the listener's
%% port; or what `advertise_endpoint' says (checked when the port program
%% starts, py_dist_config:advertised/1).
endpoint(Node, ListenPort) ->
    case py_dist_config:advertised(py_dist_config:get(advertise_endpoint)) of
        name ->
            [_Name, Host] = binary:split(Node, <<"@">>),
            iolist_to_binary([Host, $:, integer_to_list(ListenPort)]);
        none ->
            <<>>;
        {Host, Port} ->
            iolist_to_binary([Host, $:, integer_to_list(Port)])
    end.

start_port() ->
    start_port(undefined).

%% The port program's package travels in this application's priv/python
%% (a release carries it): put it first on the Python path, so that only
%% its dependencies need installing.  A release may carry those too, in
%% priv/python_deps (python -m pydist.vendor puts them there): next on the
%% path, before whatever the environment had, so the target machine needs
%% only python3.  Read with prim_file: this runs before kernel's file
%% server exists.
python_path() ->
    case code:priv_dir(py_dist) of
        {error, bad_name} ->
            [];
        Priv ->
            Package = filename:join(Priv, "python"),
            Deps = filename:join(Priv, "python_deps"),
            Dirs = [Package || exists(filename:join([Package, "pydist", "__main__.py"]))]
                ++ [Deps || exists(Deps)],
            case Dirs of
                [] ->
                    [];
                _ ->
                    Old = case os:getenv("PYTHONPATH") of
                              false -> [];
                              "" -> [];
                              Path -> [Path]
                          end,
                    [{"PYTHONPATH", lists:flatten(lists:join(":", Dirs ++ Old))}]
            end
    end.

%% glibc's malloc, left to itself, returns freed memory at the top of the
%% heap to the kernel and serves 256 KiB frames from fresh mappings: the
%% port program then takes some 50 page faults per MiB it carries, a fifth
%% of its CPU time (README, Performance).  Kept below 4 MiB, allocations
%% come from the heap, and up to 64 MiB free stays in it: the port
%% program's peak use, which it reaches within seconds of a stream
%% anyway.  A setting in the environment wins; other C libraries ignore
%% these names.
malloc_env() ->
    [{Name, Value} || {Name, Value} <- [{"MALLOC_MMAP_THRESHOLD_", "4194304"},
                                        {"MALLOC_TRIM_THRESHOLD_", "67108864"}],
                      os:getenv(Name) =:= false].

exists(Path) ->
    element(1, prim_file:read_file_info(Path)) =:= ok.

%% After a restart the listener binds the same port again, so the epmd
%% registration made at listen stays true.
start_port(ListenPort) ->
    {Exe, Args0} = py_dist_config:python_command(),
    Args = case ListenPort of
               undefined -> Args0;
               _ -> Args0 ++ ["--set", "listen_port=" ++ integer_to_list(ListenPort)]
           end,
    try open_port({spawn_executable, Exe},
                  [{args, Args}, {packet, 4}, binary, exit_status, use_stdio,
                   {env, python_path() ++ malloc_env()}])
    of
        Port ->
            await_ready(Port)
    catch
        error:Reason ->
            {error, {cannot_start, Exe, Reason}}
    end.

await_ready(Port) ->
    Timeout = py_dist_config:get(start_timeout),
    receive
        {Port, {data, Packet}} ->
            case py_dist_packet:decode(Packet) of
                {ctrl, {ready, ListenPort}} ->
                    {os_pid, OsPid} = erlang:port_info(Port, os_pid),
                    {ok, Port, OsPid, ListenPort};
                Other ->
                    catch port_close(Port),
                    {error, {unexpected_first_packet, Other}}
            end;
        {Port, {exit_status, Status}} ->
            {error, {port_exit, Status}}
    after Timeout ->
            catch port_close(Port),
            {error, start_timeout}
    end.

%% The port program gets the node's own cookie when the node is named and
%% whenever it changes; per-node cookies come with each connect and link.
give_cookie(#state{port = undefined} = S) ->
    S;
give_cookie(#state{cookie = Old} = S) ->
    case cookie(own) of
        Old ->
            S;
        New ->
            send_ctrl(S, {cookie, New}),
            S#state{cookie = New}
    end.

%% The answer to a caller that writes to the port next: sent once what
%% this process wrote before is in the port (see py_dist_port_writer).
reply_in_order(From, Reply, #state{writer = Writer}) ->
    py_dist_port_writer:reply(Writer, From, Reply).

%% A control message of this process, through its one writer: in order,
%% and never waiting here.  False if there is no port program to write to.
%% What py_dist:set_lane/1 and loss_mode/1 set, for a port program that starts (a new
%% owner's, after a crash of the last, or a restarted one).
tell_process_opts(S) ->
    _ = [send_ctrl(S, Setting) || Setting <- py_dist_process_opts:settings()],
    ok.

send_ctrl(#state{port = undefined}, _Term) ->
    false;
send_ctrl(#state{port = Port, writer = Writer}, Term) ->
    py_dist_port_writer:write(Writer, Port, py_dist_packet:ctrl(Term)),
    true.
