%% @doc What a process asks of the carrier for its own sends:
%% py_dist:set_lane/1 and py_dist:loss_mode/1.
%%
%% A lane: the process's ordinary message sends (`!', erlang:send/2,
%% gen_server:cast/2) to other nodes go on that lane.  The port program
%% finds them among the packets the controller tags with their sender (a
%% flow) and sends each as a lane message, which the far port program hands
%% to erts on its connection with this node.  Signals (links, monitors,
%% exits) and messages erts cut into fragments stay on the connection
%% (pydist.core.process_opts says why).
%%
%% A loss mode: `notify' asks that a message of the process that the
%% carrier cannot deliver (a gap that does not fill, see README "Delivery
%% semantics") be given up and the process told,
%% `{py_dist_lost, Node, Count}', while the connection stays up; the
%% default, `nodedown', takes the connection down as stock distribution
%% does when its TCP connection breaks.
%%
%% The caller writes its own setting to the port, so that its next send,
%% which reaches the port later through its connection's controller, is
%% already taken with it.  This process keeps the table (in a protected
%% ETS table: the port owner reads it to tell a restarted port program) and
%% clears the entry of a process that exits.
-module(py_dist_process_opts).
-behaviour(gen_server).

-include("py_dist.hrl").
-include_lib("kernel/include/logger.hrl").

-export([start_link/0, set_lane/2, lane/1, set_loss_mode/2, loss_mode/1, settings/0,
         wire/1, lost/3]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).
-export_type([lane/0, loss_mode/0]).

-type lane() :: reliable | unordered | unreliable | realtime
              | {realtime, DeadlineMs :: pos_integer()}.
-type loss_mode() :: nodedown | notify.

-define(TABLE, py_dist_process_opts).
%% The port program keeps as many (pydist.core.process_opts.MAX_PROCESSES).
-define(MAX_PROCESSES, 65536).
-define(DEFAULTS, {reliable, nodedown}).

%%% API

-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() ->
    gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

%% @doc Put Pid's message sends on Lane (`reliable': back on its
%% connections); returns the lane it had.  badarg for no lane; on a node
%% that does not run py_dist, nothing changes and every send stays reliable.
-spec set_lane(pid(), lane()) -> lane().
set_lane(Pid, Lane) ->
    {Num, DeadlineMs} = wire(Lane),
    {Old, _} = set(Pid, lane, Lane, fun(Flow) -> {set_lane, Flow, Num, DeadlineMs} end),
    Old.

%% @doc The lane Pid's message sends take.
-spec lane(pid()) -> lane().
lane(Pid) ->
    element(1, opts(Pid)).

%% @doc Set what a loss of Pid's messages does; returns the mode it had.
%% badarg for no mode; on a node that does not run py_dist, `nodedown'.
-spec set_loss_mode(pid(), loss_mode()) -> loss_mode().
set_loss_mode(Pid, Mode) when Mode =:= nodedown; Mode =:= notify ->
    {_, Old} = set(Pid, loss_mode, Mode, fun(Flow) -> {loss_mode, Flow, notify(Mode)} end),
    Old;
set_loss_mode(Pid, Mode) ->
    erlang:error(badarg, [Pid, Mode]).

%% @doc What a loss of Pid's messages does.
-spec loss_mode(pid()) -> loss_mode().
loss_mode(Pid) ->
    element(2, opts(Pid)).

%% @doc Every process's settings, as control messages for the port
%% program: what a restarted one is told.
-spec settings() -> [tuple()].
settings() ->
    try ets:tab2list(?TABLE) of
        Rows -> lists:append([settings(Flow, Opts) || {_Pid, Flow, Opts, _MRef} <- Rows])
    catch error:badarg -> []
    end.

%% @doc A lane as the port program numbers it, with its deadline in ms
%% (0: the configured `realtime_deadline'); badarg for no lane.
-spec wire(lane()) -> {0..3, non_neg_integer()}.
wire(reliable) -> {0, 0};
wire(unordered) -> {?PY_DIST_LANE_UNORDERED, 0};
wire(unreliable) -> {?PY_DIST_LANE_UNRELIABLE, 0};
wire(realtime) -> {?PY_DIST_LANE_REALTIME, 0};
wire({realtime, Ms}) when is_integer(Ms), Ms > 0, Ms < 1 bsl 32 -> {?PY_DIST_LANE_REALTIME, Ms};
wire(Lane) -> erlang:error(badarg, [Lane]).

