%% The one Erlang copy of the port wire constants.  The Python copy is
%% python_port/pydist/core/wire.py; tests/core/test_wire.py parses both
%% files and checks that they agree.
%%
%% Every port packet ({packet, 4} framing, added by the runtime) starts
%% with one op byte:
%%   <<?PY_DIST_OP_CTRL, Term/binary>>  a control message, external term format
%%   <<?PY_DIST_OP_DATA, Chan:32, Frames/binary>>  distribution packets of
%%       one channel, Frames = many <<Len:32, Packet:Len/binary>>
%%   <<?PY_DIST_OP_FLOWS, Chan:32, Groups/binary>>  BEAM -> Python only: the
%%       packets of one channel grouped by flow (the sending process),
%%       Groups = one or more <<Flow:64, Len:32, Frames:Len/binary>>
%%
%% Packets of one flow stay in order; different flows may overtake each
%% other, which Erlang allows once the header atom cache is off: it only
%% orders the signals between a pair of processes.  A barrier packet is in
%% order with everything (all before it goes first, all after it waits);
%% OP_DATA counts as a barrier group.  Groups of one port packet are in
%% arrival order, and a barrier group splits them: packets that came after
%% it are in groups after it.  Ticks are empty packets in no order.
-define(PY_DIST_OP_CTRL, 0).
-define(PY_DIST_OP_DATA, 1).
-define(PY_DIST_OP_FLOWS, 2).
-define(PY_DIST_FLOW_BARRIER, 0).
-define(PY_DIST_FLOW_TICK, 1).

%% Channel ids that Erlang allocates (outbound connections) stay below this
%% value; Python allocates ids of accepted channels from it upwards, so the
%% two never collide and neither side waits for the other to name a channel.
-define(PY_DIST_PY_CHAN_BASE, 16#80000000).

%% Why Python closed a channel ({closed, Chan, Reason}).  Control terms are
%% decoded with binary_to_term(_, [safe]), which refuses atoms the VM does
%% not know yet: py_dist_ctrl names every one of these, so they exist.
-define(PY_DIST_CLOSE_REASONS,
        [peer_closed, peer_exit, heartbeat_timeout, connect_timeout,
         wrong_node, protocol_error, sequence_gap, not_ready,
         duplicate_channel, port_exit, no_route, path_lost, unlinked,
         gap_timeout, reorder_overflow, retransmit_overflow, bad_ack, name_taken]).
