%% @doc Configuration keys of py_dist.
%%
%% One set of keys, read from three places, first match wins:
%%   1. the erl command line: `-py_dist Key Value' (may be repeated);
%%   2. the `py_dist' application environment (sys.config);
%%   3. the defaults below, which work on one machine with no file at all.
%% Python-side keys are handed to the port program as `--set key=value'.
%%
%% This list is the one source of the keys: the port program's own
%% (python_port/pydist/core/config.py) and the README's table are checked
%% against it by tests/core/test_config.py.
-module(py_dist_config).

-compile({no_auto_import, [get/1]}).
-export([get/1, all/0, keys/0, python_command/0, parse/2, advertised/1]).

-type key() :: python | listen_address | listen_port
             | heartbeat_interval | heartbeat_timeout | heartbeat_timeout_max
             | max_batch | max_frame | link_hwm | pipe_size
             | log_level | start_timeout | restart_delay
             | neighbours | neighbour_retry | neighbour_retry_max | link_cost | max_hops
             | flap_half_life | flap_suppress_max
             | max_links | max_channels
             | lsp_lifetime | lsdb_sync_interval | max_nodes
             | window_bytes | window_frames | gap_timeout | ack_every | ack_delay
             | resend_timeout | queue_bytes | flow_bytes | inflight_bytes | ack_bytes
             | node_key | authorized_keys | advertise_endpoint
             | chunk_bytes | realtime_deadline | lane_queue_bytes.
-type kind() :: string | integer | atom | term.

-export_type([key/0]).

%% {Key, Kind, Default, PassedToPython}
-spec keys() -> [{key(), kind(), term(), boolean()}].
keys() ->
    [{python,             string,  default_python, false},
     {listen_address,     string,  "0.0.0.0",      true},
     {listen_port,        integer, 0,              true},
     {heartbeat_interval, integer, 200,            true},
     {heartbeat_timeout,  integer, 600,            true},
     {heartbeat_timeout_max, integer, 3000,        true},
     {max_batch,          integer, 256 * 1024,     false},
     {max_frame,          integer, 64 * 1024 * 1024, true},
     {link_hwm,           integer, 256,            true},
     {pipe_size,          integer, 1024 * 1024,    true},
     {log_level,          atom,    warning,        true},
     {start_timeout,      integer, 15000,          false},
     {restart_delay,      integer, 500,            false},
     {neighbours,         term,    [],             false},
     {neighbour_retry,    integer, 1000,           false},
     %% the longest wait between two dials of a neighbour that keeps failing
     {neighbour_retry_max, integer, 10000,         false},
     {link_cost,          integer, 10,             true},
     %% a link that keeps failing is kept out of the routes: see Damping
     {flap_half_life,     integer, 5000,           true},
     {flap_suppress_max,  integer, 20000,          true},
     {max_hops,           integer, 32,             true},
     {max_links,          integer, 1024,           true},
     {max_channels,       integer, 65536,          true},
     {lsp_lifetime,       integer, 1800000,        true},
     {lsdb_sync_interval, integer, 60000,          true},
     {max_nodes,          integer, 4096,           true},
     {window_bytes,       integer, 32 * 1024 * 1024, true},
     {window_frames,      integer, 4096,           true},
     {gap_timeout,        integer, 2000,           true},
     {ack_every,          integer, 32,             true},
     {ack_delay,          integer, 10,             true},
     {resend_timeout,     integer, 500,            true},
     {queue_bytes,        integer, 32 * 1024 * 1024, true},
     {flow_bytes,         integer, 2 * 1024 * 1024, true},
     {inflight_bytes,     integer, 512 * 1024,     true},
     {ack_bytes,          integer, 128 * 1024,     true},
     %% lanes of py_dist:send/3: the size of the chunks a message is cut
     %% into, the deadline (ms) of `realtime' without one, and the bytes a
     %% link may have waiting before unordered messages are dropped
     {chunk_bytes,        integer, 64 * 1024,      true},
     {realtime_deadline,  integer, 100,            true},
     {lane_queue_bytes,   integer, 16 * 1024 * 1024, true},
     %% where other nodes are told to dial this one: "" (the host of its
     %% name and its listen_port), "none", or "Host:Port" (see advertised/1)
     {advertise_endpoint, string,  "",             false},
     {node_key,           string,  "",             true},
     {authorized_keys,    string,  "",             true}].