%% @doc From the port owner: Count messages of the process of Flow to Peer
%% were given up.  Told to the process only if it still asks for it.
-spec lost(binary(), py_dist_packet:flow(), pos_integer()) -> ok.
lost(Peer, Flow, Count) ->
    case py_dist_packet:flow_pid(Flow) of
        undefined ->
            ok;
        Pid ->
            case loss_mode(Pid) of
                notify ->
                    %% the node's atom exists: it was connected
                    Node = try binary_to_existing_atom(Peer) catch error:badarg -> Peer end,
                    Pid ! {py_dist_lost, Node, Count},
                    ok;
                nodedown ->
                    ok
            end
    end.

%%% gen_server

init([]) ->
    ?TABLE = ets:new(?TABLE, [named_table, protected, set, {read_concurrency, true}]),
    {ok, #{}}.

handle_call({set, Pid, Key, Value}, _From, S) ->
    case flow(Pid) of
        undefined -> {reply, {error, badarg}, S};
        Flow -> {reply, put_opt(Pid, Flow, Key, Value), S}
    end;
handle_call(Request, _From, S) ->
    ?LOG_WARNING("py_dist: process options got an unexpected call: ~0P", [Request, 10]),
    {reply, {error, unknown_call}, S}.

handle_cast(Msg, S) ->
    ?LOG_WARNING("py_dist: process options got an unexpected cast: ~0P", [Msg, 10]),
    {noreply, S}.

handle_info({'DOWN', MRef, process, Pid, _Reason}, S) ->
    case ets:lookup(?TABLE, Pid) of
        [{Pid, Flow, _Opts, MRef}] ->
            true = ets:delete(?TABLE, Pid),
            _ = [tell(Setting) || Setting <- settings(Flow, ?DEFAULTS)],
            ok;
        _ ->
            ok
    end,
    {noreply, S};
handle_info(Other, S) ->
    ?LOG_WARNING("py_dist: process options got an unexpected message: ~0P", [Other, 10]),
    {noreply, S}.

%%% Internal

%% Record one option of Pid, then write it to the port from the caller.
set(Pid, Key, Value, Setting) ->
    case whereis(?MODULE) of
        undefined ->
            ?DEFAULTS;
        Server ->
            case gen_server:call(Server, {set, Pid, Key, Value}) of
                {ok, Old, Flow} ->
                    tell(Setting(Flow)),
                    Old;
                {error, Why} ->
                    erlang:error(Why, [Pid, Value])
            end
    end.

opts(Pid) ->
    try ets:lookup(?TABLE, Pid) of
        [{Pid, _Flow, Opts, _MRef}] -> Opts;
        [] -> ?DEFAULTS
    catch error:badarg -> ?DEFAULTS
    end.

put_opt(Pid, Flow, Key, Value) ->
    case ets:lookup(?TABLE, Pid) of
        [{Pid, Flow, Old, MRef}] ->
            case with(Key, Value, Old) of
                ?DEFAULTS ->
                    erlang:demonitor(MRef, [flush]),
                    true = ets:delete(?TABLE, Pid);
                New ->
                    true = ets:insert(?TABLE, {Pid, Flow, New, MRef})
            end,
            {ok, Old, Flow};
        [] ->
            case with(Key, Value, ?DEFAULTS) of
                ?DEFAULTS ->
                    {ok, ?DEFAULTS, Flow};
                New ->
                    case ets:info(?TABLE, size) < ?MAX_PROCESSES of
                        true ->
                            MRef = erlang:monitor(process, Pid),
                            true = ets:insert(?TABLE, {Pid, Flow, New, MRef}),
                            {ok, ?DEFAULTS, Flow};
                        false ->
                            {error, system_limit}
                    end
            end
    end.

with(lane, Lane, {_, Mode}) -> {Lane, Mode};
with(loss_mode, Mode, {Lane, _}) -> {Lane, Mode}.

flow(Pid) when is_pid(Pid), node(Pid) =:= node() ->
    case py_dist_packet:pid_flow(Pid) of
        {flow, Flow} -> Flow;
        barrier -> undefined
    end;
flow(_) ->
    undefined.

settings(Flow, {Lane, Mode}) ->
    {Num, DeadlineMs} = wire(Lane),
    [{set_lane, Flow, Num, DeadlineMs}, {loss_mode, Flow, notify(Mode)}].

%% A loss mode as the port program takes it.
notify(notify) -> 1;
notify(nodedown) -> 0.

%% To the port program, unless its owner is not running: a new owner tells
%% its port program the whole table (settings/0).
tell(Setting) ->
    try py_dist_port:command(Setting)
    catch exit:{noproc, _} -> ok
    end.
