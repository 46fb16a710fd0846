%% @doc An `-epmd_module' that needs no epmd daemon: it answers from the
%% overlay's link state.
%%
%% Every node advertises its listener (`Host:Port', the host of its node
%% name) in its link-state packet, so any node the overlay knows can be
%% found by name.  A node joins through a seed: a neighbour given with its
%% endpoint (`-py_dist neighbours "[{'b@h', #{endpoint => {"h", 4370}}}]"'),
%% and listens on a known port itself (`listen_port', or
%% `listen_port_please/2' answers 0: any port).
%%
%%   erl -proto_dist py -start_epmd false -epmd_module py_dist_epmd ...
-module(py_dist_epmd).

-export([start_link/0, register_node/2, register_node/3,
         port_please/2, port_please/3, address_please/3,
         listen_port_please/2, names/0, names/1]).

%% What epmd reports for an OTP 23+ node.
-define(VERSION, 6).

%% No process: the answers come from the port program.
-spec start_link() -> ignore.
start_link() ->
    ignore.

register_node(Name, Port) ->
    register_node(Name, Port, inet).

%% No daemon to register with. The creation tells incarnations of a node
%% name apart in pids and references: any value other than the last one's
%% will do, so a random one.
-spec register_node(atom() | string(), inet:port_number(), atom()) -> {ok, pos_integer()}.
register_node(_Name, _Port, _Family) ->
    {ok, rand:uniform(16#fffffff0) + 3}.

-spec listen_port_please(atom() | string(), string()) -> {ok, inet:port_number()}.
listen_port_please(_Name, _Host) ->
    {ok, py_dist_config:get(listen_port)}.

port_please(Name, Host) ->
    port_please(Name, Host, infinity).

-spec port_please(atom() | string(), inet:ip_address() | string(), timeout()) ->
          {port, inet:port_number(), pos_integer()} | noport.
port_please(Name, Host, _Timeout) ->
    case lookup(Name, Host) of
        {ok, _Ip, Port} -> {port, Port, ?VERSION};
        error -> noport
    end.

-spec address_please(atom() | string(), string(), atom()) ->
          {ok, inet:ip_address(), inet:port_number(), pos_integer()} | {error, term()}.
address_please(Name, Host, _Family) ->
    case lookup(Name, Host) of
        {ok, Ip, Port} -> {ok, Ip, Port, ?VERSION};
        error -> {error, nxdomain}
    end.

names() ->
    {ok, Host} = inet:gethostname(),
    names(Host).

%% The nodes the overlay knows on Host, as epmd would list them.
-spec names(string() | inet:ip_address()) -> {ok, [{string(), inet:port_number()}]}.
names(Host) ->
    HostText = host_text(Host),
    {ok, [{Name, Port} || {NodeName, EHost, Port} <- endpoints(),
                          [Name, H] <- [string:split(NodeName, "@")],
                          H =:= HostText orelse EHost =:= HostText]}.

%%% Internal

lookup(Name, Host) ->
    Node = lists:flatten([to_list(Name), $@, host_text(Host)]),
    case [{EHost, Port} || {N, EHost, Port} <- endpoints(), N =:= Node] of
        [{EHost, Port} | _] ->
            address(EHost, Port);
        [] ->
            %% not in the link state (yet): a neighbour given with its
            %% endpoint is there, as a node joining through its seed
            %% must connect to the seed before the seed said anything
            case py_dist_neighbours:given_endpoint(Node) of
                {ok, SeedHost, Port} -> address(SeedHost, Port);
                error -> error
            end
    end.

address(Host, Port) ->
    case inet:getaddr(Host, inet) of
        {ok, Ip} -> {ok, Ip, Port};
        {error, _} -> error
    end.

%% {NodeName, Host, Port} of every LSP that advertises an endpoint.
endpoints() ->
    case py_dist_port:query(topology) of
        {ok, #{lsdb := Lsdb}} ->
            [{binary_to_list(Origin), binary_to_list(H), binary_to_integer(P)}
             || #{origin := Origin, endpoint := E} <- Lsdb,
                [H, P] <- [binary:split(E, <<":">>, [trim_all])],
                is_port_text(P)];
        _ ->
            []
    end.

is_port_text(P) ->
    try binary_to_integer(P) of
        N -> N > 0 andalso N < 65536
    catch
        error:badarg -> false
    end.

host_text(Host) when is_tuple(Host) -> inet:ntoa(Host);
host_text(Host) when is_atom(Host) -> atom_to_list(Host);
host_text(Host) -> Host.

to_list(A) when is_atom(A) -> atom_to_list(A);
to_list(L) -> L.
