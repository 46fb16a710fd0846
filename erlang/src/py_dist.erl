%% @doc The `-proto_dist py' callback module, and the public API.
%%
%% `erl -proto_dist py' makes net_kernel call this module.  It knows
%% connections, not bytes: every byte of a connection goes to the Python
%% port program owned by py_dist_port, which carries it to the peer over
%% ZeroMQ.  Handshake, ticks and statistics are dist_util's, as with any
%% distribution carrier built on distribution controller processes.
%%
%% Besides the connection that `!' uses, send/2,3 offer lanes that give up
%% order, delivery or lateness for speed: their messages go to the port
%% program apart from any connection.
-module(py_dist).

-include_lib("kernel/include/net_address.hrl").
-include_lib("kernel/include/dist_util.hrl").
-include_lib("kernel/include/logger.hrl").
-include("py_dist.hrl").

%% net_kernel callbacks
-export([childspecs/0, listen/1, listen/2, accept/1, accept_connection/5,
         setup/5, close/1, select/1, address/0, is_node_name/1,
         setopts/2, getopts/2, socket_opts/1, socket_opt/2, socket_getopts/2]).
%% public API
-export([info/0, info/1, monitor_losses/0, demonitor_losses/0,
         link/1, link/2, unlink/1, neighbours/0,
         add_route/2, del_route/1, routes/0, topology/0, endpoint/1,
         send/2, send/3, set_send_opts/1, get_send_opts/0, lane_of/1,
         set_lane/1, get_lane/0, loss_mode/1, get_loss_mode/0]).
%% spawned
-export([accept_loop/1, do_accept/6, do_setup/6]).

-ifdef(TEST).
-export([lane_packet/4]).
-endif.

-define(FAMILY, inet).
%% What epmd reports for an OTP 23+ node; dist_util of OTP 25 ignores it.
-define(HIGHEST_DIST_VERSION, 6).
-define(PROTOCOL, py).
%% The process dictionary key of send/2's options: {Opts, lane_of(Opts)}.
-define(SEND_OPTS, {py_dist, send_opts}).

-export_type([send_opt/0, dest/0, lane_choice/0]).

-type send_opt() :: reliable | unordered | unreliable | realtime
                  | {deadline, pos_integer()} | {notify, term()}.
-type dest() :: pid() | atom() | {atom(), node()}.
-type lane_choice() :: reliable
                     | {py_dist_packet:lane(), DeadlineMs :: 0..16#FFFFFFFF,
                        none | {notify, term()}}.

%%% Public API

%% @doc What this node's carrier looks like: the port program, its
%% listener, its channels and how often it was restarted.
-spec info() -> map().
info() ->
    py_dist_port:info().

%% @doc The carrier's view of the connection to Node: its epoch, whether it
%% is paused, the bytes kept for resending and held early, the next
%% sequence to send and the one awaited; `undefined' if there is none.
-spec info(node()) -> map() | undefined.
info(Node) when is_atom(Node) ->
    Peer = atom_to_binary(Node),
    Channels = case info() of
                   #{port := #{channels := Cs}} -> Cs;
                   #{} -> []
               end,
    case [C || #{peer := P} = C <- Channels, P =:= Peer] of
        [C | _] -> C;
        [] -> undefined
    end.

%% @doc Be told of connections this node's carrier closes because frames
%% may have been lost: `{py_dist_loss, Node, Reason, #{unacked => N}}'
%% arrives before the nodedown (see py_dist_losses).  Until the caller
%% exits or calls demonitor_losses/0.
-spec monitor_losses() -> ok.
monitor_losses() ->
    py_dist_losses:monitor(self()).

-spec demonitor_losses() -> ok.
demonitor_losses() ->
    py_dist_losses:demonitor(self()).

%% @doc Keep a link to Node (a neighbour): dialled now, and again whenever
%% it goes down.  Its endpoint is looked up through the epmd module unless
%% given as `#{endpoint => {Host, Port}}'; `#{cost => C}' sets the cost
%% this node advertises for the link (default: the `link_cost' key).
-spec link(node()) -> ok | {error, term()}.
link(Node) ->
    link(Node, #{}).

-spec link(node(), py_dist_neighbours:link_opts()) -> ok | {error, term()}.
link(Node, Opts) when is_atom(Node), is_map(Opts) ->
    py_dist_neighbours:link(Node, Opts).

%% @doc Stop keeping a link to Node and close it.  Connections over it
%% go down and come back over another route, if there is one.
-spec unlink(node()) -> ok.
unlink(Node) when is_atom(Node) ->
    py_dist_neighbours:unlink(Node).

%% @doc The neighbours kept (by configuration or link/1,2) and their links' state.
-spec neighbours() -> [{node(), down | dialling | up}].
neighbours() ->
    py_dist_neighbours:neighbours().

%% @doc Send traffic for Dest through the neighbour Via, whatever the
%% computed route says.  It applies while the link to Via is up; when it
%% is down the computed route is used.
-spec add_route(node(), node()) -> ok.
add_route(Dest, Via) when is_atom(Dest), is_atom(Via) ->
    py_dist_neighbours:add_route(Dest, Via).

-spec del_route(node()) -> ok | {error, not_found}.
del_route(Dest) when is_atom(Dest) ->
    py_dist_neighbours:del_route(Dest).

%% @doc The routing table in use: per destination the neighbour traffic
%% goes through, the path cost (-1: unknown, as for a static route to a
%% node the link state does not know) and whether the route is static.
-spec routes() -> [#{dest := binary(), via := binary(), cost := integer(),
                     static := boolean()}].
routes() ->
    case topology() of
        #{routes := Routes} -> Routes;
        #{} -> []
    end.

%% @doc The port program's link-state database (every node's LSP: its
%% neighbours and link costs, sequence number, lifetime left in ms) and
%% its routes.
-spec topology() -> map().
topology() ->
    case py_dist_port:query(topology) of
        {ok, Topology} -> Topology;
        {error, _} = Error -> #{error => Error}
    end.

%% @doc Where Node's carrier listens, from the epmd module.
-spec endpoint(node()) -> {ok, inet:ip_address(), inet:port_number()} | {error, term()}.
endpoint(Node) ->
    case split_host(Node) of
        {ok, Name, Host} ->
            try resolve(Node, Name, Host) of
                {Ip, Port, _Version} -> {ok, Ip, Port}
            catch
                exit:Reason -> {error, Reason}
            end;
        error ->
            {error, bad_node_name}
    end.

%%% Send lanes

%% @doc Send Msg to Dest (a pid, a registered name, or `{Name, Node}') on
%% the lane that Opts choose, and return `ok':
%% <ul>
%% <li>`realtime', or `{deadline, Ms}': goes before the other lanes, is
%%   dropped if it is still waiting on this node Ms after the call (the
%%   shortest given; `realtime' alone: the `realtime_deadline' key), and
%%   the receiver drops one that arrives after a later one of this node;</li>
%% <li>else `unreliable': unordered, and dropped rather than kept waiting
%%   when the way is congested;</li>
%% <li>else `unordered': delivered in any order, unless more than
%%   `lane_queue_bytes' of lane messages wait for the link;</li>
%% <li>else (`[]', `[reliable]'): as `Dest ! Msg'.</li>
%% </ul>
%% A destination node with no connection to this one is connected to
%% first (the caller waits, as for net_kernel:connect_node/1): the far
%% node takes lane messages only from nodes it has a connection with.
%%
%% `{notify, Tag}' (the first given) asks the port program to tell the
%% caller when it drops the message on this node: the caller then gets
%% `{py_dist_dropped, Tag, Reason}', Reason `not_connected' (no connection
%% could be made), `no_route', `congested', `deadline' or `overflow'.  Any lane drops what it has no route for;
%% drops on other nodes are not reported.
%%
%% A destination on this node, or a port program that is not running (no
%% distribution, or a restart), gets the message as with `!': delivered,
%% reliable, never reported dropped.  Lane messages keep no order with
%% ordinary ones, nor with each other.  An unknown option, or a Tag longer
%% than 64 kB encoded, is a badarg.
-spec send(dest(), term(), [send_opt()]) -> ok.
send(Dest, Msg, Opts) ->
    send_on(lane_of(Opts), Dest, Msg).

%% @doc Put the calling process's own message sends to other nodes (`!',
%% erlang:send/2, gen_server:cast/2, ...) on Lane, as if each were a
%% send/3 with that lane's option; `reliable' puts them back on their
%% connections.  Returns the lane the process had.  The next send already
%% takes it.  Only whole messages move: links, monitors and exits of the
%% process, and a message large enough for erts to cut into fragments
%% (64 KiB), stay on the connection, in order.  Ends with the process; a
%% bad Lane is a badarg, more than 65,536 processes with a lane at once a
%% system_limit.  On a node not on py_dist, nothing changes.
-spec set_lane(py_dist_process_opts:lane()) -> py_dist_process_opts:lane().
set_lane(Lane) ->
    py_dist_process_opts:set_lane(self(), Lane).

