"""The one place that knows the Erlang external term format codec.

Control messages between the BEAM and Python are small Erlang terms. The
rest of the code sees plain Python values: atoms are :class:`Atom`
(a ``str``), binaries are ``bytes``, tuples are tuples, integers are ints.
"""

from __future__ import annotations

from typing import Any

import erlang as _erlang

# erlang-py ships no type information, and mypy run from the repository
# root mistakes the erlang/ source folder for a namespace package.
erlang: Any = _erlang


class EtfError(ValueError):
    """A control message that is not a term we understand."""


class Atom(str):
    """An Erlang atom on the Python side."""

    __slots__ = ()


def encode(term: Any) -> bytes:
    return bytes(erlang.term_to_binary(_to_erlang(term)))


def decode(data: bytes) -> Any:
    try:
        return _from_erlang(erlang.binary_to_term(bytes(data)))
    except EtfError:
        raise
    except Exception as exc:  # the codec's failures are many and undocumented
        raise EtfError(f"bad control term: {type(exc).__name__}: {exc}") from exc


def _to_erlang(term: Any) -> Any:
    if term is None:
        return erlang.OtpErlangAtom("undefined")
    if isinstance(term, Atom):
        return erlang.OtpErlangAtom(str(term))
    if isinstance(term, (bytes, bytearray)):
        return erlang.OtpErlangBinary(bytes(term))
    if isinstance(term, str):
        return erlang.OtpErlangBinary(term.encode())
    if isinstance(term, tuple):
        return tuple(_to_erlang(t) for t in term)
    if isinstance(term, list):
        return [_to_erlang(t) for t in term]
    if isinstance(term, dict):
        return {_to_erlang(k): _to_erlang(v) for k, v in term.items()}
    if isinstance(term, bool):
        return erlang.OtpErlangAtom("true" if term else "false")
    if isinstance(term, (int, float)):
        return term
    raise EtfError(f"cannot encode {type(term).__name__}")


def _from_erlang(term: Any) -> Any:
    if isinstance(term, erlang.OtpErlangAtom):
        value = term.value
        return Atom(value.decode("utf-8") if isinstance(value, bytes) else value)
    if isinstance(term, erlang.OtpErlangBinary):
        if term.bits != 8:
            raise EtfError("bitstrings are not control data")
        return bytes(term.value)
    if isinstance(term, tuple):
        return tuple(_from_erlang(t) for t in term)
    if isinstance(term, list):
        return [_from_erlang(t) for t in term]
    if isinstance(term, dict):
        return {_from_erlang(k): _from_erlang(v) for k, v in term.items()}
    if term is None:  # erlang-py's rendering of the atom undefined
        return Atom("undefined")
    # strings (lists of small ints) arrive as bytes; ints and floats as is
    return term
