%% @doc Pure codec of the packets between the BEAM and the Python port.
%%
%% The runtime adds and strips the outer {packet, 4} length; this module
%% knows what is inside: an op byte, then either a control term or the
%% distribution packets of one channel as a run of length-prefixed frames.
%% Many distribution packets travel in one port packet: per-packet cost in
%% Python is the figure that decides throughput, so it only ever slices.
-module(py_dist_packet).

-include("py_dist.hrl").

-export([ctrl/1, data/2, tick/1, decode/1, split_frames/1,
         put_frames/2]).

-export_type([decoded/0]).

-type decoded() :: {ctrl, term()}
                 | {data, non_neg_integer(), binary()}
                 | {error, term()}.

%% @doc A control message for the Python side.
-spec ctrl(term()) -> binary().
ctrl(Term) ->
    <<?PY_DIST_OP_CTRL, (term_to_binary(Term))/binary>>.

%% @doc One port packet carrying the given distribution packets of Chan.
%% Each element is `{Size, IoData}' so the caller's batching loop, which
%% already knows sizes from dist_ctrl_get_data, never measures twice.
-spec data(non_neg_integer(), [{non_neg_integer(), iodata()}]) -> iolist().
data(Chan, Packets) ->
    [<<?PY_DIST_OP_DATA, Chan:32>> | frames(Packets)].

frames([{Size, Data} | Rest]) ->
    [<<Size:32>>, Data | frames(Rest)];
frames([]) ->
    [].

%% @doc An empty distribution packet: the far side puts it with
%% dist_ctrl_put_data/2, which only bumps its input counter.  That is a tick.
-spec tick(non_neg_integer()) -> binary().
tick(Chan) ->
    <<?PY_DIST_OP_DATA, Chan:32, 0:32>>.

%% @doc Decode one port packet from Python.  Frames stay unsplit: the
%% receiver splits them where they are consumed.
-spec decode(binary()) -> decoded().
decode(<<?PY_DIST_OP_DATA, Chan:32, Frames/binary>>) ->
    {data, Chan, Frames};
decode(<<?PY_DIST_OP_CTRL, Ext/binary>>) ->
    try binary_to_term(Ext, [safe]) of
        Term -> {ctrl, Term}
    catch
        error:badarg -> {error, bad_control_term}
    end;
decode(<<Op, _/binary>>) ->
    {error, {unknown_op, Op}};
decode(<<>>) ->
    {error, empty_packet}.

%% @doc Split a run of frames into packets.
-spec split_frames(binary()) -> {ok, [binary()]} | {error, truncated_frame}.
split_frames(Frames) ->
    split_frames(Frames, []).

split_frames(<<Len:32, Packet:Len/binary, Rest/binary>>, Acc) ->
    split_frames(Rest, [Packet | Acc]);
split_frames(<<>>, Acc) ->
    {ok, lists:reverse(Acc)};
split_frames(_, _) ->
    {error, truncated_frame}.

%% @doc Hand every frame to the runtime, one dist_ctrl_put_data/2 per
%% distribution packet.  Frames before a malformed tail are delivered: they
%% were whole, and the caller takes the connection down on the error.
-spec put_frames(erlang:dist_handle(), binary()) -> ok | {error, truncated_frame}.
put_frames(DHandle, <<Len:32, Packet:Len/binary, Rest/binary>>) ->
    erlang:dist_ctrl_put_data(DHandle, Packet),
    put_frames(DHandle, Rest);
put_frames(_DHandle, <<>>) ->
    ok;
put_frames(_DHandle, _) ->
    {error, truncated_frame}.
