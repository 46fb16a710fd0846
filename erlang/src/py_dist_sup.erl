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
    Owner = #{id => py_dist_port,
              start => {py_dist_port, start_link, []},
              restart => permanent,
              shutdown => 5000,
              type => worker,
              modules => [py_dist_port]},
    Neighbours = #{id => py_dist_neighbours,
                   start => {py_dist_neighbours, start_link, []},
                   restart => permanent,
                   shutdown => 5000,
                   type => worker,
                   modules => [py_dist_neighbours]},
    Losses = #{id => py_dist_losses,
               start => {py_dist_losses, start_link, []},
               restart => permanent,
               shutdown => 5000,
               type => worker,
               modules => [py_dist_losses]},
    Opts = #{id => py_dist_process_opts,
              start => {py_dist_process_opts, start_link, []},
              restart => permanent,
              shutdown => 5000,
              type => worker,
              modules => [py_dist_process_opts]},
    {ok, {#{strategy => one_for_one, intensity => 5, period => 10},
          [Losses, Opts, Owner, Neighbours]}}.
