"""The node's one way out: what the shell is to do after an input.

:meth:`pydist.core.node.Node.take_output` hands the shell an
:class:`Output` after every input it fed (a port packet, a link message,
the time). The shell carries it out in this order: links dialled
(:class:`Dial`) before anything is sent on them, then the messages for
links, then frames in transit, then links hung up (:class:`HangUp`,
:class:`Forget`) after their last words are out, then the bytes for the
BEAM.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pydist.core.channels import LinkKey

Out = bytes | memoryview


@dataclass(frozen=True, slots=True)
class Dial:
    """Connect a socket for link ``key`` (this node dials) to ``endpoint``."""

    key: int
    endpoint: str


@dataclass(frozen=True, slots=True)
class HangUp:
    """Close the socket of link ``key``, which this node dialled."""

    key: int


@dataclass(frozen=True, slots=True)
class Forget:
    """Drop what waits for link ``key``, which a neighbour dialled: the
    connection is the neighbour's to close."""

    key: bytes


Command = Dial | HangUp | Forget


@dataclass(slots=True)
class Output:
    """Everything the node asked for since the shell last took it."""

    #: bytes for the BEAM, in order
    port: list[Out] = field(default_factory=list)
    #: messages for links: (link, the message's parts)
    links: list[tuple[LinkKey, list[Out]]] = field(default_factory=list)
    #: frames forwarded for other nodes: the shell may drop these when
    #: their link's backlog is full (and tells the node, see
    #: :meth:`pydist.core.node.Node.transit_dropped`)
    transit: list[tuple[LinkKey, list[Out]]] = field(default_factory=list)
    commands: list[Command] = field(default_factory=list)
