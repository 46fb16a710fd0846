"""Tools of the checkout, apart from the port program: local clusters of
real ``erl`` nodes (:mod:`pydist_tools.cluster`), the demo and the
benchmarks.

The ``pydist`` package is what a release ships (``erlang/priv/python``);
this one is not. It depends on ``pydist`` (the flags that select the
carrier, the codec, key files), never the other way round at import time:
the ``pydist`` CLI imports it inside the commands that need it.
"""
