%% @doc Delivery of what the port program hands back about lanes: the
%% messages of py_dist:send/3 that arrived on a lane for this node, and
%% the drops it was asked to tell.  Called by the port owner (py_dist_port)
%% for each such port packet; no state of its own.
-module(py_dist_lanes).

-include_lib("kernel/include/logger.hrl").

-export([deliver/1, dropped/2]).

%% @doc A message that arrived on a lane.  Decoded without `safe': it may
%% carry atoms new to this node, as messages of stock distribution do, and
%% it comes from a peer of the cluster, trusted as stock distribution
%% trusts one.  Only local destinations: a send to another node could make
%% the caller (the port owner) wait for a connection.  A name not
%% registered loses the message, as a send to {Name, Node} does.
-spec deliver(binary()) -> ok.
deliver(Payload) ->
    try binary_to_term(Payload) of
        {To, Msg} when is_atom(To);
                       is_pid(To), node(To) =:= node() ->
            _ = catch erlang:send(To, Msg),
            ok;
        Other ->
            ?LOG_WARNING("py_dist: lane message for no local process: ~0P",
                         [Other, 10])
    catch
        error:badarg ->
            ?LOG_WARNING("py_dist: undecodable lane message of ~w bytes",
                         [byte_size(Payload)])
    end.

%% @doc Python dropped a lane message that asked to be told: Notify is
%% what send/3 wrote, {Pid, Tag}.  Our own encoding, so `safe' refuses
%% nothing good; whatever else it holds is ignored.
-spec dropped(binary(), atom()) -> ok.
dropped(Notify, Reason) ->
    try binary_to_term(Notify, [safe]) of
        {Pid, Tag} when is_pid(Pid), node(Pid) =:= node() ->
            Pid ! {py_dist_dropped, Tag, Reason},
            ok;
        _ ->
            ok
    catch
        error:badarg -> ok
    end.
