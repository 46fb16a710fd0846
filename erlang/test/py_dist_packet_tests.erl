-module(py_dist_packet_tests).

-include_lib("eunit/include/eunit.hrl").
-include("py_dist.hrl").

data_packet_layout_test() ->
    Bin = iolist_to_binary(py_dist_packet:data(7, [{3, <<"abc">>}, {0, []}, {2, [<<"x">>, "y"]}])),
    ?assertEqual(<<?PY_DIST_OP_DATA, 7:32, 3:32, "abc", 0:32, 2:32, "xy">>, Bin).

data_round_trip_test() ->
    Packets = [<<>>, <<"a">>, binary:copy(<<1>>, 70000)],
    Bin = iolist_to_binary(py_dist_packet:data(16#7fffffff, [{byte_size(P), P} || P <- Packets])),
    {data, Chan, Frames} = py_dist_packet:decode(Bin),
    ?assertEqual(16#7fffffff, Chan),
    ?assertEqual({ok, Packets}, py_dist_packet:split_frames(Frames)).

tick_is_one_empty_packet_test() ->
    {data, 5, Frames} = py_dist_packet:decode(py_dist_packet:tick(5)),
    ?assertEqual({ok, [<<>>]}, py_dist_packet:split_frames(Frames)).

ctrl_round_trip_test() ->
    Term = {connect, 3, <<"b@h">>, <<"127.0.0.1">>, 4369},
    ?assertEqual({ctrl, Term}, py_dist_packet:decode(py_dist_packet:ctrl(Term))).

truncated_frames_test_() ->
    Whole = <<3:32, "abc", 2:32, "de">>,
    [?_assertEqual({error, truncated_frame},
                   py_dist_packet:split_frames(binary:part(Whole, 0, N)))
     || N <- lists:seq(1, byte_size(Whole) - 1), N =/= 7].

truncated_prefix_is_whole_frames_test() ->
    ?assertEqual({ok, [<<"abc">>]}, py_dist_packet:split_frames(<<3:32, "abc">>)).

bad_packets_test_() ->
    [?_assertEqual({error, empty_packet}, py_dist_packet:decode(<<>>)),
     ?_assertEqual({error, {unknown_op, 9}}, py_dist_packet:decode(<<9, 1, 2>>)),
     ?_assertEqual({error, bad_control_term},
                   py_dist_packet:decode(<<?PY_DIST_OP_CTRL, 131, 255>>)),
     %% an atom the VM has never seen is refused, not created
     ?_assertEqual({error, bad_control_term},
                   py_dist_packet:decode(<<?PY_DIST_OP_CTRL, 131, 119, 12,
                                           "zz_never_seen">>))].
