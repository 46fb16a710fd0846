"""Ceilings: each stage a large message crosses, alone, beside the carriers.

A message from one node to another over py_dist crosses three stages:
BEAM -> Python (the sender's port pipe), Python -> Python (ZeroMQ over
TCP) and Python -> BEAM (the receiver's pipe). Each is measured here with
nothing of py_dist in it (a bare program at the other end that only reads
or writes), over the stdio port py_dist uses and over a Unix domain
socket, in the same run as the carriers' own figures, so the carrier can
be read as a fraction of the slowest stage on its path: what is lost in
how the stages are joined, not in the stages. Each figure comes with the
CPU the whole machine spent per MiB meanwhile: on two cores the stages of
one message run at once and share them, so their costs add up.

Not a test: numbers from this shared, noisy 2-core machine vary between
runs; compare the figures of one run.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

import zmq

from pydist_tools.bench import bound_program
from pydist_tools.cluster import Cluster, ErlNode
from pydist_tools.measure import Case, Measure, Rows, alternate, carrier_pairs

MIB = 1 << 20
#: bytes moved per stage and packet size: enough for a few hundred ms at GB/s
VOLUME = 1 << 30
SIZES = (64 << 10, MIB)

#: the bare program at the Python end of a stage: reads or writes {packet, 4}
#: packets and nothing else (argv: mode, size, count[, socket path])
PROGRAM = r"""
import fcntl, os, socket, struct, sys
mode, size, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
total = count * (size + 4)

def tell(word):
    os.write(1, struct.pack(">I", len(word)) + word)

for fd in (0, 1):
    try:
        fcntl.fcntl(fd, 1031, 1 << 20)  # F_SETPIPE_SZ, as the port program does
    except OSError:
        pass

def drain(read_into):
    buf = memoryview(bytearray(4 << 20))
    got = 0
    while got < total:
        k = read_into(buf)
        if not k:
            sys.exit("short read")
        got += k

