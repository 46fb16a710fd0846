-module(py_dist_config_tests).

-include_lib("eunit/include/eunit.hrl").

defaults_work_with_no_configuration_test() ->
    Config = py_dist_config:all(),
    ?assertEqual(200, maps:get(heartbeat_interval, Config)),
    ?assertEqual(600, maps:get(heartbeat_timeout, Config)),
    ?assert(is_list(maps:get(python, Config))).

app_env_overrides_default_test() ->
    application:set_env(py_dist, heartbeat_timeout, 900),
    try
        ?assertEqual(900, py_dist_config:get(heartbeat_timeout))
    after
        application:unset_env(py_dist, heartbeat_timeout)
    end.

bad_app_env_is_an_error_test() ->
    application:set_env(py_dist, listen_port, "not a number"),
    try
        ?assertError({bad_py_dist_config, listen_port, _}, py_dist_config:get(listen_port))
    after
        application:unset_env(py_dist, listen_port)
    end.

parse_test_() ->
    [?_assertEqual(42, py_dist_config:parse(integer, "42")),
     ?_assertEqual(info, py_dist_config:parse(atom, "info")),
     ?_assertEqual("/usr/bin/python3", py_dist_config:parse(string, "/usr/bin/python3")),
     ?_assertEqual("/usr/bin/python3", py_dist_config:parse(string, "\"/usr/bin/python3\"")),
     ?_assertError({bad_py_dist_config, "4x"}, py_dist_config:parse(integer, "4x")),
     %% neighbours come as an Erlang term on the command line
     ?_assertEqual(['b@h', {'c@h', #{cost => 5}}],
                   py_dist_config:parse(term, "['b@h', {'c@h', #{cost => 5}}]")),
     ?_assertError({bad_py_dist_config, "['b@h'"}, py_dist_config:parse(term, "['b@h'"))].

python_command_passes_python_keys_only_test() ->
    {_Exe, Args} = py_dist_config:python_command(),
    ?assert(lists:member("heartbeat_interval=200", Args)),
    ?assert(lists:member("link_cost=10", Args)),
    ?assertNot(lists:any(fun(A) -> lists:prefix("neighbours=", A) end, Args)),
    ?assertNot(lists:any(fun(A) -> lists:prefix("max_batch=", A) end, Args)),
    ?assertMatch(["-m", "pydist", "port" | _], drop_env_arg(Args)).

drop_env_arg(["-m" | _] = Args) -> Args;
drop_env_arg([_Python | Args]) -> Args.

lane_keys_go_to_python_test() ->
    {_Exe, Args} = py_dist_config:python_command(),
    ?assert(lists:member("chunk_bytes=65536", Args)),
    ?assert(lists:member("realtime_deadline=100", Args)),
    ?assert(lists:member("lane_queue_bytes=16777216", Args)).

advertised_endpoint_test_() ->
    [?_assertEqual(name, py_dist_config:advertised("")),
     ?_assertEqual(none, py_dist_config:advertised("none")),
     ?_assertEqual({"203.0.113.7", 4370}, py_dist_config:advertised("203.0.113.7:4370")),
     ?_assertEqual({"gw.example.org", 9}, py_dist_config:advertised("gw.example.org:9")),
     ?_assertEqual({"::1", 4370}, py_dist_config:advertised("::1:4370")),
     [?_assertError({bad_py_dist_config, advertise_endpoint, Bad},
                    py_dist_config:advertised(Bad))
      || Bad <- ["4370", ":4370", "host:", "host:0", "host:65536", "host:port", "nothing"]]].
