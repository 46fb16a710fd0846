-module(py_dist_process_opts_tests).

-include_lib("eunit/include/eunit.hrl").
-include("py_dist.hrl").

wire_test_() ->
    [?_assertEqual({0, 0}, py_dist_process_opts:wire(reliable)),
     ?_assertEqual({?PY_DIST_LANE_UNORDERED, 0}, py_dist_process_opts:wire(unordered)),
     ?_assertEqual({?PY_DIST_LANE_UNRELIABLE, 0}, py_dist_process_opts:wire(unreliable)),
     ?_assertEqual({?PY_DIST_LANE_REALTIME, 0}, py_dist_process_opts:wire(realtime)),
     ?_assertEqual({?PY_DIST_LANE_REALTIME, 250}, py_dist_process_opts:wire({realtime, 250})),
     ?_assertError(badarg, py_dist_process_opts:wire({realtime, 0})),
     ?_assertError(badarg, py_dist_process_opts:wire({realtime, 1 bsl 32})),
     ?_assertError(badarg, py_dist_process_opts:wire(fast))].

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
    undefined = whereis(py_dist_process_opts),
    ?assertEqual(reliable, py_dist_process_opts:set_lane(self(), unordered)),
    ?assertEqual(reliable, py_dist_process_opts:lane(self())),
    ?assertEqual(nodedown, py_dist_process_opts:set_loss_mode(self(), notify)),
    ?assertEqual(nodedown, py_dist_process_opts:loss_mode(self())),
    ?assertError(badarg, py_dist_process_opts:set_loss_mode(self(), sometimes)),
    ?assertEqual([], py_dist_process_opts:settings()).

%% The server's table: monitored, bounded, cleared at exit; what a
%% restarted port program is told.  py_dist_port is not running here, so
%% the caller's write to the port is a no-op (command/1 finds no port).
table_test_() ->
    {setup,
     fun start/0, fun stop/1,
     fun(_) ->
             [fun set_get_and_exit/0]
     end}.

set_get_and_exit() ->
    Self = self(),
    P = spawn(fun() ->
                      Old = py_dist_process_opts:set_lane(self(), {realtime, 40}),
                      OldMode = py_dist_process_opts:set_loss_mode(self(), notify),
                      Self ! {set, Old, OldMode, py_dist_process_opts:lane(self()),
                              py_dist_process_opts:loss_mode(self()),
                              py_dist_process_opts:settings()},
                      receive stop -> ok end
              end),
    {flow, Flow} = py_dist_packet:pid_flow(P),
    receive
        {set, Old, OldMode, Lane, Mode, Settings} ->
            ?assertEqual({reliable, nodedown}, {Old, OldMode}),
            ?assertEqual({{realtime, 40}, notify}, {Lane, Mode}),
            ?assertEqual([{set_lane, Flow, ?PY_DIST_LANE_REALTIME, 40}, {loss_mode, Flow, 1}],
                         Settings)
    after 5000 -> error(timeout)
    end,
    Ref = monitor(process, P),
    P ! stop,
    receive {'DOWN', Ref, process, P, _} -> ok end,
    _ = sys:get_state(py_dist_process_opts),  % its 'DOWN' handled
    ?assertEqual(reliable, py_dist_process_opts:lane(P)),
    ?assertEqual([], py_dist_process_opts:settings()).

%% Back to both defaults: the process is forgotten.
defaults_forget_test_() ->
    {setup,
     fun start/0, fun stop/1,
     fun(_) ->
             [fun() ->
                      ?assertEqual(reliable, py_dist_process_opts:set_lane(self(), unordered)),
                      ?assertEqual(nodedown, py_dist_process_opts:set_loss_mode(self(), notify)),
                      ?assertEqual(unordered, py_dist_process_opts:set_lane(self(), reliable)),
                      ?assertMatch([_, _], py_dist_process_opts:settings()),
                      ?assertEqual(notify, py_dist_process_opts:set_loss_mode(self(), nodedown)),
                      ?assertEqual([], py_dist_process_opts:settings())
              end]
     end}.

start() ->
    {ok, Pid} = py_dist_process_opts:start_link(),
    unlink(Pid),
    Pid.

stop(Pid) ->
    Ref = monitor(process, Pid),
    exit(Pid, kill),
    receive {'DOWN', Ref, process, Pid, _} -> ok end.
