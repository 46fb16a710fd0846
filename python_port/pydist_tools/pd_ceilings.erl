%% The BEAM's half of the ceilings benchmark (pydist_tools.bench_ceilings):
%% each stage between the BEAM and a Python program alone, with nothing of
%% py_dist in the way.  Compiled and loaded into a node by the benchmark;
%% not part of the py_dist application.
-module(pd_ceilings).

-export([to_port/4, from_port/4, to_socket/4, from_socket/4]).

-define(TIMEOUT, 120000).

%% BEAM -> Python over a stdio port ({packet, 4}, as py_dist's): N packets
%% of Size bytes; the program says `done' when it has read them all.
%% Microseconds from the first packet to that answer.
-spec to_port(string(), string(), pos_integer(), pos_integer()) -> integer().
to_port(Python, Script, Size, N) ->
    Port = program(Python, Script, ["stdin", Size, N]),
    Bin = binary:copy(<<7>>, Size),
    T0 = erlang:monotonic_time(microsecond),
    send_port(Port, Bin, N),
    <<"done">> = answer(Port),
    T = erlang:monotonic_time(microsecond) - T0,
    port_close(Port),
    T.

%% Python -> BEAM over a stdio port: the program writes N packets of Size
%% bytes after `go'.  Microseconds from `go' to the last packet here.
-spec from_port(string(), string(), pos_integer(), pos_integer()) -> integer().
from_port(Python, Script, Size, N) ->
    Port = program(Python, Script, ["stdout", Size, N]),
    <<"ready">> = answer(Port),
    T0 = erlang:monotonic_time(microsecond),
    true = port_command(Port, <<"go">>),
    receive_port(Port, Size, N),
    T = erlang:monotonic_time(microsecond) - T0,
    port_close(Port),
    T.

%% The same two over a Unix domain socket that the program listens on
%% (gen_tcp, {local, Path}, {packet, 4}); the port only starts it and
%% carries `ready'/`done'.
-spec to_socket(string(), string(), pos_integer(), pos_integer()) -> integer().
to_socket(Python, Script, Size, N) ->
    {Port, Sock} = socket_program(Python, Script, "sock_in", Size, N),
    Bin = binary:copy(<<7>>, Size),
    T0 = erlang:monotonic_time(microsecond),
    [ok = gen_tcp:send(Sock, Bin) || _ <- lists:seq(1, N)],
    <<"done">> = answer(Port),
    T = erlang:monotonic_time(microsecond) - T0,
    gen_tcp:close(Sock),
    port_close(Port),
    T.

-spec from_socket(string(), string(), pos_integer(), pos_integer()) -> integer().
from_socket(Python, Script, Size, N) ->
    {Port, Sock} = socket_program(Python, Script, "sock_out", Size, N),
    T0 = erlang:monotonic_time(microsecond),
    true = port_command(Port, <<"go">>),
    receive_socket(Sock, Size, N),
    T = erlang:monotonic_time(microsecond) - T0,
    gen_tcp:close(Sock),
    port_close(Port),
    T.

program(Python, Script, Args) ->
    open_port({spawn_executable, Python},
              [{args, [Script | [to_list(A) || A <- Args]]}, {packet, 4}, binary,
               exit_status, use_stdio]).

socket_program(Python, Script, Mode, Size, N) ->
    Dir = string:trim(os:cmd("mktemp -d")),
    Path = filename:join(Dir, "s"),
    Port = program(Python, Script, [Mode, Size, N, Path]),
    <<"ready">> = answer(Port),
    {ok, Sock} = gen_tcp:connect({local, Path}, 0,
                                 [local, binary, {packet, 4}, {active, false},
                                  {sndbuf, 4 bsl 20}, {recbuf, 4 bsl 20}]),
    {Port, Sock}.

to_list(A) when is_integer(A) -> integer_to_list(A);
to_list(A) -> A.

%% port_command/2 suspends the sender while the port is busy, as
%% py_dist's writer is held by a busy port.
send_port(_Port, _Bin, 0) -> ok;
send_port(Port, Bin, K) -> true = port_command(Port, Bin), send_port(Port, Bin, K - 1).

receive_port(_Port, _Size, 0) -> ok;
receive_port(Port, Size, K) ->
    receive {Port, {data, Bin}} when byte_size(Bin) =:= Size -> receive_port(Port, Size, K - 1)
    after ?TIMEOUT -> error(timeout)
    end.

receive_socket(_Sock, _Size, 0) -> ok;
receive_socket(Sock, Size, K) ->
    {ok, Bin} = gen_tcp:recv(Sock, 0, ?TIMEOUT),
    Size = byte_size(Bin),
    receive_socket(Sock, Size, K - 1).

answer(Port) ->
    receive
        {Port, {data, Answer}} -> Answer;
        {Port, {exit_status, Status}} -> error({program_exited, Status})
    after ?TIMEOUT -> error(timeout)
    end.
