%% @doc The neighbours this node keeps links to, and its static routes.
%%
%% Neighbours come from the `neighbours' key and from py_dist:link/1,2 at
%% run time.  The port program dials them and reports each link up or down;
%% this process finds a down neighbour's endpoint again (through the epmd
%% module, unless the neighbour was given with one) and asks for the link
%% again, so a neighbour that restarts, even on another port, is linked
%% again.  Static routes live here too, so that both survive a restart of
%% the port program.
%%
%% The first dial after a link went down comes within `neighbour_retry'
%% milliseconds; each dial that fails doubles the wait before the next, up
%% to `neighbour_retry_max' (back-off, as any client of a service that may
%% be gone for long).  Without it a neighbour that is gone for good costs
%% each of its neighbours a dial, an epmd lookup and a connect timeout
%% every second, forever, and a gateway that restarts is met by every
%% device that keeps it at the same moments.  A link that was up and went
%% down starts again from the first wait: that is a restart to catch
%% quickly, not a neighbour known to be gone.
-module(py_dist_neighbours).
-behaviour(gen_server).

-include_lib("kernel/include/logger.hrl").

-export([start_link/0, link/2, unlink/1, add_route/2, del_route/1,
         static_routes/0, neighbours/0, given_endpoint/1, port_restarted/0, link_state/2,
         give_up/0]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).
-export([retry_wait/3]).
-export_type([link_opts/0]).

-type link_opts() :: #{cost => pos_integer(),
                       endpoint => {inet:ip_address() | string(), inet:port_number()}}.

-record(neighbour, {cost :: pos_integer(),
                    endpoint :: {string(), inet:port_number()} | undefined,
                    state = down :: down | dialling | up,
                    %% dials failed since the link was last up
                    failures = 0 :: non_neg_integer(),
                    %% monotonic ms before which it is not dialled again
                    %% (negative numbers too: no default but "at once")
                    not_before = at_once :: at_once | integer()}).

-record(state, {neighbours = #{} :: #{node() => #neighbour{}},
                routes = #{} :: #{node() => node()},
                timer :: reference() | undefined}).

-define(MAX_COST, 16#FFFFFF).

%%% API

-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() ->
    gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

%% @doc Keep a link to Node, now and whenever it comes back.
-spec link(node(), link_opts()) -> ok | {error, term()}.
link(Node, Opts) ->
    gen_server:call(?MODULE, {link, Node, Opts}).

%% @doc Stop keeping a link to Node, and close the one there is.
-spec unlink(node()) -> ok.
unlink(Node) ->
    gen_server:call(?MODULE, {unlink, Node}).

-spec add_route(node(), node()) -> ok.
add_route(Dest, Via) ->
    gen_server:call(?MODULE, {add_route, Dest, Via}).

-spec del_route(node()) -> ok | {error, not_found}.
del_route(Dest) ->
    gen_server:call(?MODULE, {del_route, Dest}).

-spec static_routes() -> [{node(), node()}].
static_routes() ->
    gen_server:call(?MODULE, static_routes).

%% @doc The neighbours kept, and the state of the link to each.
-spec neighbours() -> [{node(), down | dialling | up}].
neighbours() ->
    gen_server:call(?MODULE, neighbours).

%% @doc Where a neighbour given with an endpoint is (`"name@host"'), for
%% py_dist_epmd: a node that joins through a seed can reach the seed before
%% the link state has told it anything (a remote shell connects at once).
%% `error' for any other node, and when this process cannot answer (it is
%% the caller: it looks up the endpoints of neighbours given without one).
-spec given_endpoint(string()) -> {ok, string(), inet:port_number()} | error.
given_endpoint(Node) ->
    try gen_server:call(?MODULE, {given_endpoint, Node})
    catch exit:_ -> error
    end.

%% @doc The port program started again, knowing nothing: tell it all.
-spec port_restarted() -> ok.
port_restarted() ->
    gen_server:cast(?MODULE, port_restarted).

%% @doc This node's name is taken in the cluster: keep no neighbours.
-spec give_up() -> ok.
give_up() ->
    gen_server:cast(?MODULE, give_up).

%% @doc From the port owner: the link to a kept neighbour is up or down.
-spec link_state(binary(), up | down) -> ok.
link_state(Peer, State) ->
    gen_server:cast(?MODULE, {link_state, Peer, State}).

%%% gen_server

init([]) ->
    Neighbours = lists:foldl(fun configured/2, #{}, py_dist_config:get(neighbours)),
    {ok, tick(#state{neighbours = Neighbours}, 0)}.

configured({Node, Opts}, Acc) when is_atom(Node), is_map(Opts) ->
    case neighbour(Opts) of
        {ok, N} -> Acc#{Node => N};
        {error, Reason} -> erlang:error({bad_py_dist_config, neighbours, {Node, Reason}})
    end;
configured(Node, Acc) when is_atom(Node) ->
    configured({Node, #{}}, Acc);
configured(Other, _Acc) ->
    erlang:error({bad_py_dist_config, neighbours, Other}).

handle_call({link, Node, Opts}, _From, #state{neighbours = Ns} = S) when is_atom(Node) ->
    case neighbour(Opts) of
        {ok, N} ->
            %% asked for now: dialled now, whatever failed before
            Old = maps:get(Node, Ns, N),
            S1 = S#state{neighbours = Ns#{Node => N#neighbour{state = Old#neighbour.state}}},
            {reply, ok, dial(Node, S1)};
        {error, _} = Error ->
            {reply, Error, S}
    end;
handle_call({unlink, Node}, _From, #state{neighbours = Ns} = S) ->
    py_dist_port:command({unlink, atom_to_binary(Node)}),
    {reply, ok, S#state{neighbours = maps:remove(Node, Ns)}};
handle_call({add_route, Dest, Via}, _From, #state{routes = Routes} = S) ->
    py_dist_port:command({add_route, atom_to_binary(Dest), atom_to_binary(Via)}),
    {reply, ok, S#state{routes = Routes#{Dest => Via}}};
handle_call({del_route, Dest}, _From, #state{routes = Routes} = S) ->
    case maps:take(Dest, Routes) of
        {_, Rest} ->
            py_dist_port:command({del_route, atom_to_binary(Dest)}),
            {reply, ok, S#state{routes = Rest}};
        error ->
            {reply, {error, not_found}, S}
    end;
handle_call(static_routes, _From, S) ->
    {reply, lists:sort(maps:to_list(S#state.routes)), S};
handle_call({given_endpoint, Name}, _From, #state{neighbours = Ns} = S) ->
    Reply = case [E || {Node, #neighbour{endpoint = {_, _} = E}} <- maps:to_list(Ns),
                       atom_to_list(Node) =:= Name] of
                [{Host, Port}] -> {ok, Host, Port};
                [] -> error
            end,
    {reply, Reply, S};
handle_call(neighbours, _From, S) ->
    {reply, lists:sort([{Node, N#neighbour.state}
                        || {Node, N} <- maps:to_list(S#state.neighbours)]), S}.

handle_cast(give_up, S) ->
    {noreply, S#state{neighbours = #{}}};
handle_cast(port_restarted, #state{neighbours = Ns, routes = Routes} = S) ->
    _ = [py_dist_port:command({add_route, atom_to_binary(D), atom_to_binary(V)})
         || {D, V} <- maps:to_list(Routes)],
    %% the port program failed, not the neighbours: no back-off
    Down = maps:map(fun(_, N) -> (cleared(N))#neighbour{state = down} end, Ns),
    {noreply, retry(S#state{neighbours = Down})};
handle_cast({link_state, Peer, State}, #state{neighbours = Ns} = S) ->
    %% only kept neighbours are reported, and their atoms exist already
    Node = try binary_to_existing_atom(Peer) catch error:badarg -> undefined end,
    case Ns of
        #{Node := N} ->
            {noreply, S#state{neighbours = Ns#{Node := reported(State, N)}}};
        #{} ->
            {noreply, S}
    end;
handle_cast(_Msg, S) ->
    {noreply, S}.

handle_info(retry, S) ->
    %% soon again while the node is not yet distributed: the first links
    %% should not wait a whole retry period after boot
    %% jittered: two nodes that keep each other as neighbours and start
    %% together should not keep dialling each other at the same moments
    Delay = case node() of
                nonode@nohost -> 50;
                _ -> jitter(py_dist_config:get(neighbour_retry))
            end,
    {noreply, tick(retry(S#state{timer = undefined}), Delay)};
handle_info(_Other, S) ->
    {noreply, S}.

%%% Internal

neighbour(Opts) when is_map(Opts) ->
    Cost = maps:get(cost, Opts, py_dist_config:get(link_cost)),
    case {Cost, maps:get(endpoint, Opts, undefined)} of
        {C, _} when not is_integer(C); C < 1; C > ?MAX_COST ->
            {error, {bad_cost, C}};
        {C, undefined} ->
            {ok, #neighbour{cost = C}};
        {C, {Host, Port}} when is_integer(Port), Port > 0, Port < 65536 ->
            case host(Host) of
                {ok, H} -> {ok, #neighbour{cost = C, endpoint = {H, Port}}};
                error -> {error, {bad_endpoint, {Host, Port}}}
            end;
        {_, Other} ->
            {error, {bad_endpoint, Other}}
    end;
neighbour(Other) ->
    {error, {bad_options, Other}}.

host(Host) when is_tuple(Host) ->
    case inet:ntoa(Host) of
        {error, _} -> error;
        Text -> {ok, Text}
    end;
host(Host) when is_list(Host), Host =/= [] ->
    {ok, Host};
host(_) ->
    error.

reported(up, N) ->
    (cleared(N))#neighbour{state = up};
reported(down, #neighbour{state = up} = N) ->
    (cleared(N))#neighbour{state = down};
reported(down, N) ->
    failed(N#neighbour{state = down}).

%% No failed dial counted: the next one comes at the first wait.
cleared(N) ->
    N#neighbour{failures = 0, not_before = at_once}.

%% A dial that failed: the connect timeout ended it.
failed(#neighbour{failures = F} = N) ->
    Wait = retry_wait(F + 1, py_dist_config:get(neighbour_retry),
                      py_dist_config:get(neighbour_retry_max)),
    N#neighbour{failures = F + 1,
                not_before = erlang:monotonic_time(millisecond) + Wait}.

%% @doc Milliseconds to wait before the next dial after `Failures' failed
%% ones: `Retry' after the first, doubled after each, at most `Max' (and
%% never less than `Retry').
-spec retry_wait(pos_integer(), pos_integer(), pos_integer()) -> pos_integer().
retry_wait(Failures, Retry, Max) ->
    max(Retry, min(Max, Retry bsl min(Failures - 1, 32))).

jitter(Millis) ->
    Millis * 3 div 4 + rand:uniform(max(1, Millis div 2)).

tick(S, Delay) ->
    S#state{timer = erlang:send_after(Delay, self(), retry)}.

%% Dial every neighbour whose link is down and whose wait is over; a dial
%% that does not come up ends in a link_state down report from the port
%% program's connect timeout.
retry(#state{neighbours = Ns} = S) ->
    Now = erlang:monotonic_time(millisecond),
    lists:foldl(fun dial/2, S, [Node || {Node, #neighbour{state = down, not_before = T}}
                                            <- maps:to_list(Ns),
                                        T =:= at_once orelse T =< Now]).

dial(Node, #state{neighbours = Ns} = S) ->
    #{Node := N} = Ns,
    %% not yet distributed: the port program has no name to say in a HELLO
    case N#neighbour.state =:= up orelse node() =:= nonode@nohost orelse Node =:= node() of
        true ->
            S;
        false ->
            case endpoint(Node, N) of
                {ok, Host, Port} ->
                    py_dist_port:command({link, atom_to_binary(Node), list_to_binary(Host),
                                          Port, N#neighbour.cost,
                                          py_dist_port:cookie(Node)}),
                    S#state{neighbours = Ns#{Node := N#neighbour{state = dialling}}};
                {error, Reason} ->
                    %% not a failed dial: a lookup costs nothing on the
                    %% network, and a node that is not up yet (a cluster
                    %% starting in any order) is linked as soon as it is
                    ?LOG_DEBUG("py_dist: neighbour ~p not found: ~0p", [Node, Reason]),
                    S
            end
    end.

endpoint(_Node, #neighbour{endpoint = {Host, Port}}) ->
    {ok, Host, Port};
endpoint(Node, #neighbour{endpoint = undefined}) ->
    case py_dist:endpoint(Node) of
        {ok, Ip, Port} -> {ok, inet:ntoa(Ip), Port};
        {error, _} = Error -> Error
    end.
