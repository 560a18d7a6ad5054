"""Draw a replay: load over time, and each run's serving instances beside the floor's.

`.svg` is drawn here, with no dependency; any other name gets a PNG through matplotlib, which
must then be installed. Either is written to a temp file and renamed.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from html import escape
from pathlib import Path

from wharf.atomic import write_atomic
from wharf.errors import BadInput

WIDTH, PANEL, MARGIN = 800, 200, 50
COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c")


def _line(values: Sequence[float], top: float, y0: float, color: str, dash: str = "") -> str:
    """One polyline of per-minute `values` scaled into a panel whose baseline is `y0`."""
    step = (WIDTH - 2 * MARGIN) / max(len(values) - 1, 1)
    points = " ".join(f"{MARGIN + i * step:.1f},{y0 - v / top * (PANEL - 20):.1f}" for i, v in enumerate(values))
    dashed = f' stroke-dasharray="{dash}"' if dash else ""
    return f'<polyline fill="none" stroke="{color}" stroke-width="1.2"{dashed} points="{points}"/>'


def _panel(y0: float, top: float, label: str) -> str:
    return (f'<line x1="{MARGIN}" y1="{y0}" x2="{WIDTH - MARGIN}" y2="{y0}" stroke="#999"/>'
            f'<text x="4" y="{y0 - PANEL + 24}" font-size="11">{top:g}</text>'
            f'<text x="4" y="{y0}" font-size="11">0</text>'
            f'<text x="{MARGIN}" y="{y0 - PANEL + 10}" font-size="11">{escape(label)}</text>')


def svg(load: Sequence[float], serving: Mapping[str, Sequence[int]], floor: Sequence[int], title: str = "") -> str:
    """An SVG of per-second `load` (top) and instance counts (bottom), one point a minute: the
    load's highest second of each minute, each run's serving count and the floor's count."""
    def minutes(values: Sequence[float]) -> list[float]:
        return [max(values[i:i + 60]) for i in range(0, len(values), 60)]

    peak = max(max(load, default=0.0), 1.0)
    counts = {name: minutes(list(map(float, s))) for name, s in serving.items()}
    most = max([1.0, *(max(c, default=0.0) for c in counts.values()), max(floor, default=0)])
    y1, y2 = 30 + PANEL, 60 + 2 * PANEL
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{y2 + 40}" '
             f'font-family="sans-serif">', '<rect width="100%" height="100%" fill="white"/>',
             f'<text x="{MARGIN}" y="16" font-size="13">{escape(title)}</text>',
             _panel(y1, peak, "load (rps)"), _line(minutes(load), peak, y1, "#555"),
             _panel(y2, most, "serving instances"),
             _line(minutes(list(map(float, floor))), most, y2, "#999", "4 3")]
    legend = [("floor", "#999")]
    for (name, values), color in zip(counts.items(), COLORS, strict=False):
        parts.append(_line(values, most, y2, color))
        legend.append((name, color))
    for i, (name, color) in enumerate(legend):
        x = MARGIN + 120 * i
        parts.append(f'<text x="{x}" y="{y2 + 30}" font-size="11" fill="{color}">— {escape(name)}</text>')
    parts.append(f'<text x="{WIDTH - MARGIN - 60}" y="{y2 + 30}" font-size="11">{len(load) / 60:.0f} min</text>')
    return "\n".join([*parts, "</svg>"]) + "\n"


def png(load: Sequence[float], serving: Mapping[str, Sequence[int]], floor: Sequence[int], title: str = "") -> bytes:
    """The same as a PNG, through matplotlib (BadInput naming the package if it is missing)."""
    try:
        import matplotlib
    except ImportError:
        raise BadInput("--plot: a PNG needs the matplotlib package, which is not installed "
                       "(pip install 'wharf[plot]'), or give a .svg path") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    minutes = [s / 60 for s in range(len(load))]
    fig, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(8, 5), dpi=80)
    top.plot(minutes, load, color="tab:gray", linewidth=0.8, label="load (rps)")
    top.set_ylabel("rps")
    top.legend(loc="upper left", fontsize=8)
    bottom.step(minutes, floor, where="post", color="tab:gray", linewidth=0.8, linestyle="--", label="floor")
    for (name, counts), color in zip(serving.items(), ("tab:blue", "tab:orange"), strict=False):
        bottom.step(minutes, counts, where="post", color=color, linewidth=1.2, label=name)
    bottom.set_ylabel("serving instances")
    bottom.set_xlabel("minutes")
    bottom.legend(loc="upper left", fontsize=8)
    if title:
        top.set_title(title, fontsize=10)
    fig.tight_layout()
    image = io.BytesIO()
    try:
        fig.savefig(image, format="png")
    finally:
        plt.close(fig)
    return image.getvalue()


def plot(path: Path, load: Sequence[float], serving: Mapping[str, Sequence[int]], floor: Sequence[int],
         title: str = "") -> None:
    """Write the drawing to `path`: SVG for a `.svg` name, else PNG."""
    data: str | bytes = (svg if path.suffix.lower() == ".svg" else png)(load, serving, floor, title)
    write_atomic(path, data)
