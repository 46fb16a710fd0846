-module(py_dist_process_lanes_tests).

-include_lib("eunit/include/eunit.hrl").
-include("py_dist.hrl").

wire_test_() ->
    [?_assertEqual({0, 0}, py_dist_process_lanes:wire(reliable)),
     ?_assertEqual({?PY_DIST_LANE_UNORDERED, 0}, py_dist_process_lanes:wire(unordered)),
     ?_assertEqual({?PY_DIST_LANE_UNRELIABLE, 0}, py_dist_process_lanes:wire(unreliable)),
     ?_assertEqual({?PY_DIST_LANE_REALTIME, 0}, py_dist_process_lanes:wire(realtime)),
     ?_assertEqual({?PY_DIST_LANE_REALTIME, 250}, py_dist_process_lanes:wire({realtime, 250})),
     ?_assertError(badarg, py_dist_process_lanes:wire({realtime, 0})),
     ?_assertError(badarg, py_dist_process_lanes:wire({realtime, 1 bsl 32})),
     ?_assertError(badarg, py_dist_process_lanes:wire(fast))].

%% The flow a lane is set for is the flow the controller tags the
%% process's sends with: read from a real SEND_SENDER control message.
pid_flow_is_the_flow_of_the_process_sends_test() ->
    Pid = spawn(fun() -> receive stop -> ok end end),
    Ctl = term_to_binary({22, Pid, self()}, [{minor_version, 2}]),
    <<131, Control/binary>> = Ctl,
    Packet = <<131, 68, 0, Control/binary>>,
    ?assertEqual(py_dist_packet:pid_flow(Pid), py_dist_packet:classify(Packet)),
    ?assertEqual(barrier, py_dist_packet:pid_flow(self)),
    Pid ! stop.

%% Without the server (a node not on py_dist), a lane changes nothing.
not_on_py_dist_test() ->
    undefined = whereis(py_dist_process_lanes),
    ?assertEqual(reliable, py_dist_process_lanes:set(self(), unordered)),
    ?assertEqual(reliable, py_dist_process_lanes:get(self())),
    ?assertEqual([], py_dist_process_lanes:settings()).

%% The server's table: monitored, bounded, cleared at exit; what a
%% restarted port program is told.  py_dist_port is not running here, so
%% the caller's write to the port is a no-op (command/1 finds no port).
table_test_() ->
    {setup,
     fun() -> {ok, Pid} = py_dist_process_lanes:start_link(), unlink(Pid), Pid end,
     fun(Pid) -> exit(Pid, kill) end,
     fun(_) ->
             [fun set_get_and_exit/0]
     end}.

set_get_and_exit() ->
    Self = self(),
    P = spawn(fun() ->
                      Old = py_dist_process_lanes:set(self(), {realtime, 40}),
                      Self ! {set, Old, py_dist_process_lanes:get(self()),
                              py_dist_process_lanes:settings()},
                      receive stop -> ok end
              end),
    {flow, Flow} = py_dist_packet:pid_flow(P),
    receive
        {set, Old, Now, Settings} ->
            ?assertEqual(reliable, Old),
            ?assertEqual({realtime, 40}, Now),
            ?assertEqual([{set_lane, Flow, ?PY_DIST_LANE_REALTIME, 40}], Settings)
    after 5000 -> error(timeout)
    end,
    Ref = monitor(process, P),
    P ! stop,
    receive {'DOWN', Ref, process, P, _} -> ok end,
    _ = sys:get_state(py_dist_process_lanes),  % its 'DOWN' handled
    ?assertEqual(reliable, py_dist_process_lanes:get(P)),
    ?assertEqual([], py_dist_process_lanes:settings()).