%% @doc The lane of the calling process's own message sends.
-spec get_lane() -> py_dist_process_opts:lane().
get_lane() ->
    py_dist_process_opts:lane(self()).

%% @doc What a loss of the calling process's messages does; returns the
%% mode it had.  `nodedown' (the default): a message the carrier cannot
%% deliver takes its connection down, as stock distribution does when its
%% TCP connection breaks (nodedown for every process, then nodeup).
%% `notify': such a message is given up and the process gets
%% `{py_dist_lost, Node, Count}' (Count messages to Node lost), while the
%% connection and every other process's traffic on it carry on.  Only
%% messages are given up: a lost link, monitor or exit signal of the
%% process, or a lost fragment of a message erts cut into fragments, still
%% takes the connection down.  Ends with the process; badarg for no mode.
-spec loss_mode(py_dist_process_opts:loss_mode()) -> py_dist_process_opts:loss_mode().
loss_mode(Mode) ->
    py_dist_process_opts:set_loss_mode(self(), Mode).

%% @doc What a loss of the calling process's messages does.
-spec get_loss_mode() -> py_dist_process_opts:loss_mode().
get_loss_mode() ->
    py_dist_process_opts:loss_mode(self()).

%% @doc send/3 with the caller's options of set_send_opts/1 (none: as `!').
-spec send(dest(), term()) -> ok.
send(Dest, Msg) ->
    case get(?SEND_OPTS) of
        {_Opts, Choice} -> send_on(Choice, Dest, Msg);
        undefined -> local_send(Dest, Msg)
    end.

