"""Link state: the packets each node floods, and the database they build.

Each node originates one link-state packet (LSP): its name, a sequence
number, a remaining lifetime, the endpoint it listens on, and its
neighbours with the cost of each link. Every node keeps the newest LSP of
every origin; shortest paths (:mod:`pydist.core.spf`) are computed from them.

Flooding is reliable because links are: an LSP goes over ZeroMQ's TCP, so
it is lost only with the link, and a link that comes (back) up starts with
an exchange of *summaries* (origin and sequence of every LSP held), after
which each side sends what the other lacks. Summaries are also exchanged
periodically, a cheap repair for anything else (IS-IS's CSNPs do the same
on broadcast media). Originators refresh their LSP before its lifetime runs
out; an LSP nobody refreshes (its node is gone) ages out everywhere.

Every LSP reaches a node once per link it has, so most of what arrives is
a copy of what is held: the database keeps each LSP as it came on the
wire, and :meth:`Lsdb.duplicate` recognises a copy from its bytes, before
any decoding or signature check. The same bytes, with the lifetime patched
in (:func:`with_lifetime`), are what is flooded on. For the shortest paths
it keeps every origin's links as a map (:attr:`Lsdb.links`) and the links
that went since the last look (:attr:`Lsdb.lost`), so a route computation
copies nothing; expiries wait in a heap.

With node keys (:mod:`pydist.core.trust`) an LSP ends with its origin's
Ed25519 signature over everything but the remaining lifetime, which every
node lowers as it passes the LSP on (as IS-IS leaves it out of its
checksum); a receiver caps that lifetime at its own ``lsp_lifetime``.
"""

from __future__ import annotations

import enum
import hashlib
import heapq
import struct
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace

MAX_NAME = 255
MAX_COST = (1 << 24) - 1
MAX_LIFETIME_MS = (1 << 32) - 1
#: sequences above this are refused: an origin outbids an earlier life of
#: itself by one, so no packet we accept can push ours past 64 bits
MAX_SEQ = 1 << 62
SIGNATURE_SIZE = 64

_SEQ_LIFE = struct.Struct("!QI")
_COUNT = struct.Struct("!H")
_COST = struct.Struct("!I")
_SEQ = struct.Struct("!Q")
_LIFE = struct.Struct("!I")


class LspError(ValueError):
    """A link-state packet or summary we do not accept."""


@dataclass(frozen=True)
class Lsp:
    origin: bytes
    seq: int
    #: seconds left before the LSP expires, as of when it was encoded
    lifetime: float
    #: (neighbour name, cost), sorted by name, names unique
    neighbours: tuple[tuple[bytes, int], ...]
    #: where the origin listens, ``host:port`` (empty: not advertised)
    endpoint: bytes = b""
    #: the origin's signature of :func:`signed_part` (empty: keys are off)
    signature: bytes = b""


def encode(lsp: Lsp, lifetime: float | None = None) -> bytes:
    """The payload of an LSP frame; ``lifetime`` overrides the remaining time."""
    life = lsp.lifetime if lifetime is None else lifetime
    life_ms = min(MAX_LIFETIME_MS, max(0, round(life * 1000)))
    out = [_name(lsp.origin), _SEQ_LIFE.pack(lsp.seq, life_ms),
           _name(lsp.endpoint, empty=True), _COUNT.pack(len(lsp.neighbours))]
    for name, cost in lsp.neighbours:
        out.append(_name(name))
        out.append(_COST.pack(cost))
    out.append(lsp.signature)
    return b"".join(out)


def peek(data: bytes) -> tuple[bytes, int] | None:
    """The origin and sequence of an LSP payload, without decoding the
    rest (None if it is too short to hold them: :func:`decode` says why)."""
    size = data[0] if data else 0
    if len(data) < 1 + size + _SEQ_LIFE.size:
        return None
    (seq,) = _SEQ.unpack_from(data, 1 + size)
    return data[1:1 + size], seq


def with_lifetime(wire: bytes, origin: bytes, lifetime: float) -> bytes:
    """An encoded LSP with another remaining lifetime (which no signature covers)."""
    at = 1 + len(origin) + _SEQ.size
    life_ms = min(MAX_LIFETIME_MS, max(0, round(lifetime * 1000)))
    return b"".join((wire[:at], _LIFE.pack(life_ms), wire[at + _LIFE.size:]))


def signed_part(lsp: Lsp) -> bytes:
    """What the origin signs: the LSP without its lifetime and signature."""
    return encode(replace(lsp, signature=b""), 0)


