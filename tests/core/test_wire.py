"""The port wire constants: one Erlang copy, one Python copy, and they agree.

``erlang/include/py_dist.hrl`` is parsed here (not trusted to match by
eye), so a constant changed on one side only fails this test.
"""

from __future__ import annotations

import ast
import hashlib
import re
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from pydist.core import outbox, wire

ROOT = Path(__file__).resolve().parents[2]
HRL = ROOT / "erlang" / "include" / "py_dist.hrl"
CORE = ROOT / "python_port" / "pydist" / "core"
#: the modules that close channels and links
NODE_PY = (CORE / "node.py", CORE / "delivery.py", CORE / "neighbours.py")

_DEFINE = re.compile(r"-define\(\s*([A-Z_][A-Za-z0-9_]*)\s*,(.*?)\)\s*\.", re.DOTALL)


def _strip_comments(text: str) -> str:
    return "\n".join(line.split("%", 1)[0] for line in text.splitlines())


def _erlang_int(text: str) -> int:
    """An Erlang integer literal: ``42`` or ``Base#Digits`` (``16#80000000``)."""
    text = text.strip().replace("_", "")
    base, sep, digits = text.partition("#")
    if sep:
        return int(digits, int(base))
    return int(text)


def _erlang_atoms(text: str) -> list[str]:
    text = text.strip()
    assert text.startswith("[") and text.endswith("]"), text
    atoms = [a.strip() for a in text[1:-1].split(",")]
    for atom in atoms:
        assert re.fullmatch(r"[a-z][A-Za-z0-9_@]*", atom), atom
    return atoms


def _defines() -> dict[str, str]:
    return {m.group(1): m.group(2).strip()
            for m in _DEFINE.finditer(_strip_comments(HRL.read_text()))}


def test_parser_reads_erlang_literals() -> None:
    # the parser itself must be right, or the agreement tests prove nothing
    assert _erlang_int("16#80000000") == 2**31
    assert _erlang_int("2#101") == 5
    assert _erlang_int(" 7 ") == 7
    assert _erlang_atoms("[a, b_c,\n  d]") == ["a", "b_c", "d"]


def test_hrl_defines_every_port_constant() -> None:
    assert {"PY_DIST_OP_CTRL", "PY_DIST_OP_DATA", "PY_DIST_PY_CHAN_BASE",
            "PY_DIST_CLOSE_REASONS"} <= set(_defines())


def test_op_bytes_agree() -> None:
    d = _defines()
    assert _erlang_int(d["PY_DIST_OP_CTRL"]) == wire.OP_CTRL
    assert _erlang_int(d["PY_DIST_OP_DATA"]) == wire.OP_DATA
    assert _erlang_int(d["PY_DIST_OP_FLOWS"]) == wire.OP_FLOWS
    assert _erlang_int(d["PY_DIST_OP_LANE"]) == wire.OP_LANE
    assert _erlang_int(d["PY_DIST_OP_DELIVER"]) == wire.OP_DELIVER
    # BEAM -> Python ops are distinct; OP_DELIVER goes the other way only
    to_python = (wire.OP_CTRL, wire.OP_DATA, wire.OP_FLOWS, wire.OP_LANE)
    assert len(set(to_python)) == len(to_python)
    assert wire.OP_DELIVER not in (wire.OP_CTRL, wire.OP_DATA)
    assert all(0 <= op < 256 for op in (*to_python, wire.OP_DELIVER))


def test_flows_and_lanes_agree() -> None:
    d = _defines()
    assert _erlang_int(d["PY_DIST_FLOW_BARRIER"]) == outbox.BARRIER
    assert _erlang_int(d["PY_DIST_FLOW_TICK"]) == outbox.TICK
    assert _erlang_int(d["PY_DIST_LANE_UNORDERED"]) == wire.UNORDERED
    assert _erlang_int(d["PY_DIST_LANE_UNRELIABLE"]) == wire.UNRELIABLE
    assert _erlang_int(d["PY_DIST_LANE_REALTIME"]) == wire.REALTIME


