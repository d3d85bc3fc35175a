"""Server-side SVG line charts for the admin (training curves, metrics across model versions).

Pure Python, no JavaScript and nothing fetched from a CDN: a chart is a string of inline SVG
with axes, "nice" ticks, axis labels, a legend and a tooltip (``<title>``) per point. Every
piece of text is escaped, so series names and titles may come from user data. The output is
well-formed XML; an empty chart says "no data" instead of failing.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from html import escape

PALETTE = ("#417690", "#e07b39", "#3b9c5a", "#a04bb0", "#c0392b", "#7f8c8d", "#b8860b")


@dataclass(frozen=True)
class Series:
    """One line: ``points`` are (x, y); a y of None (or NaN) leaves a gap."""

    name: str
    points: Sequence[tuple[float, float | None]] = field(default_factory=tuple)
    dashed: bool = False


def _text(value: object) -> str:
    return escape(str(value), quote=True)


def _finite(value: object) -> bool:
    if value is None or isinstance(value, bool | str):
        return False
    try:
        return math.isfinite(float(value))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False


def _nice(value: float, *, round_: bool) -> float:
    """The "nice number" (1, 2, 5 x 10^n) near ``value`` (Heckbert's Graphics Gems labels)."""
    if value <= 0:
        return 1.0
    exponent = math.floor(math.log10(value))
    fraction = value / 10**exponent
    if round_:
        nice = 1 if fraction < 1.5 else 2 if fraction < 3 else 5 if fraction < 7 else 10
    else:
        nice = 1 if fraction <= 1 else 2 if fraction <= 2 else 5 if fraction <= 5 else 10
    return nice * 10**exponent


def nice_ticks(lo: float, hi: float, count: int = 5, *, integer: bool = False) -> list[float]:
    """Evenly spaced round tick values that cover [lo, hi] (a single value gets a small range)."""
    if hi < lo:
        lo, hi = hi, lo
    if hi == lo:
        pad = 1.0 if integer or lo == 0 else abs(lo) * 0.1
        lo, hi = lo - pad, hi + pad
    step = _nice(_nice(hi - lo, round_=False) / max(count - 1, 1), round_=True)
    if integer:
        step = max(1.0, math.ceil(step))
    start = math.floor(lo / step) * step
    ticks = []
    value = start
    while value <= hi + step * 0.5 and len(ticks) < 50:
        ticks.append(round(value, 12))
        value += step
    if ticks[-1] < hi:
        ticks.append(round(ticks[-1] + step, 12))
    return ticks


def _tick_label(value: float, step: float) -> str:
    decimals = max(0, -math.floor(math.log10(step))) if step > 0 else 0
    return f"{value:.{min(decimals, 6)}f}"


def _point_label(value: float) -> str:
    return f"{value:g}" if abs(value) >= 1e-3 or value == 0 else f"{value:.2e}"


def _legend_layout(names: list[str], start: int, stop: int) -> list[tuple[int, int]]:
    """(x, row) of each legend entry: entries flow left to right and wrap at ``stop``."""
    out, x, row = [], start, 0
    for name in names:
        item_w = len(name) * 7 + 34  # about 7 px a character at 11 px sans-serif
        if x + item_w > stop and x > start:
            x, row = start, row + 1
        out.append((x, row))
        x += item_w
    return out


def line_chart(
    series: Iterable[Series],
    *,
    title: str = "",
    x_label: str = "",
    y_label: str = "",
    width: int = 640,
    height: int = 280,
    integer_x: bool = False,
) -> str:
    """An SVG line chart of ``series`` (inline-able markup, all text escaped)."""
    series = list(series)
    clean = [
        (s, [(float(x), float(y)) for x, y in s.points if _finite(x) and _finite(y)])
        for s in series
    ]
    left, right, top, bottom = 64, 16, 30 if title else 12, 52
    legend = _legend_layout([s.name for s in series], left, width - right)
    rows = len({y for _, y in legend})
    bottom += 16 * rows
    plot_w, plot_h = width - left - right, height - top - bottom
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="recs-chart" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{_text(title or "chart")}" font-family="sans-serif" font-size="11">',
        f"<title>{_text(title or 'chart')}</title>",
        f'<rect x="0" y="0" width="{width}" height="{height}" fill="#fff"/>',
    ]
    if title:
        out.append(
            f'<text x="{width / 2:.1f}" y="18" text-anchor="middle" font-size="13" '
            f'font-weight="bold">{_text(title)}</text>'
        )
    xs = [x for _, pts in clean for x, _ in pts]
    ys = [y for _, pts in clean for _, y in pts]
    frame = (
        f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" '
        'stroke="#999" stroke-width="1"/>'
    )
    if not xs or plot_w <= 0 or plot_h <= 0:
        out.append(frame)
        out.append(
            f'<text x="{left + plot_w / 2:.1f}" y="{top + plot_h / 2:.1f}" '
            'text-anchor="middle" fill="#666">no data</text>'
        )
        out.append("</svg>")
        return "".join(out)

    x_ticks = nice_ticks(min(xs), max(xs), 6, integer=integer_x)
    y_ticks = nice_ticks(min(ys), max(ys), 5)
    x0, x1, y0, y1 = x_ticks[0], x_ticks[-1], y_ticks[0], y_ticks[-1]

    def sx(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * plot_w

    def sy(y: float) -> float:
        return top + plot_h - (y - y0) / (y1 - y0) * plot_h

    # grid and ticks
    y_step = y_ticks[1] - y_ticks[0] if len(y_ticks) > 1 else 1.0
    for tick in y_ticks:
        y = sy(tick)
        out.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" stroke="#eee"/>'
        )
        out.append(
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" fill="#444">'
            f"{_text(_tick_label(tick, y_step))}</text>"
        )
    x_step = x_ticks[1] - x_ticks[0] if len(x_ticks) > 1 else 1.0
    for tick in x_ticks:
        x = sx(tick)
        out.append(
            f'<line x1="{x:.1f}" y1="{top + plot_h}" x2="{x:.1f}" y2="{top + plot_h + 4}" '
            'stroke="#999"/>'
        )
        out.append(
            f'<text x="{x:.1f}" y="{top + plot_h + 16}" text-anchor="middle" fill="#444">'
            f"{_text(_tick_label(tick, x_step))}</text>"
        )
    out.append(frame)
    if x_label:
        out.append(
            f'<text x="{left + plot_w / 2:.1f}" y="{top + plot_h + 32}" '
            f'text-anchor="middle" fill="#222">{_text(x_label)}</text>'
        )
    if y_label:
        cy = top + plot_h / 2
        out.append(
            f'<text x="14" y="{cy:.1f}" text-anchor="middle" fill="#222" '
            f'transform="rotate(-90 14 {cy:.1f})">{_text(y_label)}</text>'
        )

    # lines (a missing y breaks the line) and points with a tooltip each
    for index, (s, _) in enumerate(clean):
        color = PALETTE[index % len(PALETTE)]
        path: list[str] = []
        pen_down = False
        dots = []
        for x, y in s.points:
            if not (_finite(x) and _finite(y)):
                pen_down = False
                continue
            px, py = sx(float(x)), sy(float(y))
            path.append(f"{'L' if pen_down else 'M'}{px:.1f},{py:.1f}")
            pen_down = True
            dots.append(
                f'<circle cx="{px:.1f}" cy="{py:.1f}" r="2.5" fill="{color}">'
                f"<title>{_text(s.name)}: {_text(_point_label(float(x)))}, "
                f"{_text(_point_label(float(y)))}</title></circle>"
            )
        dash = ' stroke-dasharray="5,3"' if s.dashed else ""
        out.append(f'<g class="recs-series" data-series="{_text(s.name)}">')
        if path:
            out.append(
                f'<path d="{" ".join(path)}" fill="none" stroke="{color}" stroke-width="1.8"'
                f"{dash}/>"
            )
        out.extend(dots)
        out.append("</g>")

    # legend, wrapping onto more rows when it is wide
    base = top + plot_h + 44
    for index, ((s, _), (lx, row)) in enumerate(zip(clean, legend, strict=True)):
        color = PALETTE[index % len(PALETTE)]
        ly = base + 16 * row
        dash = ' stroke-dasharray="5,3"' if s.dashed else ""
        out.append(
            f'<line x1="{lx}" y1="{ly - 4}" x2="{lx + 18}" y2="{ly - 4}" stroke="{color}" '
            f'stroke-width="2"{dash}/>'
            f'<text x="{lx + 22}" y="{ly}" fill="#222">{_text(s.name)}</text>'
        )
    out.append("</svg>")
    return "".join(out)