%% @doc What `advertise_endpoint' means: `name' (the host of the node's
%% name, and its listen_port: what epmd would say), `none' (no endpoint:
%% a node behind NAT, which nobody can dial, reached through the links it
%% makes), or the `{Host, Port}' to advertise (a port forwarded to it, a
%% public address).  Anything else is refused with the key's name.
-spec advertised(string()) -> name | none | {string(), inet:port_number()}.
advertised("") ->
    name;
advertised("none") ->
    none;
advertised(Text) ->
    case string:split(Text, ":", trailing) of
        [Host, Port] when Host =/= "" ->
            try list_to_integer(Port) of
                P when P > 0, P < 65536 -> {Host, P};
                _ -> erlang:error({bad_py_dist_config, advertise_endpoint, Text})
            catch
                error:badarg -> erlang:error({bad_py_dist_config, advertise_endpoint, Text})
            end;
        _ ->
            erlang:error({bad_py_dist_config, advertise_endpoint, Text})
    end.

-spec get(key()) -> term().
get(Key) ->
    {Key, Kind, Default, _} = lists:keyfind(Key, 1, keys()),
    case command_line(atom_to_list(Key)) of
        {ok, Text} ->
            parse(Kind, Text);
        error ->
            case application:get_env(py_dist, Key) of
                {ok, Value} -> check(Key, Kind, Value);
                undefined -> default(Key, Default)
            end
    end.

-spec all() -> #{key() => term()}.
all() ->
    maps:from_list([{K, get(K)} || {K, _, _, _} <- keys()]).

%% @doc The executable and arguments that start the port program.
%% This runs under net_sup during kernel start, before the file server
%% exists, so a bare command name is looked up in PATH by env(1) rather
%% than by os:find_executable/1.
-spec python_command() -> {string(), [string()]}.
python_command() ->
    Sets = [["--set", atom_to_list(K) ++ "=" ++ to_text(get(K))]
            || {K, _, _, true} <- keys()],
    Args = ["-m", "pydist", "port" | lists:append(Sets)],
    Python = get(python),
    case filename:pathtype(Python) of
        absolute -> {Python, Args};
        _ -> {"/usr/bin/env", [Python | Args]}
    end.

%% @doc Parse a command-line value of the given kind.
-spec parse(kind(), string()) -> term().
parse(string, [$" | _] = Text) ->
    %% quoted, as `-py_dist Key Value' must be in a release (where init
    %% reads it as the application's environment, an Erlang term)
    try parse(term, Text) of
        String when is_list(String) -> String;
        _ -> Text
    catch
        error:_ -> Text
    end;
parse(string, Text) -> Text;
parse(atom, Text) -> list_to_atom(Text);
parse(term, Text) ->
    try
        {ok, Tokens, _} = erl_scan:string(Text ++ "."),
        {ok, Term} = erl_parse:parse_term(Tokens),
        Term
    catch
        error:_ -> erlang:error({bad_py_dist_config, Text})
    end;
parse(integer, Text) ->
    try list_to_integer(Text)
    catch error:badarg -> erlang:error({bad_py_dist_config, Text})
    end.

command_line(Key) ->
    case init:get_argument(py_dist) of
        {ok, Pairs} ->
            case [V || [K, V] <- Pairs, K =:= Key] of
                [] -> error;
                Values -> {ok, lists:last(Values)}
            end;
        error ->
            error
    end.

check(_Key, string, V) when is_list(V) -> V;
check(_Key, string, V) when is_binary(V) -> binary_to_list(V);
check(_Key, integer, V) when is_integer(V) -> V;
check(_Key, atom, V) when is_atom(V) -> V;
check(_Key, term, V) -> V;
check(Key, _Kind, V) -> erlang:error({bad_py_dist_config, Key, V}).

default(python, default_python) ->
    case os:getenv("PYDIST_PYTHON") of
        false -> "python3";
        Python -> Python
    end;
default(_Key, Default) ->
    Default.

to_text(V) when is_integer(V) -> integer_to_list(V);
to_text(V) when is_atom(V) -> atom_to_list(V);
to_text(V) when is_list(V) -> V.
