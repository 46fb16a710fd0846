%% @doc Who wants to hear of connections that went down with frames lost.
%%
%% A process that calls py_dist:monitor_losses/0 gets, for every connection
%% of this node that the carrier closes because frames may have been lost
%% (a gap that did not fill, no path left, a window overrun, a peer gone):
%%
%%   {py_dist_loss, Node, Reason, #{unacked => N}}
%%
%% where Reason is the `{py_dist, Reason}' of the nodedown that follows and
%% N the frames this node sent that the far end never acknowledged.  It
%% comes before the nodedown, so a process can tell a loss from an orderly
%% disconnect without guessing.
-module(py_dist_losses).
-behaviour(gen_server).

-export([start_link/0, monitor/1, demonitor/1, report/3]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).

%%% API

-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() ->
    gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

-spec monitor(pid()) -> ok.
monitor(Pid) ->
    gen_server:call(?MODULE, {monitor, Pid}).

-spec demonitor(pid()) -> ok.
demonitor(Pid) ->
    gen_server:call(?MODULE, {demonitor, Pid}).

%% @doc From the port owner: a connection to Peer went down with a loss.
-spec report(binary(), atom(), non_neg_integer()) -> ok.
report(Peer, Reason, Unacked) ->
    gen_server:cast(?MODULE, {report, Peer, Reason, Unacked}).

%%% gen_server

init([]) ->
    {ok, #{}}.

handle_call({monitor, Pid}, _From, Watchers) ->
    case Watchers of
        #{Pid := _} -> {reply, ok, Watchers};
        #{} -> {reply, ok, Watchers#{Pid => erlang:monitor(process, Pid)}}
    end;
handle_call({demonitor, Pid}, _From, Watchers) ->
    case maps:take(Pid, Watchers) of
        {Ref, Rest} ->
            erlang:demonitor(Ref, [flush]),
            {reply, ok, Rest};
        error ->
            {reply, ok, Watchers}
    end.

handle_cast({report, Peer, Reason, Unacked}, Watchers) ->
    %% the node's atom exists: it was connected
    Node = try binary_to_existing_atom(Peer) catch error:badarg -> Peer end,
    Msg = {py_dist_loss, Node, Reason, #{unacked => Unacked}},
    _ = [Pid ! Msg || Pid <- maps:keys(Watchers)],
    {noreply, Watchers};
handle_cast(_Msg, Watchers) ->
    {noreply, Watchers}.

handle_info({'DOWN', _Ref, process, Pid, _Reason}, Watchers) ->
    {noreply, maps:remove(Pid, Watchers)};
handle_info(_Other, Watchers) ->
    {noreply, Watchers}.
