-module(py_dist_neighbours_tests).
-include_lib("eunit/include/eunit.hrl").

%% The wait before the next dial of a neighbour whose dials keep failing:
%% the retry period first, doubled after each failure, capped.
retry_wait_doubles_up_to_the_cap_test() ->
    Waits = [py_dist_neighbours:retry_wait(F, 1000, 30000) || F <- lists:seq(1, 8)],
    ?assertEqual([1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000], Waits).

retry_wait_never_overflows_test() ->
    ?assertEqual(30000, py_dist_neighbours:retry_wait(1000000, 1000, 30000)).

%% a cap set below the period: the period wins, no dial comes sooner
retry_wait_never_below_the_period_test() ->
    ?assertEqual(1000, py_dist_neighbours:retry_wait(5, 1000, 10)).