def test_py_chan_base_agrees() -> None:
    assert _erlang_int(_defines()["PY_DIST_PY_CHAN_BASE"]) == wire.PY_CHAN_BASE
    # channel ids are 32 bits on the pipe; both halves of the space are usable
    assert 0 < wire.PY_CHAN_BASE < 2**32


def test_close_reasons_agree() -> None:
    erl = _erlang_atoms(_defines()["PY_DIST_CLOSE_REASONS"])
    assert sorted(erl) == sorted(wire.CLOSE_REASONS)
    assert len(set(erl)) == len(erl)
    assert len(set(wire.CLOSE_REASONS)) == len(wire.CLOSE_REASONS)


def test_node_reports_only_known_close_reasons() -> None:
    """Every literal reason the node hands to the BEAM is one Erlang knows.

    Erlang decodes control terms with ``[safe]``: an atom outside the list
    would make the whole control message undecodable.
    """
    found = set()
    for call in (n for path in NODE_PY for n in ast.walk(ast.parse(path.read_text()))):
        if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)):
            continue
        if call.func.attr not in ("tell_closed", "link_down", "close"):
            continue
        for arg in call.args:
            for const in ast.walk(arg):
                if isinstance(const, ast.Constant) and isinstance(const.value, str):
                    found.add(const.value)
    assert found, "no close reasons found in the core: has the helper been renamed?"
    assert found <= set(wire.CLOSE_REASONS), found - set(wire.CLOSE_REASONS)


def test_port_prefix_layouts() -> None:
    # <<Len:32, Op, Chan:32>> and <<Op, Chan:32>>, as the .hrl comment draws them
    assert wire.PORT_DATA_PREFIX.size == 9
    assert wire.DATA_HEADER.size == 5
    assert wire.PORT_DATA_PREFIX.pack(10, wire.OP_DATA, 0x01020304) == (
        b"\x00\x00\x00\x0a" + bytes([wire.OP_DATA]) + b"\x01\x02\x03\x04")
    # version, kind, flags, hops, lane, 3 pad, epoch:32, src:64, dst:64, seq:64,
    # chunk index:32, chunk count:32
    assert wire.HEADER_SIZE == 5 + 3 + 4 + 8 + 8 + 8 + 4 + 4


# --- node_id ---------------------------------------------------------------

names = st.binary(min_size=1, max_size=64)


@settings(max_examples=200, deadline=None)
@given(names)
def test_node_id_is_64_bit_and_deterministic(name: bytes) -> None:
    first = wire.node_id(name)
    assert isinstance(first, int)
    assert 0 <= first < 2**64
    assert wire.node_id(bytes(name)) == first
    # the docstring's promise: 64 bits of BLAKE2b of the name, big-endian
    assert first == int.from_bytes(hashlib.blake2b(name, digest_size=8).digest(), "big")


@settings(max_examples=200, deadline=None)
@given(st.lists(names, min_size=2, max_size=50, unique=True))
def test_node_id_distinct_for_distinct_names(sample: list[bytes]) -> None:
    ids = [wire.node_id(n) for n in sample]
    assert len(set(ids)) == len(ids)


def test_node_id_uses_the_whole_range() -> None:
    # not, say, 32 bits zero-extended: some id of a small sample has a high bit set
    ids = [wire.node_id(b"n%d@host" % i) for i in range(64)]
    assert max(ids) >= 2**63
    assert any(i >> 32 for i in ids) and any(i & 0xFFFFFFFF for i in ids)


def test_the_hop_limit_is_where_nodes_in_the_middle_change_it() -> None:
    header = wire.HEADER.pack(wire.VERSION, 1, 0, 77, 0, 0, 0, 0, 0, 0, 1)
    assert header[wire.HOPS_OFFSET] == 77
