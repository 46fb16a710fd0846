"""A picture of the cluster as one node sees it: its link-state database
drawn with Graphviz (``pydist topology``, and the demo).

Nodes are the origins of the link-state packets; an edge is a link, with
the cost each end advertises (one number when they agree), dashed while
only one end lists it (coming up or going down), and thick and blue when
it carries the viewing node's traffic: the links to the neighbours its
routes go through, labelled with how many destinations go that way and
the connections over the link. The viewing node is doubly circled, the
nodes it reaches filled.
"""

from __future__ import annotations

import shutil
import subprocess
from collections import Counter
from typing import Any

FORMATS = ("dot", "svg", "png")


class PictureError(RuntimeError):
    pass


def _name(raw: Any) -> str:
    return raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_dot(topology: dict[Any, Any], links: list[dict[Any, Any]] | None = None) -> str:
    """DOT text for ``py_dist:topology()`` of a node; ``links`` (from
    ``py_dist:info()``'s port map) adds the connections per link."""
    me = _name(topology["node"])
    costs: dict[tuple[str, str], dict[str, int]] = {}
    nodes = {me}
    for lsp in topology["lsdb"]:
        origin = _name(lsp["origin"])
        nodes.add(origin)
        for neighbour, cost in lsp["neighbours"]:
            other = _name(neighbour)
            nodes.add(other)
            key = (min(origin, other), max(origin, other))
            costs.setdefault(key, {})[origin] = cost
    routes = [(_name(r["dest"]), _name(r["via"])) for r in topology["routes"]]
    reached = {dest for dest, _ in routes}
    through = Counter(via for _, via in routes)
    carried = {_name(ln["peer"]): ln["channels"] for ln in links or [] if ln.get("up")}
    lines = ["graph cluster {",
             '  graph [overlap=false, splines=true, fontname="Helvetica", '
             f'label={_quote(f"the cluster as {me} sees it")}];',
             '  node [shape=ellipse, fontname="Helvetica", fontsize=10];',
             '  edge [fontname="Helvetica", fontsize=9];']
    for node in sorted(nodes):
        style = ['shape=doublecircle' if node == me else '',
                 'style=filled, fillcolor="#dbe9f6"' if node in reached or node == me else '']
        shown = ", ".join(a for a in style if a)
        lines.append(f"  {_quote(node)}{f' [{shown}]' if shown else ''};")
    for (u, v), by_end in sorted(costs.items()):
        label = "/".join(str(c) for c in sorted(set(by_end.values())))
        attrs = [f"label={_quote(label)}"]
        if len(by_end) < 2:
            attrs.append("style=dashed")
        nbr = v if u == me else u if v == me else None
        if nbr is not None and through.get(nbr):
            extra = f", {carried[nbr]} conn." if carried.get(nbr) else ""
            count = through[nbr]
            routes_text = f"{count} route{'' if count == 1 else 's'}"
            attrs = [f"label={_quote(f'{label} ({routes_text}{extra})')}",
                     'color="#1f5fa8"', "penwidth=2.5"]
        lines.append(f"  {_quote(u)} -- {_quote(v)} [{', '.join(attrs)}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def render(dot_text: str, fmt: str) -> bytes:
    """The picture in ``fmt`` (``dot``: the text itself)."""
    if fmt not in FORMATS:
        raise PictureError(f"unknown format {fmt!r}: one of {', '.join(FORMATS)}")
    if fmt == "dot":
        return dot_text.encode()
    dot = shutil.which("dot")
    if dot is None:
        raise PictureError("Graphviz's dot is not installed (Debian: apt-get install "
                           "graphviz; scripts/setup does it); --format dot needs nothing")
    done = subprocess.run([dot, f"-T{fmt}"], input=dot_text.encode(), capture_output=True,
                          timeout=60, check=False)
    if done.returncode != 0:
        raise PictureError(f"dot failed: {done.stderr.decode(errors='replace')[-500:]}")
    return done.stdout