%% @doc Set the options send/2 uses in the calling process; returns the
%% previous ones (`[]' if none).  Checked as send/3 checks them.
-spec set_send_opts([send_opt()]) -> [send_opt()].
set_send_opts(Opts) ->
    Choice = lane_of(Opts),
    Old = get_send_opts(),
    _ = case Opts of
            [] -> erase(?SEND_OPTS);
            _ -> put(?SEND_OPTS, {Opts, Choice})
        end,
    Old.

-spec get_send_opts() -> [send_opt()].
get_send_opts() ->
    case get(?SEND_OPTS) of
        {Opts, _Choice} -> Opts;
        undefined -> []
    end.

%% @doc What send/3 does with Opts: `reliable' (as `!'), or the lane, the
%% deadline for the wire (0: none given) and whom to tell of a drop.
%% Pure; badarg if Opts is not a list of send options.
-spec lane_of([send_opt()]) -> lane_choice().
lane_of(Opts) ->
    lane_of(Opts, 0, none, none).

%% Lanes are numbered by what they give up, so the lane is the highest any
%% option asks for (0: none, the reliable one).
lane_of([reliable | Rest], Lane, Deadline, Notify) ->
    lane_of(Rest, Lane, Deadline, Notify);
lane_of([unordered | Rest], Lane, Deadline, Notify) ->
    lane_of(Rest, max(Lane, ?PY_DIST_LANE_UNORDERED), Deadline, Notify);
lane_of([unreliable | Rest], Lane, Deadline, Notify) ->
    lane_of(Rest, max(Lane, ?PY_DIST_LANE_UNRELIABLE), Deadline, Notify);
lane_of([realtime | Rest], _Lane, Deadline, Notify) ->
    lane_of(Rest, ?PY_DIST_LANE_REALTIME, Deadline, Notify);
lane_of([{deadline, Ms} | Rest], _Lane, Deadline, Notify)
  when is_integer(Ms), Ms > 0 ->
    lane_of(Rest, ?PY_DIST_LANE_REALTIME, shortest(Ms, Deadline), Notify);
