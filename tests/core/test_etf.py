"""Control terms in the Erlang external term format."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from pydist.core import etf
from pydist.core.etf import Atom, EtfError

FAST = settings(max_examples=200, deadline=None)

# true, false and undefined are special in the codec (see the tests below)
SPECIAL_ATOMS = ("true", "false", "undefined")
atoms = st.text(min_size=0, max_size=255).filter(lambda s: s not in SPECIAL_ATOMS).map(Atom)
ints = st.one_of(
    st.integers(-(2**200), 2**200),
    st.sampled_from([0, 255, 256, 2**31 - 1, 2**31, -(2**31), -(2**31) - 1,
                     2**32, 2**63, 2**64, -(2**64), -1]),
)
leaves = st.one_of(atoms, st.binary(max_size=64), ints)
keys = st.one_of(atoms, st.binary(max_size=16), st.integers(-(2**40), 2**40))
terms = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5).map(tuple),
        st.lists(inner, max_size=5),
        st.dictionaries(keys, inner, max_size=4),
    ),
    max_leaves=20,
)


def _same(a: Any, b: Any) -> bool:
    """Equal, and of the same Python types all the way down (Atom is not str)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, (tuple, list)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        if len(a) != len(b):
            return False
        bk = {(type(k), k): k for k in b}
        return all((type(k), k) in bk and _same(v, b[bk[(type(k), k)]]) for k, v in a.items())
    return bool(a == b)


def test_same_helper_tells_types_apart() -> None:
    assert not _same(Atom("a"), "a")
    assert not _same((1,), [1])
    assert not _same({Atom("k"): 1}, {"k": 1})
    assert _same({Atom("k"): [b"x"]}, {Atom("k"): [b"x"]})


@FAST
@given(terms)
def test_round_trip(term: Any) -> None:
    data = etf.encode(term)
    assert isinstance(data, bytes) and data[0] == 131
    assert _same(etf.decode(data), term)


@FAST
@given(atoms)
def test_atom_round_trip(atom: Atom) -> None:
    got = etf.decode(etf.encode(atom))
    assert type(got) is Atom and got == atom


@pytest.mark.parametrize("n", [0, 1, -1, 255, 256, 2**31 - 1, 2**31, 2**31 + 1, 2**32,
                               2**63, 2**64 + 5, -(2**31), -(2**31) - 1, -(2**63), -(10**40)])
def test_int_round_trip(n: int) -> None:
    got = etf.decode(etf.encode(n))
    assert type(got) is int and got == n


def test_bytes_tuples_lists_dicts() -> None:
    term: dict[Any, Any] = {Atom("a"): b"", b"k": [1, 2, 3], 7: (Atom("ok"), b"\x00\xff", [])}
    got = etf.decode(etf.encode(term))
    assert _same(got, term)
    assert _same(etf.decode(etf.encode(())), ())
    assert _same(etf.decode(etf.encode([])), [])
    assert _same(etf.decode(etf.encode(bytearray(b"xy"))), b"xy")


def test_bools_are_the_atoms_true_and_false() -> None:
    assert etf.encode(True) == etf.encode(Atom("true"))
    assert etf.decode(etf.encode(Atom("true"))) is True
    assert etf.decode(etf.encode(False)) is False


def test_undefined_atom_round_trips_as_atom() -> None:
    # erlang-py renders the atom undefined as None; etf maps it back
    got = etf.decode(etf.encode(Atom("undefined")))
    assert type(got) is Atom and got == "undefined"


def test_str_is_sent_as_a_utf8_binary() -> None:
    assert _same(etf.decode(etf.encode("h\u00e9")), "h\u00e9".encode())
    assert _same(etf.decode(etf.encode((Atom("k"), "v"))), (Atom("k"), b"v"))


@pytest.mark.parametrize("value", [object(), {1, 2}, 1j, frozenset()])
def test_unencodable_values(value: Any) -> None:
    with pytest.raises(EtfError):
        etf.encode(value)


# --- garbage -----------------------------------------------------------------

@FAST
@given(st.one_of(st.binary(max_size=200), st.binary(max_size=200).map(lambda b: b"\x83" + b))
       )
@example(b"")
@example(b"\x83")
@example(b"\x83h\x02a\x01")  # tuple short of an element
@example(b"\x83M\x00\x00\x00\x01\x03\xff")  # a 3-bit bitstring
@example(b"\x83d\x00\x02\xff\xfe")  # latin-1 atom that is not UTF-8
@example(b"\x83w\x02\xff\xfe")  # UTF-8 atom that is not UTF-8
@example(b"\x83t\x00\x00\x00\x01l\x00\x00\x00\x01a\x01ja\x02")  # map with a list key
def test_garbage_raises_etf_error_only(data: bytes) -> None:
    try:
        etf.decode(data)
    except EtfError:
        pass


@pytest.mark.parametrize("data", [b"", b"\x00", b"\x83", b"\x84a\x01", b"\x83a\x01\x00",
                                  b"\x83h\x02a\x01", b"\x83M\x00\x00\x00\x01\x03\xff",
                                  b"\x83w\x02\xff\xfe"])
