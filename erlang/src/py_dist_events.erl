%% @doc What an operator's log pipeline sees of the overlay.
%%
%% Links to neighbours coming up and going down, nodes becoming reachable
%% or unreachable through the overlay, connections lost with frames
%% unacknowledged, and links refused, each as one OTP `logger' report: a
%% map with `event' and the event's fields, and the metadata `py_dist =>
%% link | route | loss | admission', so that a handler or a filter can pick
%% them and read the fields without parsing text; `report_cb' renders the
%% same event as one line for people.
%%
%% No `domain': OTP's default handler prints only events without one or
%% under `[otp]', so a domain of our own would hide from the console the
%% refusals that stock distribution prints there.
%%
%% Levels follow what stock distribution says by itself: nothing about a
%% connection that behaves (links, routes: `info', below the default
%% `notice'), `notice' for a link that failed, `warning' for a loss (but
%% for a node that stopped: `info'), and `error' for a refusal, as dist_util reports a wrong cookie.
-module(py_dist_events).

-export([link_up/1, link_down/2, reachable/1, unreachable/1, loss/3,
         link_refused/2, name_taken/2, format/1]).

-include_lib("kernel/include/logger.hrl").

-type event() :: link_up | link_down | reachable | unreachable | loss
               | link_refused | name_taken.
-export_type([event/0]).

-spec link_up(binary()) -> ok.
link_up(Peer) ->
    ?LOG_INFO(#{event => link_up, peer => Peer}, meta(link)).

%% A link dropped on purpose (`unlinked') or by a neighbour that said
%% goodbye as its node stopped (`peer_exit') is no failure: stock says
%% nothing when a node stops.
-spec link_down(binary(), binary()) -> ok.
link_down(Peer, Reason) when Reason =:= <<"unlinked">>; Reason =:= <<"peer_exit">> ->
    ?LOG_INFO(#{event => link_down, peer => Peer, reason => Reason}, meta(link));
link_down(Peer, Reason) ->
    ?LOG_NOTICE(#{event => link_down, peer => Peer, reason => Reason}, meta(link)).

-spec reachable(binary()) -> ok.
reachable(Node) ->
    ?LOG_INFO(#{event => reachable, node => Node}, meta(route)).

-spec unreachable(binary()) -> ok.
unreachable(Node) ->
    ?LOG_INFO(#{event => unreachable, node => Node}, meta(route)).

%% Frames in flight to a node that stopped were lost with it, as with
%% stock, which says nothing then.
-spec loss(binary(), atom(), non_neg_integer()) -> ok.
loss(Peer, peer_exit, Unacked) ->
    ?LOG_INFO(#{event => loss, peer => Peer, reason => peer_exit, unacked => Unacked},
              meta(loss));
loss(Peer, Reason, Unacked) ->
    ?LOG_WARNING(#{event => loss, peer => Peer, reason => Reason, unacked => Unacked},
                 meta(loss)).

%% As dist_util reports a handshake with a wrong digest: the peer could
%% not prove it holds the cookie, and got nothing.
-spec link_refused(binary(), atom()) -> ok.
link_refused(Peer, Why) ->
    ?LOG_ERROR(#{event => link_refused, peer => Peer, reason => Why}, meta(admission)).

%% As epmd refuses a second node of one name.
-spec name_taken(binary(), binary()) -> ok.
name_taken(Seed, Node) ->
    ?LOG_ERROR(#{event => name_taken, seed => Seed, node => Node}, meta(admission)).

meta(Category) ->
    #{py_dist => Category, report_cb => fun ?MODULE:format/1}.

-spec format(map()) -> {io:format(), [term()]}.
format(#{event := link_up, peer := Peer}) ->
    {"py_dist: link to ~ts up", [printable(Peer)]};
format(#{event := link_down, peer := Peer, reason := Reason}) ->
    {"py_dist: link to ~ts down: ~ts", [printable(Peer), printable(Reason)]};
format(#{event := reachable, node := Node}) ->
    {"py_dist: ~ts reachable", [printable(Node)]};
format(#{event := unreachable, node := Node}) ->
    {"py_dist: ~ts unreachable: no path left", [printable(Node)]};
format(#{event := loss, peer := Peer, reason := Reason, unacked := Unacked}) ->
    {"py_dist: connection to ~ts lost (~w) with ~w frames unacknowledged",
     [printable(Peer), Reason, Unacked]};
format(#{event := link_refused, peer := Peer, reason := Why}) ->
    {"** Connection attempt from node ~ts rejected: its py_dist link did not prove "
     "the cookie (~w) **", [printable(Peer), Why]};
format(#{event := name_taken, seed := Seed, node := Node}) ->
    {"py_dist: ~ts refused this node: the name ~ts is taken by another live node "
     "of the cluster; no more links to neighbours will be made", [printable(Seed), Node]};
format(Other) ->
    {"py_dist: ~0tp", [Other]}.

%% Names come from the network: shown as text when they are UTF-8.
printable(Name) ->
    case unicode:characters_to_list(Name) of
        Chars when is_list(Chars) -> Chars;
        _ -> io_lib:format("~0p", [Name])
    end.

-ifdef(TEST).
-include_lib("eunit/include/eunit.hrl").

format_test_() ->
    Line = fun(Report) -> {Fmt, Args} = format(Report), lists:flatten(io_lib:format(Fmt, Args)) end,
    [?_assertEqual("py_dist: link to b@h down: heartbeat_timeout",
                   Line(#{event => link_down, peer => <<"b@h">>,
                          reason => <<"heartbeat_timeout">>})),
     ?_assertEqual("py_dist: link to <<255,0>> up", Line(#{event => link_up, peer => <<255, 0>>})),
     ?_assertEqual("py_dist: connection to c@h lost (gap_timeout) with 3 frames unacknowledged",
                   Line(#{event => loss, peer => <<"c@h">>, reason => gap_timeout,
                          unacked => 3}))].
-endif.