def decode(data: bytes, max_neighbours: int, signed: bool = False) -> Lsp:
    """Parse an LSP payload (ending with a signature if ``signed``); every
    malformation raises :class:`LspError`. The signature is not checked here."""
    signature = b""
    if signed:
        if len(data) < SIGNATURE_SIZE:
            raise LspError(f"signed LSP of {len(data)} bytes")
        data, signature = data[:-SIGNATURE_SIZE], bytes(data[-SIGNATURE_SIZE:])
    reader = _Reader(data)
    origin = reader.name()
    seq, life_ms = reader.unpack(_SEQ_LIFE)
    endpoint = reader.name(empty=True)
    (count,) = reader.unpack(_COUNT)
    if count > max_neighbours:
        raise LspError(f"LSP of {origin!r} lists {count} neighbours, more than {max_neighbours}")
    neighbours = []
    for _ in range(count):
        name = reader.name()
        (cost,) = reader.unpack(_COST)
        if not 0 < cost <= MAX_COST:
            raise LspError(f"LSP of {origin!r}: cost {cost} to {name!r}")
        neighbours.append((name, cost))
    reader.end()
    if not 0 < seq <= MAX_SEQ:
        raise LspError(f"LSP of {origin!r} with sequence {seq}")
    if life_ms == 0:
        raise LspError(f"LSP of {origin!r} with no lifetime left")
    names = [n for n, _ in neighbours]
    if names != sorted(set(names)):
        raise LspError(f"LSP of {origin!r}: neighbours not sorted and unique")
    if origin in names:
        raise LspError(f"LSP of {origin!r} lists itself")
    return Lsp(origin, seq, life_ms / 1000, tuple(neighbours), endpoint, signature)


def encode_summary(entries: Iterable[tuple[bytes, int]]) -> bytes:
    items = list(entries)
    return b"".join([_COUNT.pack(len(items)),
                     *(_name(o) + _SEQ.pack(s) for o, s in items)])


def decode_summary(data: bytes, max_entries: int) -> list[tuple[bytes, int]]:
    reader = _Reader(data)
    (count,) = reader.unpack(_COUNT)
    if count > max_entries:
        raise LspError(f"summary of {count} entries, more than {max_entries}")
    items = []
    for _ in range(count):
        origin = reader.name()
        (seq,) = reader.unpack(_SEQ)
        items.append((origin, seq))
    reader.end()
    return items


class Verdict(enum.Enum):
    NEW = "new"  # installed: flood it to every other neighbour
    DUPLICATE = "duplicate"  # we hold this one: nothing to do
    STALE = "stale"  # we hold a newer one: send ours back to the sender
    OURS_NEWER = "ours_newer"  # an older life of ours is about: re-originate past it
    FULL = "full"  # a new origin, but the database is at its bound: refused


@dataclass
class Entry:
    lsp: Lsp
    expires: float
    #: the LSP as encoded on the wire (with the lifetime it came with)
    wire: bytes


