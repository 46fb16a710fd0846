%% @doc The port owner's channel table, as a pure value: no processes and
%% no side effects.  The owner (py_dist_port) asks it what to do and does
%% it (monitors, messages, putting data into the runtime).
%%
%% A channel goes through three states:
%%   {handshake, Ctrl}         its packets go to its controller Ctrl;
%%   {hold, Ctrl, Held}        the controller is handing input over at
%%                             nodeup: packets are kept (Held, newest first);
%%   {up, Ctrl, DHandle}       the owner puts its packets into the runtime.
%% Each controller has one channel and the monitor the owner took on it.
%%
%% Erlang allocates the ids of outbound channels, from 1 up, wrapping
%% below ?PY_DIST_PY_CHAN_BASE and skipping ids in use; Python names the
%% accepted ones, from ?PY_DIST_PY_CHAN_BASE up.
-module(py_dist_chans).

-include("py_dist.hrl").

-export([new/0, new/1, alloc/1, add/4, forget/2, clear/1, hold/2, up/3, data/3,
         ctrl_of/2, chan_of/2, count/1, routes/1, ctrls/1]).
-export_type([chans/0, chan/0, route/0]).

-type chan() :: non_neg_integer().
-type route() :: {handshake, pid()}
               | {hold, pid(), [binary()]}
               | {up, pid(), erlang:dist_handle()}.

-record(chans, {routes = #{} :: #{chan() => route()},
                ctrls = #{} :: #{pid() => {chan(), reference()}},
                next = 1 :: chan()}).
-opaque chans() :: #chans{}.

%% @doc An empty table.
-spec new() -> chans().
new() ->
    new(1).

%% @doc An empty table whose next allocation tries Next first.
-spec new(pos_integer()) -> chans().
new(Next) when is_integer(Next), Next >= 1, Next < ?PY_DIST_PY_CHAN_BASE ->
    #chans{next = Next}.

%% @doc A channel id for an outbound connection: the next one not in use,
%% below ?PY_DIST_PY_CHAN_BASE.  Not in use until add/4.
-spec alloc(chans()) -> {chan(), chans()}.
alloc(#chans{next = N, routes = Routes} = C) ->
    Next = case N + 1 of
               ?PY_DIST_PY_CHAN_BASE -> 1;
               M -> M
           end,
    case is_map_key(N, Routes) of
        true -> alloc(C#chans{next = Next});
        false -> {N, C#chans{next = Next}}
    end.

%% @doc The channel Chan (not in use) of the controller Ctrl (without a
%% channel), monitored by the owner with Ref: in handshake.
-spec add(chan(), pid(), reference(), chans()) -> chans().
add(Chan, Ctrl, Ref, #chans{routes = Routes, ctrls = Ctrls} = C) ->
    C#chans{routes = Routes#{Chan => {handshake, Ctrl}},
            ctrls = Ctrls#{Ctrl => {Chan, Ref}}}.

%% @doc Drop the controller Ctrl and its channel; `Ref' is its monitor,
%% for the owner to take off.  `error' if Ctrl has no channel.
-spec forget(pid(), chans()) -> {ok, reference(), chans()} | error.
forget(Ctrl, #chans{routes = Routes, ctrls = Ctrls} = C) ->
    case Ctrls of
        #{Ctrl := {Chan, Ref}} ->
            {ok, Ref, C#chans{routes = maps:remove(Chan, Routes),
                              ctrls = maps:remove(Ctrl, Ctrls)}};
        #{} ->
            error
    end.

%% @doc Drop every channel (the port program is gone): the controllers and
%% their monitors.  Allocation goes on where it was.
-spec clear(chans()) -> {[{pid(), reference()}], chans()}.
clear(#chans{ctrls = Ctrls} = C) ->
    {[{Ctrl, Ref} || {Ctrl, {_Chan, Ref}} <- maps:to_list(Ctrls)],
     C#chans{routes = #{}, ctrls = #{}}}.

%% @doc Keep the channel's packets from now on, rather than handing them
%% to its controller; nothing changes unless it is in handshake.
-spec hold(chan(), chans()) -> chans().
hold(Chan, #chans{routes = Routes} = C) ->
    case Routes of
        #{Chan := {handshake, Ctrl}} ->
            C#chans{routes = Routes#{Chan := {hold, Ctrl, []}}};
        #{} ->
            C
    end.

%% @doc The channel held is up: its packets go into the runtime through
%% DHandle.  Returns the packets held, in arrival order, to put first;
%% `none' (nothing changes) unless it was held.
-spec up(chan(), erlang:dist_handle(), chans()) -> {ok, [binary()], chans()} | none.
up(Chan, DHandle, #chans{routes = Routes} = C) ->
    case Routes of
        #{Chan := {hold, Ctrl, Held}} ->
            {ok, lists:reverse(Held), C#chans{routes = Routes#{Chan := {up, Ctrl, DHandle}}}};
        #{} ->
            none
    end.

%% @doc What to do with packets that arrived on Chan: put them into the
%% runtime, forward them to the controller, or nothing (`none': no such
%% channel) as the table kept them (`held').
-spec data(chan(), binary(), chans()) ->
          {put, erlang:dist_handle()} | {forward, pid()} | {held, chans()} | none.
data(Chan, Frames, #chans{routes = Routes} = C) ->
    case Routes of
        #{Chan := {up, _Ctrl, DHandle}} ->
            {put, DHandle};
        #{Chan := {handshake, Ctrl}} ->
            {forward, Ctrl};
        #{Chan := {hold, Ctrl, Held}} ->
            {held, C#chans{routes = Routes#{Chan := {hold, Ctrl, [Frames | Held]}}}};
        #{} ->
            none
    end.

%% @doc The controller of the channel, in whatever state.
-spec ctrl_of(chan(), chans()) -> {ok, pid()} | error.
ctrl_of(Chan, #chans{routes = Routes}) ->
    case Routes of
        #{Chan := Route} -> {ok, element(2, Route)};
        #{} -> error
    end.

%% @doc The channel of the controller.
-spec chan_of(pid(), chans()) -> {ok, chan()} | error.
chan_of(Ctrl, #chans{ctrls = Ctrls}) ->
    case Ctrls of
        #{Ctrl := {Chan, _Ref}} -> {ok, Chan};
        #{} -> error
    end.

%% @doc How many channels are in use.
-spec count(chans()) -> non_neg_integer().
count(#chans{routes = Routes}) ->
    map_size(Routes).

%% @doc Every channel and its state (for tests and inspection).
-spec routes(chans()) -> #{chan() => route()}.
routes(#chans{routes = Routes}) ->
    Routes.

%% @doc Every controller, its channel and monitor (for tests and inspection).
-spec ctrls(chans()) -> #{pid() => {chan(), reference()}}.
ctrls(#chans{ctrls = Ctrls}) ->
    Ctrls.
