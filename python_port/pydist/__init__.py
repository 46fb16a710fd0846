"""py_dist: Erlang distribution carried by a Python port over ZeroMQ."""

__version__ = "0.1.0"