class Lsdb:
    """The newest LSP of every origin, ours included; bounded."""

    def __init__(self, me: bytes, lifetime: float, max_entries: int) -> None:
        self.me = me
        self.lifetime = lifetime
        self.max_entries = max_entries
        self.entries: dict[bytes, Entry] = {}
        self.seq = 0
        #: every origin's links as it lists them: neighbour -> cost
        self.links: dict[bytes, dict[bytes, int]] = {}
        #: links (the two names, smaller first) some origin stopped listing,
        #: or whose origin aged out, since the router last cleared this
        self.lost: set[tuple[bytes, bytes]] = set()
        #: (expiry, origin) of the others' LSPs; an entry refreshed since
        #: leaves a stale pair, skipped when it comes up
        self._expiries: list[tuple[float, bytes]] = []

    def __len__(self) -> int:
        return len(self.entries)

    def get(self, origin: bytes) -> Lsp | None:
        entry = self.entries.get(origin)
        return None if entry is None else entry.lsp

    def lsps(self) -> dict[bytes, Lsp]:
        return {origin: entry.lsp for origin, entry in self.entries.items()}

    def originate(self, neighbours: Mapping[bytes, int], endpoint: bytes, now: float,
                  at_least: int = 0, sign: Callable[[bytes], bytes] | None = None) -> Lsp:
        """A new LSP of ours (signed with ``sign``), installed; the caller floods it."""
        self.seq = max(self.seq, at_least) + 1
        lsp = Lsp(self.me, self.seq, self.lifetime, tuple(sorted(neighbours.items())), endpoint)
        if sign is not None:
            lsp = replace(lsp, signature=sign(signed_part(lsp)))
        self._install(lsp, now + self.lifetime, encode(lsp))
        return lsp

    def duplicate(self, data: bytes) -> bool:
        """Whether an LSP payload is, byte for byte but its lifetime, the one
        held for its origin: then it needs no decoding, no signature check
        and no flooding (what :meth:`receive` would say of it, but for its
        origin's remaining lifetime, which a copy does not extend)."""
        head = peek(data)
        if head is None:
            return False
        held = self.entries.get(head[0])
        if held is None or held.lsp.seq != head[1]:
            return False
        wire, at = held.wire, 1 + len(head[0]) + _SEQ.size
        return (len(wire) == len(data) and wire[:at] == data[:at]
                and wire[at + _LIFE.size:] == data[at + _LIFE.size:])

    def receive(self, lsp: Lsp, now: float, wire: bytes | None = None) -> Verdict:
        """Install ``lsp`` (as it came: ``wire``) if it is newer than the one held."""
        held = self.entries.get(lsp.origin)
        if lsp.origin == self.me:
            if lsp.seq > self.seq or (
                    held and lsp.seq == self.seq and _rank(lsp) != _rank(held.lsp)):
                return Verdict.OURS_NEWER  # a former life of ours is still about
            return Verdict.DUPLICATE if lsp.seq == self.seq else Verdict.STALE
        if held is not None:
            # the sequence decides; only at equal sequences is the content hashed
            if lsp.seq < held.lsp.seq:
                return Verdict.STALE
            if lsp.seq == held.lsp.seq:
                new, old = _rank(lsp), _rank(held.lsp)
                if new == old:
                    return Verdict.DUPLICATE
                if new < old:
                    return Verdict.STALE
        elif len(self.entries) >= self.max_entries:
            return Verdict.FULL
        expires = now + lsp.lifetime
        self._install(lsp, expires, encode(lsp) if wire is None else wire)
        heapq.heappush(self._expiries, (expires, lsp.origin))
        return Verdict.NEW

    def _install(self, lsp: Lsp, expires: float, wire: bytes) -> None:
        origin = lsp.origin
        self.entries[origin] = Entry(lsp, expires, wire)
        links = dict(lsp.neighbours)
        old = self.links.get(origin)
        if old is not None:
            self._lose(origin, (n for n in old if n not in links))
        self.links[origin] = links

    def remaining(self, origin: bytes, now: float) -> float:
        return max(0.0, self.entries[origin].expires - now)

    def summary(self) -> list[tuple[bytes, int]]:
        return [(origin, entry.lsp.seq) for origin, entry in self.entries.items()]

    def compare(self, summary: Iterable[tuple[bytes, int]]) -> tuple[list[bytes], bool]:
        """Against a neighbour's summary: the origins whose LSPs we should
        send it (ours are newer, or it lacks them), and whether it holds
        anything newer than we do (then it should hear our summary)."""
        theirs = dict(summary)
        send = [origin for origin, entry in self.entries.items()
                if theirs.get(origin, 0) < entry.lsp.seq]
        behind = any(seq > (self.entries[o].lsp.seq if o in self.entries else 0)
                     for o, seq in theirs.items() if o != self.me)
        return send, behind or theirs.get(self.me, 0) > self.seq

    def expire(self, now: float) -> list[bytes]:
        """Drop the LSPs nobody refreshed (in the order they came); ours is
        never dropped."""
        due = self._expiries
        gone: set[bytes] = set()
        while due and due[0][0] <= now:
            _, origin = heapq.heappop(due)
            entry = self.entries.get(origin)
            if entry is not None and entry.expires <= now and origin != self.me:
                gone.add(origin)
        if not gone:
            return []
        ordered = [o for o in self.entries if o in gone]
        for origin in ordered:
            del self.entries[origin]
            self._lose(origin, self.links.pop(origin, ()))
        return ordered

    def deadline(self) -> float:
        """When the next LSP of another origin expires."""
        due, entries = self._expiries, self.entries
        while due:
            at, origin = due[0]
            entry = entries.get(origin)
            if entry is not None and entry.expires == at and origin != self.me:
                return at
            heapq.heappop(due)  # refreshed or gone since: stale
        return float("inf")

    def _lose(self, origin: bytes, names: Iterable[bytes]) -> None:
        for name in names:
            self.lost.add((origin, name) if origin < name else (name, origin))


def _rank(lsp: Lsp) -> tuple[int, bytes]:
    """Which of two LSPs of one origin is newer: the sequence decides, and at
    equal sequences (a node restarted and counts again from where an earlier
    life got to) a digest of the content, as IS-IS does with its checksum, so
    that every node keeps the same one and the origin, seeing a copy that is
    not its own, outbids it."""
    content = repr((lsp.neighbours, lsp.endpoint)).encode()
    return lsp.seq, hashlib.blake2b(content, digest_size=8).digest()


def _name(value: bytes, empty: bool = False) -> bytes:
    if len(value) > MAX_NAME or (not value and not empty):
        raise LspError(f"name of {len(value)} bytes")
    return bytes((len(value),)) + value


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = bytes(data)
        self.pos = 0

    def take(self, size: int) -> bytes:
        if self.pos + size > len(self.data):
            raise LspError(f"truncated at byte {self.pos} of {len(self.data)}")
        chunk = self.data[self.pos:self.pos + size]
        self.pos += size
        return chunk

    def name(self, empty: bool = False) -> bytes:
        value = self.take(self.take(1)[0])
        if not value and not empty:
            raise LspError(f"empty name at byte {self.pos}")
        return value

    def unpack(self, layout: struct.Struct) -> tuple[int, ...]:
        return layout.unpack(self.take(layout.size))

    def end(self) -> None:
        if self.pos != len(self.data):
            raise LspError(f"{len(self.data) - self.pos} trailing bytes")
