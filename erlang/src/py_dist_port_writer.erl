%% @doc The port owner's one writer: what the owner writes to the port
%% program arrives in the order the owner wrote it.
%%
%% The owner never waits on the port (the inbound traffic of every
%% connection depends on it), so it hands its control messages to this
%% process, which waits instead when the port is busy.  One process, one
%% mailbox, so one order: an `{input, hold}' is never overtaken by the
%% `{input, release}' that follows it, as it could be when each write that
%% found the port busy had a process of its own.
%%
%% Other processes write to the port themselves (controllers their data,
%% senders their lane messages, callers of command/1).  Where one does so
%% after asking the owner something (a channel id, the port), the owner's
%% answer goes through this writer too, behind what the owner wrote
%% before: a `connect' on a channel id never overtakes the `close' that
%% freed the id, nor anything the `set_node' it needs.
%%
%% Each write names its port: after a restart of the port program the
%% writes still queued for the old one fail quietly (the program is gone),
%% and the same writer serves the new one.
-module(py_dist_port_writer).

-include_lib("kernel/include/logger.hrl").

-export([start_link/0, write/3, reply/3, write_now/2]).
-export([init/1, system_continue/3, system_terminate/4, system_code_change/4,
         system_get_state/1]).

%% @doc Start a writer linked to the caller (the port owner).
-spec start_link() -> pid().
start_link() ->
    proc_lib:spawn_link(?MODULE, init, [self()]).

%% @doc Queue Packet for Port; never waits.
-spec write(pid(), port(), iodata()) -> ok.
write(Writer, Port, Packet) ->
    Writer ! {write, Port, Packet},
    ok.

%% @doc Write Packet to Port in the caller, waiting if the port is busy: for
%% this writer, and for the few that need their write in the port before
%% they go on (a controller's `up', command/1).  A port that is gone (the
%% program restarting) costs nothing.
-spec write_now(port(), iodata()) -> ok.
write_now(Port, Packet) ->
    try erlang:port_command(Port, Packet) of
        true -> ok
    catch
        error:badarg -> ok
    end.

%% @doc Answer a gen_server call once everything written before is written.
-spec reply(pid(), gen_server:from(), term()) -> ok.
reply(Writer, From, Reply) ->
    Writer ! {reply, From, Reply},
    ok.

%% @private
init(Parent) ->
    loop(Parent, sys:debug_options([])).

loop(Parent, Debug) ->
    receive
        {write, Port, Packet} ->
            write_now(Port, Packet),
            loop(Parent, Debug);
        {reply, From, Reply} ->
            gen_server:reply(From, Reply),
            loop(Parent, Debug);
        {system, From, Request} ->
            sys:handle_system_msg(Request, From, Parent, ?MODULE, Debug, []);
        Other ->
            ?LOG_WARNING("py_dist: the port writer got an unexpected message: ~0P",
                         [Other, 10]),
            loop(Parent, Debug)
    end.

%% @private
system_continue(Parent, Debug, _State) ->
    loop(Parent, Debug).

%% @private
-spec system_terminate(term(), pid(), [sys:dbg_opt()], term()) -> no_return().
system_terminate(Reason, _Parent, _Debug, _State) ->
    exit(Reason).

%% @private
system_code_change(State, _Module, _OldVsn, _Extra) ->
    {ok, State}.

%% @private
system_get_state(State) ->
    {ok, State}.
