-module(py_dist_port_writer_tests).

-include_lib("eunit/include/eunit.hrl").

%% A port program that reads nothing for a while: its pipe fills, the port
%% is busy, and writes wait.  Then it echoes all back ({packet, 4} both
%% ways), so the order it got them in can be read.
late_cat() ->
    open_port({spawn, "sh -c 'sleep 0.3; exec cat'"}, [{packet, 4}, binary]).

%% Many control messages, each large enough that the port is busy for most
%% of them: they arrive in the order written.  (With a process spawned per
%% write that found the port busy, as before this writer, they did not.)
writes_stay_in_order_while_the_port_is_busy_test() ->
    Port = late_cat(),
    Writer = py_dist_port_writer:start_link(),
    Pad = binary:copy(<<0>>, 16 * 1024),
    N = 300,
    try
        [ok = py_dist_port_writer:write(Writer, Port, [<<I:32>>, Pad]) || I <- lists:seq(1, N)],
        ?assertEqual(lists:seq(1, N), read(Port, N))
    after
        unlink(Writer),
        exit(Writer, kill),
        catch port_close(Port)
    end.

%% An answer handed to the writer reaches the caller only once everything
%% written before it is in the port: what the caller then writes itself
%% (a connect on the channel id it was given) comes after.
replies_come_after_earlier_writes_test() ->
    Port = late_cat(),
    Writer = py_dist_port_writer:start_link(),
    Pad = binary:copy(<<0>>, 16 * 1024),
    try
        Self = self(),
        Caller = spawn_link(fun() ->
                                the_answer = gen_server:call(Self, question, 10000),
                                true = erlang:port_command(Port, <<999:32>>)
                            end),
        From = receive {'$gen_call', F, question} -> F end,
        [ok = py_dist_port_writer:write(Writer, Port, [<<I:32>>, Pad]) || I <- lists:seq(1, 100)],
        ok = py_dist_port_writer:reply(Writer, From, the_answer),
        ?assertEqual(lists:seq(1, 100) ++ [999], read(Port, 101)),
        unlink(Caller)
    after
        unlink(Writer),
        exit(Writer, kill),
        catch port_close(Port)
    end.

%% A port that is gone (the program restarting) costs the writer nothing.
a_closed_port_is_ignored_test() ->
    Port = late_cat(),
    true = port_close(Port),
    Writer = py_dist_port_writer:start_link(),
    try
        ok = py_dist_port_writer:write(Writer, Port, <<"lost">>),
        Live = late_cat(),
        ok = py_dist_port_writer:write(Writer, Live, <<7:32>>),
        ?assertEqual([7], read(Live, 1)),
        ?assert(is_process_alive(Writer)),
        port_close(Live)
    after
        unlink(Writer),
        exit(Writer, kill)
    end.

a_writer_answers_sys_test() ->
    Writer = py_dist_port_writer:start_link(),
    try
        ?assertEqual([], sys:get_state(Writer))
    after
        unlink(Writer),
        exit(Writer, kill)
    end.

read(_Port, 0) ->
    [];
read(Port, N) ->
    receive
        {Port, {data, <<I:32, _/binary>>}} -> [I | read(Port, N - 1)]
    after 10000 ->
            [timeout]
    end.