lane_of([{notify, Tag} | Rest], Lane, Deadline, none) ->
    lane_of(Rest, Lane, Deadline, {notify, Tag});
lane_of([{notify, _Tag} | Rest], Lane, Deadline, Notify) ->
    lane_of(Rest, Lane, Deadline, Notify);
lane_of([], 0, _Deadline, _Notify) ->
    reliable;
lane_of([], Lane, none, Notify) ->
    {Lane, 0, Notify};
lane_of([], Lane, Deadline, Notify) ->
    %% the wire has 32 bits: some 50 days, no deadline in practice
    {Lane, min(Deadline, 16#FFFFFFFF), Notify};
lane_of(_Opts, _Lane, _Deadline, _Notify) ->
    error(badarg).

shortest(Ms, none) -> Ms;
shortest(Ms, Deadline) -> min(Ms, Deadline).

send_on(reliable, Dest, Msg) ->
    local_send(Dest, Msg);
send_on({_Lane, _DeadlineMs, Notify} = Choice, Dest, Msg) ->
    case remote(Dest) of
        local ->
            local_send(Dest, Msg);
        {Node, To} ->
            case py_dist_port:port() of
                {ok, Port} ->
                    Packet = lane_packet(Choice, Node, To, Msg),
                    case connected(Node) of
                        true -> port_send(Port, Packet, Dest, Msg);
                        false -> not_connected(Notify)
                    end;
                {error, no_port} ->
                    local_send(Dest, Msg)
            end
    end.

%% What the port program gets for a lane message (badarg for a huge tag).
lane_packet({Lane, DeadlineMs, Notify}, Node, To, Msg) ->
    py_dist_packet:lane(Lane, DeadlineMs, atom_to_binary(Node, utf8), notify(Notify),
                        term_to_binary({To, Msg})).

%% A lane message comes after its node's nodeup, as `!''s do: the far node
%% takes lane messages only from nodes it has a connection with (whose
%% handshake checked the cookie).  So, as `!' does, a send sets the
%% connection up first; unlike `!', it waits for that.
connected(Node) ->
    lists:member(Node, nodes(connected)) orelse net_kernel:connect_node(Node) =:= true.

%% No connection could be made: the message is lost, as with `!' to a node
%% that cannot be reached, and told to the sender if it asked.
not_connected(none) ->
    ok;
not_connected({notify, Tag}) ->
    self() ! {py_dist_dropped, Tag, not_connected},
    ok.

%% Where a destination on another node is: its node and what names the
%% process there; local if on this node.  Anything else is no destination.
remote(Pid) when is_pid(Pid) ->
    case node(Pid) of
        Node when Node =:= node() -> local;
        Node -> {Node, Pid}
    end;
remote({Name, Node}) when is_atom(Name), is_atom(Node) ->
    case Node =:= node() of
        true -> local;
        false -> {Node, Name}
    end;
remote(Name) when is_atom(Name) ->
    local;
remote(_Dest) ->
    error(badarg).

notify(none) ->
    <<>>;
notify({notify, Tag}) ->
    case term_to_binary({self(), Tag}) of
        Bin when byte_size(Bin) < 1 bsl 16 -> Bin;
        _ -> error(badarg)
    end.

%% The sender writes, and waits if the port is busy: the lanes' back
%% pressure, as a busy distribution port's is for `!'.  If the port closed
%% since port/0 (the program restarting), the message goes as with no port.
port_send(Port, Packet, Dest, Msg) ->
    try erlang:port_command(Port, Packet) of
        true -> ok
    catch
        error:badarg -> local_send(Dest, Msg)
    end.

%% `!' itself, badarg and all.
local_send(Dest, Msg) ->
    _ = erlang:send(Dest, Msg),
    ok.

%%% net_kernel callbacks

%% @doc One supervisor of our own under net_sup: net_sup is one_for_all
%% with intensity 0, so the port owner restarts Python itself rather than
%% crash.  net_sup starts these children before net_kernel, so the port
%% program is running when listen/2 is called.
childspecs() ->
    {ok, [#{id => py_dist_sup,
            start => {py_dist_sup, start_link, []},
            restart => permanent,
            shutdown => infinity,
            type => supervisor,
            modules => [py_dist_sup]}]}.

listen(Name) ->
    {ok, Host} = inet:gethostname(),
    listen(Name, Host).

listen(Name, Host) ->
    Node = iolist_to_binary([atom_to_list(Name), $@, Host]),
    case py_dist_port:listen(Node) of
        {ok, Port} ->
            case (epmd_module()):register_node(Name, Port, ?FAMILY) of
                {ok, Creation} ->
                    Address = #net_address{address = {{0, 0, 0, 0}, Port},
                                           host = Host,
                                           protocol = ?PROTOCOL,
                                           family = ?FAMILY},
                    {ok, {{py_dist_listen, Port}, Address, Creation}};
                Error ->
                    Error
            end;
        Error ->
            Error
    end.

address() ->
    {ok, Host} = inet:gethostname(),
    #net_address{host = Host, protocol = ?PROTOCOL, family = ?FAMILY}.

accept(_Listen) ->
    spawn_opt(?MODULE, accept_loop, [self()], [link, {priority, max}]).

%% @doc Python accepted a channel and the port owner started its
%% controller; tell net_kernel, as gen_tcp_dist does for a new socket.
accept_loop(Kernel) ->
    ok = py_dist_port:set_acceptor(self()),
    accept_loop(Kernel, ok).

accept_loop(Kernel, ok) ->
    receive
        {py_dist_accept, Ctrl, _Peer} ->
            Kernel ! {accept, self(), Ctrl, ?FAMILY, ?PROTOCOL},
            receive
                {Kernel, controller, Pid} ->
                    _ = catch py_dist_ctrl:call(Ctrl, {supervisor, Pid}),
                    Pid ! {self(), controller};
                {Kernel, unsupported_protocol} ->
                    exit(unsupported_protocol)
            end,
            accept_loop(Kernel, ok)
    end.

accept_connection(AcceptPid, Ctrl, MyNode, Allowed, SetupTime) ->
    spawn_opt(?MODULE, do_accept,
              [self(), AcceptPid, Ctrl, MyNode, Allowed, SetupTime],
              dist_util:net_ticker_spawn_options()).

do_accept(Kernel, AcceptPid, Ctrl, MyNode, Allowed, SetupTime) ->
    receive
        {AcceptPid, controller} ->
            Timer = dist_util:start_timer(SetupTime),
            HSData = hs_data(Ctrl),
            dist_util:handshake_other_started(
              HSData#hs_data{kernel_pid = Kernel,
                             this_node = MyNode,
                             timer = Timer,
                             this_flags = 0,
                             allowed = Allowed})
    end.

setup(Node, Type, MyNode, LongOrShortNames, SetupTime) ->
    spawn_opt(?MODULE, do_setup,
              [self(), Node, Type, MyNode, LongOrShortNames, SetupTime],
              dist_util:net_ticker_spawn_options()).

do_setup(Kernel, Node, Type, MyNode, LongOrShortNames, SetupTime) ->
    {Name, Host} = split_node(Node, LongOrShortNames),
    ok = py_dist_port:name_unlistened(MyNode),
    Timer = dist_util:start_timer(SetupTime),
    NodeBin = atom_to_binary(Node, utf8),
    %% A node the carrier reaches (over a link or a route) is up where the
    %% routing knows it: no epmd round trip, and behind a route none would
    %% answer.  Should the route go in the meantime, Python refuses the
    %% channel and this attempt fails as a broken TCP connect would.
    {Endpoint, Version} =
        case py_dist_port:reachable(NodeBin) of
            true ->
                {{<<>>, 0}, ?HIGHEST_DIST_VERSION};
            false ->
                {Ip, Port, V} = resolve(Node, Name, Host),
                {{list_to_binary(inet:ntoa(Ip)), Port}, V}
        end,
    dist_util:reset_timer(Timer),
    Ctrl = py_dist_ctrl:start_outbound(),
    true = py_dist_ctrl:call(Ctrl, {supervisor, self()}),
    {Chan, PortRef} = py_dist_ctrl:call(Ctrl, channel),
    %% the cookie dist_util will use with Node: the link to it, if one is
    %% dialled for this connection, proves the same one
    Connect = {connect, Chan, NodeBin, element(1, Endpoint), element(2, Endpoint),
               py_dist_port:cookie(Node)},
    true = erlang:port_command(PortRef, py_dist_packet:ctrl(Connect)),
    HSData = hs_data(Ctrl),
    dist_util:handshake_we_started(
      HSData#hs_data{kernel_pid = Kernel,
                     other_node = Node,
                     this_node = MyNode,
                     timer = Timer,
                     this_flags = 0,
                     other_version = Version,
                     request_type = Type}).

%% Where does Node listen?  The epmd module may answer the whole question
%% (address_please/3 with a port) or only the address, as stock epmd does.
resolve(Node, Name, Host) ->
    ErlEpmd = epmd_module(),
    case epmd_call(ErlEpmd, address_please, [Name, Host, ?FAMILY]) of
        {ok, Ip, Port, Version} ->
            {Ip, Port, Version};
        {ok, Ip} ->
            case ErlEpmd:port_please(Name, Ip) of
                {port, Port, Version} -> {Ip, Port, Version};
                _ -> ?shutdown2(Node, no_port)
            end;
        _ ->
            ?shutdown2(Node, no_address)
    end.

%% The epmd module, as net_kernel has it; with -no_epmd, which tells the
%% runtime that distribution needs no epmd at all (and leaves erl_epmd
%% unstarted), the overlay's own answers, as with -epmd_module py_dist_epmd.
epmd_module() ->
    case init:get_argument(no_epmd) of
        {ok, _} -> py_dist_epmd;
        error -> net_kernel:epmd_module()
    end.

epmd_call(Mod, Fun, Args) ->
    case erlang:function_exported(Mod, Fun, length(Args)) of
        true -> apply(Mod, Fun, Args);
        false -> apply(erl_epmd, Fun, Args)
    end.

close(_Listen) ->
    ok.

%% Can we reach Node?  As stock inet_tcp_dist asks: the epmd module, which
%% may know hosts that DNS does not; or the carrier itself, when a link or
%% route already reaches Node (do_setup/6 then needs no epmd either).
select(Node) ->
    case split_host(Node) of
        {ok, Name, Host} ->
            py_dist_port:reachable(atom_to_binary(Node, utf8)) orelse
                case epmd_call(epmd_module(), address_please,
                               [Name, Host, ?FAMILY]) of
                    {ok, _} -> true;
                    {ok, _, _, _} -> true;
                    _ -> false
                end;
        error ->
            false
    end.

is_node_name(Node) when is_atom(Node) ->
    split_host(Node) =/= error;
is_node_name(_) ->
    false.

%% Socket options, net_kernel:setopts/2 and getopts/2: the distribution's
%% sockets are ZeroMQ's, in the port program, so of inet's options only
%% `nodelay' means something, and is kept and reported (for `new'
%% connections net_kernel keeps it in the kernel's
%% inet_dist_connect_options).  py_dist never holds data back for Nagle:
%% the controller hands over what erts has at once, and ZeroMQ sets
%% TCP_NODELAY on its sockets, so `{nodelay, false}' is taken but changes
%% nothing.  Any other option: {error, enotsup}.
setopts(_Listen, Opts) ->
    case socket_opts(Opts) of
        {ok, _} -> ok;
        {error, _} = Error -> Error
    end.

getopts(_Listen, Opts) ->
    socket_getopts(Opts, socket_opt(nodelay, true)).

%% @private What getopts answers, nodelay being NoDelay.
-spec socket_getopts(term(), boolean()) -> {ok, [{nodelay, boolean()}]} | {error, enotsup}.
socket_getopts(Opts, NoDelay) when is_list(Opts) ->
    case lists:all(fun(Opt) -> Opt =:= nodelay end, Opts) of
        true -> {ok, [{nodelay, NoDelay} || _ <- Opts]};
        false -> {error, enotsup}
    end;
socket_getopts(_Opts, _NoDelay) ->
    {error, enotsup}.

%% @private The options py_dist takes (see setopts/2), or enotsup.
-spec socket_opts(term()) -> {ok, #{nodelay => boolean()}} | {error, enotsup}.
socket_opts(Opts) when is_list(Opts) ->
    lists:foldl(fun({nodelay, V}, {ok, Acc}) when is_boolean(V) -> {ok, Acc#{nodelay => V}};
                   (_, _) -> {error, enotsup}
                end, {ok, #{}}, Opts);
socket_opts(_) ->
    {error, enotsup}.

%% @private An option's value for new connections, as net_kernel keeps
%% it (kernel's inet_dist_connect_options), else Default.
-spec socket_opt(nodelay, boolean()) -> boolean().
socket_opt(nodelay, Default) ->
    case application:get_env(kernel, inet_dist_connect_options) of
        {ok, Opts} when is_list(Opts) ->
            case lists:keyfind(nodelay, 1, Opts) of
                {nodelay, V} when is_boolean(V) -> V;
                _ -> Default
            end;
        _ ->
            Default
    end.

%%% Handshake data

hs_data(Ctrl) ->
    {Chan, Port} = py_dist_ctrl:call(Ctrl, channel),
    #hs_data{socket = Ctrl,
             f_send = fun(_Ctrl, Packet) -> send_packet(Port, Chan, Packet) end,
             f_recv = fun(C, _Len, Timeout) ->
                              py_dist_ctrl:call(C, {recv, Timeout})
                      end,
             f_setopts_pre_nodeup = fun(_) -> ok end,
             f_setopts_post_nodeup = fun(_) -> ok end,
             f_getll = fun(C) -> {ok, C} end,
             f_address = fun(_C, Node) -> net_address(Node) end,
             f_handshake_complete =
                 fun(C, Node, DHandle) ->
                         py_dist_ctrl:call(C, {handshake_complete, Node, DHandle})
                 end,
             mf_tick = fun(C) -> C ! dist_tick end,
             %% undefined: dist_util counts with dist_get_stat/1, i.e. the
             %% packets put and got, so ticks measure the whole path.
             mf_getstat = undefined,
             mf_setopts = fun(C, Opts) -> py_dist_ctrl:call(C, {setopts, Opts}) end,
             mf_getopts = fun(C, Opts) -> py_dist_ctrl:call(C, {getopts, Opts}) end,
             %% The header atom cache needs every packet of the connection
             %% in order.  Without it Erlang's order is per pair of sender
             %% and receiver, which lets py_dist schedule per sender: one
             %% process's small message overtakes another's long one.
             reject_flags = dist_util:strict_order_flags()}.

send_packet(Port, Chan, Packet) ->
    Size = iolist_size(Packet),
    try erlang:port_command(Port, py_dist_packet:data(Chan, [{Size, Packet}])) of
        true -> ok
    catch
        error:badarg -> {error, closed}
    end.

net_address(Node) ->
    case split_host(Node) of
        {ok, _Name, Host} ->
            #net_address{address = undefined, host = Host,
                         protocol = ?PROTOCOL, family = ?FAMILY};
        error ->
            ?shutdown(no_node)
    end.

%%% Node names

split_host(Node) ->
    case string:split(atom_to_list(Node), "@") of
        [Name, Host] when Name =/= [], Host =/= [] ->
            case lists:member($@, Host) of
                true -> error;
                false -> {ok, Name, Host}
            end;
        _ ->
            error
    end.

split_node(Node, LongOrShortNames) ->
    case split_host(Node) of
        {ok, Name, Host} ->
            check_host(Node, Host, LongOrShortNames),
            {Name, Host};
        error ->
            ?LOG_ERROR("** Nodename ~p illegal **", [Node]),
            ?shutdown(Node)
    end.

check_host(Node, Host, longnames) ->
    case {lists:member($., Host), inet:parse_address(Host)} of
        {false, {error, _}} ->
            ?LOG_ERROR("** System running to use fully qualified hostnames **~n"
                       "** Hostname ~ts is illegal **", [Host]),
            ?shutdown(Node);
        _ ->
            ok
    end;
check_host(Node, Host, shortnames) ->
    case lists:member($., Host) andalso inet:parse_address(Host) =:= {error, einval} of
        true ->
            ?LOG_ERROR("** System NOT running to use fully qualified hostnames **~n"
                       "** Hostname ~ts is illegal **", [Host]),
            ?shutdown(Node);
        false ->
            ok
    end.
