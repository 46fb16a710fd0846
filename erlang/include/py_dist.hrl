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
%%   <<?PY_DIST_OP_LANE, Lane:8, DeadlineMs:32, NodeLen:16, Node:NodeLen/binary,
%%     NotifyLen:16, Notify:NotifyLen/binary, Payload/binary>>  BEAM -> Python
%%       only: one message of py_dist:send/3 for a lane (?PY_DIST_LANE_*) to
%%       the node named Node (UTF-8).  DeadlineMs 0: none given (Python
%%       applies its realtime_deadline on the realtime lane); Notify <<>>, or
%%       term_to_binary({Pid, Tag}) to hand back in the control message
%%       {dropped, Notify, Reason} if Python drops the message on this node
%%       (Reason: no_route | congested | deadline | overflow); Payload term_to_binary({To,
%%       Msg}), To a pid or a registered name
%%   <<?PY_DIST_OP_DELIVER, Payload/binary>>  Python -> BEAM only: a message
%%       that arrived on a lane, Payload as in OP_LANE, to deliver here
%%
%% OP_LANE and OP_DELIVER share a value, as they travel opposite ways.
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
-define(PY_DIST_OP_LANE, 3).
-define(PY_DIST_OP_DELIVER, 3).
-define(PY_DIST_FLOW_BARRIER, 0).
-define(PY_DIST_FLOW_TICK, 1).

%% The lanes of OP_LANE, besides the ordinary (reliable, ordered) one.  A
%% higher lane gives up more (order, then delivery, then lateness), and
%% py_dist:send/3 takes the highest one any of its options asks for.
-define(PY_DIST_LANE_UNORDERED, 1).
-define(PY_DIST_LANE_UNRELIABLE, 2).
-define(PY_DIST_LANE_REALTIME, 3).

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
         gap_timeout, reorder_overflow, retransmit_overflow, bad_ack, name_taken,
         wrong_cookie]).
