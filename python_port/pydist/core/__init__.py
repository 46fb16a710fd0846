"""The pure protocol core: bytes and time in; bytes, events and deadlines out.

Nothing under this package touches sockets, clocks, threads or files;
tests/core/test_purity.py keeps it so.
"""