def test_known_garbage_is_refused(data: bytes) -> None:
    with pytest.raises(EtfError):
        etf.decode(data)


def test_etf_error_is_a_value_error() -> None:
    assert issubclass(EtfError, ValueError)


def test_corrupt_compressed_term_is_an_etf_error() -> None:
    # erlang-py raises zlib.error here; etf must turn it into EtfError
    with pytest.raises(EtfError):
        etf.decode(b"\x83P\x00\x00\x00\x05garbage")


def test_deeply_nested_term_is_an_etf_error() -> None:
    # erlang-py decodes recursively: RecursionError must become EtfError
    with pytest.raises(EtfError):
        etf.decode(b"\x83" + b"h\x01" * 5000 + b"a\x01")


# --- bytes a real OTP 25 node wrote ------------------------------------------
# Generated with OTP 25 by
#   erl -noshell -eval 'io:format("~w~n",[term_to_binary(X)]), halt().'
# (pid and reference also from a node started with -sname etfgen8374).

# #{a => <<"x">>, <<"k">> => [1,2], 3 => {ok, 4}}
OTP_MAP = bytes([131, 116, 0, 0, 0, 3, 97, 3, 104, 2, 100, 0, 2, 111, 107, 97, 4, 100, 0, 1,
                 97, 109, 0, 0, 0, 1, 120, 109, 0, 0, 0, 1, 107, 107, 0, 2, 1, 2])
# make_ref() on nonode@nohost (NEWER_REFERENCE_EXT)
OTP_REF = bytes([131, 90, 0, 3, 100, 0, 13, 110, 111, 110, 111, 100, 101, 64, 110, 111, 104,
                 111, 115, 116, 0, 0, 0, 0, 0, 2, 207, 190, 227, 44, 0, 1, 50, 87, 112, 181])
# self() on nonode@nohost (NEW_PID_EXT)
OTP_PID = bytes([131, 88, 100, 0, 13, 110, 111, 110, 111, 100, 101, 64, 110, 111, 104, 111,
                 115, 116, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0])
# self() and make_ref() on etfgen8374@vm
OTP_PID_NAMED = bytes([131, 88, 100, 0, 13, 101, 116, 102, 103, 101, 110, 56, 51, 55, 52, 64,
                       118, 109, 0, 0, 0, 9, 0, 0, 0, 0, 107, 6, 244, 17])
OTP_REF_NAMED = bytes([131, 90, 0, 3, 100, 0, 13, 101, 116, 102, 103, 101, 110, 56, 51, 55,
                       52, 64, 118, 109, 107, 6, 244, 17, 0, 3, 175, 211, 211, 52, 0, 2, 47,
                       191, 115, 231])
# hello_world
OTP_ATOM = bytes([131, 100, 0, 11, 104, 101, 108, 108, 111, 95, 119, 111, 114, 108, 100])
# <<1,2,3,255,0>>
OTP_BINARY = bytes([131, 109, 0, 0, 0, 5, 1, 2, 3, 255, 0])
# "abc" (STRING_EXT) and [1000, 2000] (LIST_EXT)
OTP_STRING = bytes([131, 107, 0, 3, 97, 98, 99])
OTP_INT_LIST = bytes([131, 108, 0, 0, 0, 2, 98, 0, 0, 3, 232, 98, 0, 0, 7, 208, 106])
# term_to_binary({lists:duplicate(40, <<"ab">>), ok}, [compressed])
OTP_COMPRESSED = bytes([131, 80, 0, 0, 1, 37, 120, 156, 203, 96, 202, 97, 96, 96, 208, 200, 5,
                        18, 76, 137, 73, 163, 20, 26, 149, 149, 194, 192, 148, 159, 13, 0, 108,
                        132, 50, 121])


def test_otp_map() -> None:
    got = etf.decode(OTP_MAP)
    # strings (lists of small ints) arrive as bytes, as etf.py documents
    assert _same(got, {Atom("a"): b"x", b"k": b"\x01\x02", 3: (Atom("ok"), 4)})


def test_otp_atom_and_binary() -> None:
    got = etf.decode(OTP_ATOM)
    assert type(got) is Atom and got == "hello_world"
    assert _same(etf.decode(OTP_BINARY), b"\x01\x02\x03\xff\x00")
    assert _same(etf.decode(OTP_STRING), b"abc")
    assert _same(etf.decode(OTP_INT_LIST), [1000, 2000])
    assert _same(etf.decode(OTP_COMPRESSED), ([b"ab"] * 40, Atom("ok")))


@pytest.mark.parametrize("data", [OTP_REF, OTP_PID, OTP_PID_NAMED, OTP_REF_NAMED])
def test_otp_pids_and_refs_decode(data: bytes) -> None:
    got = etf.decode(data)
    assert got is not None
    assert not isinstance(got, (Atom, bytes, dict, list, tuple, int))
    # and inside a control-like tuple, the rest is still plain Python values
    wrapped = b"\x83h\x02d\x00\x02ok" + data[1:]
    tag, value = etf.decode(wrapped)
    assert type(tag) is Atom and tag == "ok"
    assert type(value) is type(got)
