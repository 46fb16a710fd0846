%% @doc Lanes per process: py_dist:set_lane/1.
%%
%% A process that sets a lane has its ordinary message sends (`!',
%% erlang:send/2, gen_server:cast/2) to other nodes carried on that lane:
%% the port program finds them among the packets the controller tags with
%% their sender (a flow) and sends each as a lane message, which the far
%% port program hands to erts on its connection with this node.  Signals
%% (links, monitors, exits) and messages erts cut into fragments stay on
%% the connection (pydist.core.process_lanes says why).
%%
%% The caller writes its own setting to the port, so that its next send,
%% which reaches the port later through its connection's controller, is
%% already taken by the lane.  This process keeps the table (in a protected
%% ETS table: the port owner reads it to tell a restarted port program) and
%% clears the entry of a process that exits.
-module(py_dist_process_lanes).
-behaviour(gen_server).

-include("py_dist.hrl").
-include_lib("kernel/include/logger.hrl").

-export([start_link/0, set/2, get/1, settings/0, wire/1]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).
-export_type([lane/0]).

-type lane() :: reliable | unordered | unreliable | realtime
              | {realtime, DeadlineMs :: pos_integer()}.

-define(TABLE, py_dist_process_lanes).
%% The port program keeps as many (pydist.core.process_lanes.MAX_PROCESSES).
-define(MAX_PROCESSES, 65536).

%%% API

-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() ->
    gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

%% @doc Put Pid's message sends on Lane (`reliable': back on its
%% connections); returns the lane it had.  badarg for no lane; on a node
%% that does not run py_dist, nothing changes and every send stays reliable.
-spec set(pid(), lane()) -> lane().
set(Pid, Lane) ->
    {Num, DeadlineMs} = wire(Lane),
    case whereis(?MODULE) of
        undefined ->
            reliable;
        Server ->
            case gen_server:call(Server, {set, Pid, Lane}) of
                {ok, Old, Flow} ->
                    tell({set_lane, Flow, Num, DeadlineMs}),
                    Old;
                {error, Why} ->
                    erlang:error(Why, [Pid, Lane])
            end
    end.

%% @doc The lane Pid's message sends take.
-spec get(pid()) -> lane().
get(Pid) ->
    try ets:lookup(?TABLE, Pid) of
        [{Pid, _Flow, Lane, _MRef}] -> Lane;
        [] -> reliable
    catch error:badarg -> reliable
    end.

%% @doc Every process's lane, as control messages for the port program:
%% what a restarted one is told.
-spec settings() -> [{set_lane, py_dist_packet:flow(), 1..3, non_neg_integer()}].
settings() ->
    try ets:tab2list(?TABLE) of
        Rows -> [setting(Flow, Lane) || {_Pid, Flow, Lane, _MRef} <- Rows]
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

%%% gen_server

init([]) ->
    ?TABLE = ets:new(?TABLE, [named_table, protected, set, {read_concurrency, true}]),
    {ok, #{}}.

handle_call({set, Pid, Lane}, _From, S) ->
    case flow(Pid) of
        undefined ->
            {reply, {error, badarg}, S};
        Flow ->
            {reply, put_lane(Pid, Flow, Lane), S}
    end;
handle_call(Request, _From, S) ->
    ?LOG_WARNING("py_dist: process lanes got an unexpected call: ~0P", [Request, 10]),
    {reply, {error, unknown_call}, S}.

handle_cast(Msg, S) ->
    ?LOG_WARNING("py_dist: process lanes got an unexpected cast: ~0P", [Msg, 10]),
    {noreply, S}.

handle_info({'DOWN', MRef, process, Pid, _Reason}, S) ->
    case ets:lookup(?TABLE, Pid) of
        [{Pid, Flow, _Lane, MRef}] ->
            true = ets:delete(?TABLE, Pid),
            tell({set_lane, Flow, 0, 0});
        _ ->
            ok
    end,
    {noreply, S};
handle_info(Other, S) ->
    ?LOG_WARNING("py_dist: process lanes got an unexpected message: ~0P", [Other, 10]),
    {noreply, S}.

%%% Internal

put_lane(Pid, Flow, Lane) ->
    case {ets:lookup(?TABLE, Pid), Lane} of
        {[], reliable} ->
            {ok, reliable, Flow};
        {[{Pid, Flow, Old, MRef}], reliable} ->
            erlang:demonitor(MRef, [flush]),
            true = ets:delete(?TABLE, Pid),
            {ok, Old, Flow};
        {[{Pid, Flow, Old, MRef}], _} ->
            true = ets:insert(?TABLE, {Pid, Flow, Lane, MRef}),
            {ok, Old, Flow};
        {[], _} ->
            case ets:info(?TABLE, size) < ?MAX_PROCESSES of
                true ->
                    MRef = erlang:monitor(process, Pid),
                    true = ets:insert(?TABLE, {Pid, Flow, Lane, MRef}),
                    {ok, reliable, Flow};
                false ->
                    {error, system_limit}
            end
    end.

flow(Pid) when is_pid(Pid), node(Pid) =:= node() ->
    case py_dist_packet:pid_flow(Pid) of
        {flow, Flow} -> Flow;
        barrier -> undefined
    end;
flow(_) ->
    undefined.

%% To the port program, unless its owner is not running: a new owner tells
%% its port program the whole table (settings/0).
tell(Setting) ->
    try py_dist_port:command(Setting)
    catch exit:{noproc, _} -> ok
    end.

setting(Flow, Lane) ->
    {Num, DeadlineMs} = wire(Lane),
    {set_lane, Flow, Num, DeadlineMs}.