def flood(writev):
    head, body = struct.pack(">I", size), b"\x07" * size
    batch = max(1, min(256, (4 << 20) // (size + 4)))
    left = count
    while left:
        n = min(batch, left)
        parts = [memoryview(p) for _ in range(n) for p in (head, body)]
        while parts:
            k = writev(parts)
            while parts and k >= len(parts[0]):
                k -= len(parts[0])
                parts.pop(0)
            if k:
                parts[0] = parts[0][k:]
        left -= n

if mode == "stdin":
    drain(lambda b: os.readv(0, [b]))
    tell(b"done")
elif mode == "stdout":
    tell(b"ready")
    os.read(0, 6)
    flood(lambda parts: os.writev(1, parts))
else:
    path = sys.argv[4]
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(path)
    srv.listen(1)
    tell(b"ready")
    conn, _ = srv.accept()
    os.unlink(path)
    os.rmdir(os.path.dirname(path))
    for opt in (socket.SO_RCVBUF, socket.SO_SNDBUF):
        conn.setsockopt(socket.SOL_SOCKET, opt, 4 << 20)
    if mode == "sock_in":
        drain(conn.recv_into)
        tell(b"done")
    else:
        os.read(0, 6)
        flood(conn.sendmsg)
    conn.close()
"""

#: the receiving end of the ZeroMQ stage: a ROUTER that says "start" after
#: the first message and "done" after ``count`` more
ZMQ_SINK = """
import sys, zmq
count = int(sys.argv[1])
sock = zmq.Context().socket(zmq.ROUTER)
print(sock.bind_to_random_port("tcp://127.0.0.1"), flush=True)
ident, _ = sock.recv_multipart()
sock.send_multipart([ident, b"start"])
for _ in range(count):
    sock.recv_multipart(copy=False)
sock.send_multipart([ident, b"done"])
"""

Stage = tuple[str, str, int]  # what, how (pd_ceilings function or "zmq"), packet size
Ceiling = tuple[float, float]  # MB/s, and the machine's CPU per MiB meanwhile (ms)


def stages() -> list[Stage]:
    out: list[Stage] = []
    for size in SIZES:
        out += [("BEAM -> Python, stdio port", "to_port", size),
                ("BEAM -> Python, Unix socket", "to_socket", size),
                ("Python -> Python, ZeroMQ", "zmq", size),
                ("Python -> BEAM, stdio port", "from_port", size),
                ("Python -> BEAM, Unix socket", "from_socket", size)]
    return out


def _load(node: ErlNode) -> None:
    src = Path(__file__).with_name("pd_ceilings.erl")
    loaded = node.eval(f'{{ok, M, B}} = compile:file("{src}", [binary, report]), '
                       f'{{module, M}} = code:load_binary(M, "{src}", B), ok.')
    assert loaded == "ok", loaded


def _erlang_stage(node: ErlNode, function: str, size: int) -> float:
    count = max(1, VOLUME // size)
    script = node.cluster.dir / "ceilings_program.py"
    script.write_text(PROGRAM)
    micros = node.eval(f'pd_ceilings:{function}("{sys.executable}", "{script}", {size}, '
                       f'{count}).', timeout=300)
    return float(count * size / micros)  # bytes per microsecond = MB/s


def _zmq_stage(size: int) -> float:
    count = max(1, VOLUME // size)
    sink, port = bound_program(ZMQ_SINK, str(count))
    ctx = zmq.Context()
    try:
        sock = ctx.socket(zmq.DEALER)
        sock.connect(f"tcp://127.0.0.1:{port}")
        sock.send(b"hi")
        assert sock.recv() == b"start"
        payload = b"\x07" * size
        start = time.perf_counter()
        for _ in range(count):
            sock.send(payload, copy=False)
        assert sock.recv() == b"done"
        return count * size / ((time.perf_counter() - start) * 1e6)
    finally:
        ctx.destroy(linger=0)
        sink.wait(timeout=30)


def run(seconds: float = 2.0, rounds: int = 3) -> tuple[dict[Stage, Ceiling], Rows]:
    """Medians of ``rounds`` runs of each stage, and of the carriers' large
    message cases, all in one cluster."""
    samples: dict[Stage, list[Ceiling]] = {s: [] for s in stages()}
    with Cluster() as cluster:
        node = cluster.start("ceilings", proto="inet_tcp")
        _load(node)
        for _ in range(rounds):
            for stage in samples:
                _, how, size = stage
                before = machine_busy()
                mbs = _zmq_stage(size) if how == "zmq" else _erlang_stage(node, how, size)
                samples[stage].append((mbs, _per_mib(machine_busy() - before, VOLUME)))
        rows = alternate(LARGE, carrier_pairs(cluster, "ceil"), seconds, rounds)
    return {s: (float(statistics.median(m for m, _ in v)),
                float(statistics.median(c for _, c in v))) for s, v in samples.items()}, rows


def table(ceilings: dict[Stage, Ceiling], rows: Rows) -> str:
    lines = ["| stage, alone | packets | MB/s | CPU per MiB, ms |", "|---|---|---:|---:|"]
    for (what, _, size), (mbs, cpu) in ceilings.items():
        lines.append(f"| {what} | {_size(size)} | {mbs:,.0f} | {cpu:.2f} |")
    # py_dist's path: the stdio pipe in, ZeroMQ, the stdio pipe out
    path = ("to_port", "zmq", "from_port")
    on_path = {size: min(mbs for (_, how, s), (mbs, _) in ceilings.items()
                         if s == size and how in path)
               for size in SIZES}
    path_cpu = {size: sum(cpu for (_, how, s), (_, cpu) in ceilings.items()
                          if s == size and how in path)
                for size in SIZES}
    floor = min(on_path.values())
    by_name = {case.name: values for case, values in rows}
    lines += ["", "| carrier, whole path | stock MB/s | py_dist MB/s | py / stock | "
              "py / slowest stage on its path | stock CPU per MiB, ms | "
              "py_dist CPU per MiB, ms |", "|---|---:|---:|---:|---:|---:|---:|"]
    for case, by_tag in rows:
        if case.unit != "MB/s":
            continue
        stock, py = by_tag.get("inet_tcp", 0.0), by_tag.get("py", 0.0)
        cpu_of = by_name.get(f"{case.name}, CPU per MiB", {})
        lines.append(f"| {case.name} | {stock:,.0f} | {py:,.0f} | "
                     f"{py / stock if stock else 0:.2f}x | {py / floor:.2f} | "
                     f"{cpu_of.get('inet_tcp', 0.0):.2f} | {cpu_of.get('py', 0.0):.2f} |")
    per_size = ", ".join(f"{_size(s)}: {v:,.0f}" for s, v in on_path.items())
    cpu_sizes = ", ".join(f"{_size(s)} packets: {v:.2f} ms" for s, v in path_cpu.items())
    lines.append(f"\nslowest stage on py_dist's path (stdio in, ZeroMQ, stdio out): "
                 f"{floor:,.0f} MB/s ({per_size}); CPU per MiB of those three stages "
                 f"together, whole machine: {cpu_sizes}")
    return "\n".join(lines)


def _size(size: int) -> str:
    return f"{size >> 20} MiB" if size >= MIB else f"{size >> 10} KiB"


def machine_busy() -> float:
    """Seconds of CPU the whole machine has spent busy (not idle, waiting
    or stolen by the hypervisor) since boot: what a stage costs, whichever
    process or kernel thread pays it."""
    with open("/proc/stat") as f:
        user, nice, system, _idle, _iowait, irq, softirq = map(int, f.readline().split()[1:8])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def _per_mib(cpu_seconds: float, nbytes: float) -> float:
    return cpu_seconds * 1e3 / (nbytes / MIB)


def _large(size: int) -> Measure:
    """A stream of ``size``-byte messages: MB/s, and the machine's CPU per
    MiB while it ran."""
    def measure(src: ErlNode, dst: ErlNode, seconds: float) -> list[float]:
        src.eval(f"persistent_term:put(sink, rpc:call('{dst.node}', pd_agent, sink, [])).")
        before = machine_busy()
        _, nbytes, micros = src.eval(f"pd_agent:throughput(persistent_term:get(sink), {size}, "
                                     f"1, {int(seconds * 1000)}).", timeout=seconds + 120)
        return [nbytes / micros, _per_mib(machine_busy() - before, nbytes)]
    return measure


LARGE: list[tuple[list[Case], Measure]] = [
    ([Case(name, "MB/s", True), Case(f"{name}, CPU per MiB", "ms", False)], _large(size))
    for name, size in (("1 MiB msgs", MIB), ("64 MiB msgs", 64 * MIB))]
