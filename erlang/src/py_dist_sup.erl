%% @doc The one supervisor py_dist puts under kernel's net_sup.
%%
%% It restarts the port owner should it ever crash; the owner itself
%% restarts the Python program when that dies, without crashing, because
%% net_sup (one_for_all, intensity 0) would take distribution down with it.
%% The neighbours process keeps the links and static routes asked for; the
%% losses process tells who asked of connections lost with frames; the
%% process options process keeps what py_dist:set_lane/1 and loss_mode/1
%% set (started before the owner, which tells a restarted port program).
-module(py_dist_sup).
-behaviour(supervisor).

-export([start_link/0, init/1]).

start_link() ->
    supervisor:start_link({local, ?MODULE}, ?MODULE, []).

init([]) ->
    %% in start order: the owner tells a restarted port program what the
    %% process options hold
    Workers = [py_dist_losses, py_dist_process_opts, py_dist_port, py_dist_neighbours],
    {ok, {#{strategy => one_for_one, intensity => 5, period => 10},
          [worker(M) || M <- Workers]}}.

worker(Module) ->
    #{id => Module,
      start => {Module, start_link, []},
      restart => permanent,
      shutdown => 5000,
      type => worker,
      modules => [Module]}.
