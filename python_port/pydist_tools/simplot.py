"""A plot of the simulator's sweep, as plain SVG written by hand (no
plotting library to install): convergence times and control traffic per
node against the number of nodes, on two panels side by side.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

WIDTH, HEIGHT = 420, 300
LEFT, RIGHT, TOP, BOTTOM = 60, 20, 30, 45
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e")

Series = tuple[str, Sequence[float | None]]


def panel(title: str, unit: str, sizes: Sequence[int], series: Sequence[Series],
          dx: int) -> list[str]:
    """One panel: a line (and dots) per series over ``sizes``; a missing
    value (None: never converged) leaves a gap."""
    values = [v for _, ys in series for v in ys if v is not None]
    top = max(values, default=1.0) * 1.1 or 1.0
    low, high = min(sizes), max(sizes)
    span = (high - low) or 1

    def x(n: float) -> float:
        return dx + LEFT + (n - low) / span * (WIDTH - LEFT - RIGHT)

    def y(v: float) -> float:
        return TOP + (1 - v / top) * (HEIGHT - TOP - BOTTOM)

    out = [f'<text x="{dx + WIDTH / 2}" y="18" text-anchor="middle" '
           f'font-weight="bold">{escape(title)}</text>',
           f'<line x1="{x(low)}" y1="{y(0)}" x2="{x(high)}" y2="{y(0)}" stroke="black"/>',
           f'<line x1="{x(low)}" y1="{y(0)}" x2="{x(low)}" y2="{y(top)}" stroke="black"/>',
           f'<text x="{dx + 14}" y="{TOP + (HEIGHT - TOP - BOTTOM) / 2}" '
           f'transform="rotate(-90 {dx + 14} {TOP + (HEIGHT - TOP - BOTTOM) / 2})" '
           f'text-anchor="middle">{escape(unit)}</text>',
           f'<text x="{dx + WIDTH / 2}" y="{HEIGHT - 8}" text-anchor="middle">nodes</text>']
    for i in range(5):
        v = top * i / 4
        out.append(f'<text x="{x(low) - 4}" y="{y(v) + 4}" text-anchor="end" '
                   f'font-size="10">{v:,.0f}</text>')
    for n in sizes:
        out.append(f'<text x="{x(n)}" y="{y(0) + 14}" text-anchor="middle" '
                   f'font-size="10">{n:,}</text>')
    for k, (name, ys) in enumerate(series):
        colour = COLOURS[k % len(COLOURS)]
        points = [(x(n), y(v)) for n, v in zip(sizes, ys, strict=True) if v is not None]
        if len(points) > 1:
            path = " ".join(f"{px:.1f},{py:.1f}" for px, py in points)
            out.append(f'<polyline points="{path}" fill="none" stroke="{colour}" '
                       f'stroke-width="2"/>')
        out += [f'<circle cx="{px:.1f}" cy="{py:.1f}" r="3" fill="{colour}"/>'
                for px, py in points]
        out.append(f'<text x="{x(low) + 8}" y="{TOP + 12 + 13 * k}" fill="{colour}" '
                   f'font-size="11">{escape(name)}</text>')
    return out


def svg(sizes: Sequence[int], convergence: Sequence[Series], traffic: Sequence[Series],
        caption: str) -> str:
    """Two panels: convergence (ms, simulated) and control traffic (per node per s)."""
    body = (panel("convergence (simulated)", "ms", sizes, convergence, 0)
            + panel("control traffic at rest", "bytes per node per s", sizes, traffic, WIDTH))
    return "\n".join([
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{2 * WIDTH}" '
        f'height="{HEIGHT + 20}" font-family="sans-serif" font-size="12">',
        f'<rect width="{2 * WIDTH}" height="{HEIGHT + 20}" fill="white"/>',
        *body,
        f'<text x="{WIDTH}" y="{HEIGHT + 14}" text-anchor="middle" font-size="10">'
        f'{escape(caption)}</text>',
        "</svg>", ""])
