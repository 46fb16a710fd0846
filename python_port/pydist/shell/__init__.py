"""The I/O shell: the stdio pipe, ZeroMQ sockets and the clock, wired to the core."""
