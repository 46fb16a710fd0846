%% net_kernel:setopts/getopts on py_dist: which options it takes.
-module(py_dist_socket_opts_tests).

-include_lib("eunit/include/eunit.hrl").

takes_nodelay_only_test_() ->
    [?_assertEqual({ok, #{}}, py_dist:socket_opts([])),
     ?_assertEqual({ok, #{nodelay => false}}, py_dist:socket_opts([{nodelay, false}])),
     ?_assertEqual({ok, #{nodelay => true}},
                   py_dist:socket_opts([{nodelay, false}, {nodelay, true}])),
     ?_assertEqual({error, enotsup}, py_dist:socket_opts([{nodelay, 1}])),
     ?_assertEqual({error, enotsup}, py_dist:socket_opts([{nodelay, true}, {sndbuf, 4096}])),
     ?_assertEqual({error, enotsup}, py_dist:socket_opts(nodelay)),
     ?_assertEqual({error, enotsup}, py_dist:setopts(undefined, [{priority, 1}])),
     ?_assertEqual(ok, py_dist:setopts(undefined, [{nodelay, true}])),
     ?_assertEqual({error, enotsup}, py_dist:getopts(undefined, [nodelay, tos])),
     ?_assertEqual({error, enotsup}, py_dist:socket_getopts(nodelay, true)),
     ?_assertEqual({ok, [{nodelay, false}]}, py_dist:socket_getopts([nodelay], false))].

new_connections_take_what_net_kernel_kept_test() ->
    Old = application:get_env(kernel, inet_dist_connect_options),
    try
        application:set_env(kernel, inet_dist_connect_options, [{nodelay, false}]),
        ?assertNot(py_dist:socket_opt(nodelay, true)),
        ?assertEqual({ok, [{nodelay, false}]}, py_dist:getopts(undefined, [nodelay])),
        application:unset_env(kernel, inet_dist_connect_options),
        ?assert(py_dist:socket_opt(nodelay, true))
    after
        case Old of
            {ok, V} -> application:set_env(kernel, inet_dist_connect_options, V);
            undefined -> application:unset_env(kernel, inet_dist_connect_options)
        end
    end.
