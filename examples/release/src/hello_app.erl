%% @doc A tiny application, so that the release has something of its own;
%% what matters is the distribution underneath, carried by py_dist.
-module(hello_app).
-behaviour(application).
-behaviour(supervisor).
-export([start/2, stop/1, init/1, greet/1]).

start(_Type, _Args) ->
    supervisor:start_link({local, hello_sup}, ?MODULE, []).

stop(_State) ->
    ok.

init([]) ->
    {ok, {#{strategy => one_for_one}, []}}.

%% @doc Called from another node: shows the release's nodes talk.
greet(From) ->
    {hello, node(), From}.
