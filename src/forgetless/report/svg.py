"""A small SVG plotting module for the HTML report: line plots and labelled scatter plots.

Each function returns one `<svg>` element as a string, with axes, "nice" ticks, a legend and a
`<title>`, sized in CSS pixels. The output depends only on the arguments, so reports are
reproducible, and it needs no fonts, scripts or files beyond the page that embeds it.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

# Okabe-Ito: distinguishable for the common forms of colour blindness.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#7F7F7F", "#000000")
AXIS_COLOR = "#444"
GRID_COLOR = "#e6e6e6"
FONT = "font-family:system-ui,-apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif"

Formatter = Callable[[float], str]
_CLIP = "@clip@"  # placeholder for the clip-path id, filled in by _with_clip_id


@dataclass
class Series:
    """One line: (x, y) points in order; `markers` draws a dot at each point."""

    name: str
    points: Sequence[tuple[float, float]]
    color: str = PALETTE[0]
    dashed: bool = False
    markers: bool = False
    width: float = 1.8


@dataclass
class HLine:
    """A horizontal reference line across the plot, e.g. a base-model level."""

    y: float
    label: str = ""
    color: str = AXIS_COLOR
    dashed: bool = True


@dataclass
class VLine:
    """A vertical marker line, e.g. a stage boundary, labelled at the top."""

    x: float
    label: str = ""
    color: str = "#999"


@dataclass
class Point:
    """One labelled point of a scatter plot; `highlight` draws it filled and bold."""

    x: float
    y: float
    label: str
    color: str = PALETTE[0]
    highlight: bool = False


@dataclass
class _Frame:
    """The mapping from data to pixels for one plot area."""

    x0: float
    x1: float
    y0: float
    y1: float
    left: float
    top: float
    width: float
    height: float

    def px(self, x: float) -> float:
        return self.left + (x - self.x0) / (self.x1 - self.x0) * self.width

    def py(self, y: float) -> float:
        return self.top + self.height - (y - self.y0) / (self.y1 - self.y0) * self.height


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values (1, 2, 2.5 or 5 times a power of ten) covering [lo, hi], about `count` of them."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return []
    if hi < lo:
        lo, hi = hi, lo
    if hi == lo:
        return [lo]
    raw = (hi - lo) / max(count - 1, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    ticks = []
    value = first
    while value <= hi + step * 1e-9:
        ticks.append(0.0 if abs(value) < step * 1e-9 else round(value, 12))
        value = first + len(ticks) * step
    return ticks


def format_count(value: float) -> str:
    """A token count in short form: 0, 950, 1.5k, 20M, 1.25B."""
    magnitude = abs(value)
    for threshold, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")):
        if magnitude >= threshold:
            return f"{value / threshold:.3g}{suffix}"
    return f"{value:.3g}"


def format_number(value: float) -> str:
    """A tick label with no more digits than it needs."""
    if value == 0:
        return "0"
    if abs(value) >= 1e4 or abs(value) < 1e-3:
        return f"{value:.2g}"
    return f"{value:.4g}"


def _padded_range(values: list[float], pad: float = 0.06) -> tuple[float, float]:
    lo, hi = min(values), max(values)
    if hi == lo:
        span = abs(hi) * 0.05 or 1.0
        return lo - span, hi + span
    span = hi - lo
    return lo - span * pad, hi + span * pad


def _open(width: int, height: int, title: str, kind: str, extra_class: str = "") -> list[str]:
    classes = f"plot plot-{kind} {extra_class}".strip()
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="{escape(classes)}" data-plot="{escape(kind)}" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(title)}" style="{FONT}">',
        f"<title>{escape(title)}</title>",
        f'<rect x="0" y="0" width="{width}" height="{height}" fill="#fff"/>',
    ]


def _axes(
    frame: _Frame,
    x_ticks: list[float],
    y_ticks: list[float],
    x_format: Formatter,
    y_format: Formatter,
    x_label: str,
    y_label: str,
) -> list[str]:
    out = []
    bottom = frame.top + frame.height
    for tick in y_ticks:
        y = frame.py(tick)
        out.append(
            f'<line x1="{frame.left:.1f}" y1="{y:.1f}" x2="{frame.left + frame.width:.1f}" y2="{y:.1f}" '
            f'stroke="{GRID_COLOR}" stroke-width="1"/>'
        )
        out.append(
            f'<text x="{frame.left - 6:.1f}" y="{y + 4:.1f}" font-size="11" text-anchor="end" '
            f'fill="{AXIS_COLOR}">{escape(y_format(tick))}</text>'
        )
    for tick in x_ticks:
        x = frame.px(tick)
        out.append(
            f'<line x1="{x:.1f}" y1="{bottom:.1f}" x2="{x:.1f}" y2="{bottom + 4:.1f}" stroke="{AXIS_COLOR}"/>'
        )
        out.append(
            f'<text x="{x:.1f}" y="{bottom + 17:.1f}" font-size="11" text-anchor="middle" '
            f'fill="{AXIS_COLOR}">{escape(x_format(tick))}</text>'
        )
    out.append(
        f'<rect x="{frame.left:.1f}" y="{frame.top:.1f}" width="{frame.width:.1f}" height="{frame.height:.1f}" '
        f'fill="none" stroke="{AXIS_COLOR}" stroke-width="1"/>'
    )
    if x_label:
        out.append(
            f'<text x="{frame.left + frame.width / 2:.1f}" y="{bottom + 33:.1f}" font-size="12" '
            f'text-anchor="middle" fill="{AXIS_COLOR}">{escape(x_label)}</text>'
        )
    if y_label:
        cy = frame.top + frame.height / 2
        out.append(
            f'<text x="14" y="{cy:.1f}" font-size="12" text-anchor="middle" fill="{AXIS_COLOR}" '
            f'transform="rotate(-90 14 {cy:.1f})">{escape(y_label)}</text>'
        )
    return out


def _legend(entries: list[tuple[str, str, bool]], left: float, top: float, max_width: float) -> list[str]:
    """Legend entries (label, color, dashed) laid out left to right, wrapping at max_width."""
    out = []
    x, y = left, top
    for label, color, dashed in entries:
        item_width = 30 + 6.6 * len(label) + 14
        if x > left and x + item_width > left + max_width:
            x, y = left, y + 16
        dash = ' stroke-dasharray="5 3"' if dashed else ""
        out.append(
            f'<line x1="{x:.1f}" y1="{y - 4:.1f}" x2="{x + 22:.1f}" y2="{y - 4:.1f}" stroke="{color}" '
            f'stroke-width="2.2"{dash}/>'
        )
        out.append(f'<text x="{x + 27:.1f}" y="{y:.1f}" font-size="11" fill="#222">{escape(label)}</text>')
        x += item_width
    return out


def _legend_rows(entries: list[tuple[str, str, bool]], max_width: float) -> int:
    rows, x = 1, 0.0
    for label, _, _ in entries:
        item_width = 30 + 6.6 * len(label) + 14
        if x > 0 and x + item_width > max_width:
            rows, x = rows + 1, 0.0
        x += item_width
    return rows if entries else 0


def line_plot(
    series: list[Series],
    *,
    title: str,
    kind: str = "line",
    width: int = 560,
    height: int = 260,
    x_label: str = "",
    y_label: str = "",
    hlines: Sequence[HLine] = (),
    vlines: Sequence[VLine] = (),
    x_format: Formatter = format_number,
    y_format: Formatter = format_number,
    legend: bool = True,
    y_range: tuple[float, float] | None = None,
) -> str:
    """A line plot of `series` with reference lines; `kind` becomes the `data-plot` attribute."""
    finite = [(x, y) for s in series for x, y in s.points if math.isfinite(x) and math.isfinite(y)]
    entries = [(s.name, s.color, s.dashed) for s in series if s.name] if legend else []
    entries += [(h.label, h.color, h.dashed) for h in hlines if h.label] if legend else []
    legend_height = 16 * _legend_rows(entries, width - 70)
    top = 26 + legend_height
    out = _open(width, height + legend_height, title, kind)
    out.append(f'<text x="10" y="16" font-size="13" font-weight="600" fill="#111">{escape(title)}</text>')
    if not finite:
        out.append(
            f'<text x="{width / 2:.1f}" y="{(height + legend_height) / 2:.1f}" font-size="12" '
            f'text-anchor="middle" fill="#888">no data</text></svg>'
        )
        return "\n".join(out)
    xs = [x for x, _ in finite] + [v.x for v in vlines if math.isfinite(v.x)]
    ys = [y for _, y in finite] + [h.y for h in hlines if math.isfinite(h.y)]
    x0, x1 = min(xs), max(xs)
    if x0 == x1:
        x0, x1 = x0 - 1, x1 + 1
    y0, y1 = y_range if y_range is not None else _padded_range(ys)
    frame = _Frame(x0, x1, y0, y1, left=62, top=top, width=width - 62 - 14, height=height - 26 - 44)
    out += _axes(frame, nice_ticks(x0, x1, 6), nice_ticks(y0, y1, 5), x_format, y_format, x_label, y_label)
    out.append(
        f'<clipPath id="{_CLIP}"><rect x="{frame.left:.1f}" y="{frame.top:.1f}" '
        f'width="{frame.width:.1f}" height="{frame.height:.1f}"/></clipPath>'
    )
    clip = f'clip-path="url(#{_CLIP})"'
    for v in vlines:
        if not math.isfinite(v.x):
            continue
        x = frame.px(v.x)
        out.append(
            f'<line class="vline" x1="{x:.1f}" y1="{frame.top:.1f}" x2="{x:.1f}" y2="{frame.top + frame.height:.1f}" '
            f'stroke="{v.color}" stroke-width="1" stroke-dasharray="2 3"/>'
        )
        if v.label:
            out.append(
                f'<text x="{x + 3:.1f}" y="{frame.top + 11:.1f}" font-size="10" fill="#666">{escape(v.label)}</text>'
            )
    for h in hlines:
        if not math.isfinite(h.y):
            continue
        y = frame.py(h.y)
        dash = ' stroke-dasharray="6 4"' if h.dashed else ""
        out.append(
            f'<line class="hline" x1="{frame.left:.1f}" y1="{y:.1f}" x2="{frame.left + frame.width:.1f}" '
            f'y2="{y:.1f}" stroke="{h.color}" stroke-width="1.2" opacity="0.8"{dash} {clip}/>'
        )
    for s in series:
        points = [(frame.px(x), frame.py(y)) for x, y in s.points if math.isfinite(x) and math.isfinite(y)]
        if not points:
            continue
        path = " ".join(f"{'M' if i == 0 else 'L'}{x:.1f},{y:.1f}" for i, (x, y) in enumerate(points))
        dash = ' stroke-dasharray="6 4"' if s.dashed else ""
        out.append(
            f'<path class="series" d="{path}" fill="none" stroke="{s.color}" stroke-width="{s.width}" '
            f'stroke-linejoin="round"{dash} {clip}><title>{escape(s.name)}</title></path>'
        )
        if s.markers:
            out += [f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.2" fill="{s.color}" {clip}/>' for x, y in points]
    if entries:
        out += _legend(entries, frame.left, 26 + 12, width - 70)
    out.append("</svg>")
    return _with_clip_id("\n".join(out))


def _with_clip_id(svg: str) -> str:
    """Name the clip path after the plot's content: unique per distinct plot, and reproducible."""
    digest = hashlib.sha1(svg.encode("utf-8")).hexdigest()[:12]
    return svg.replace(_CLIP, f"clip-{digest}")


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points that no other point beats: lower x (forgetting) and higher y (learning).

    A point is dominated when another has x <= its x and y >= its y, one of them strictly.
    """
    front = []
    for i, (x, y) in enumerate(points):
        dominated = any(
            (ox <= x and oy >= y) and (ox < x or oy > y) for j, (ox, oy) in enumerate(points) if j != i
        )
        if not dominated:
            front.append(i)
    return front


def scatter_plot(
    points: list[Point],
    *,
    title: str,
    kind: str = "scatter",
    width: int = 640,
    height: int = 420,
    x_label: str = "",
    y_label: str = "",
    front: Sequence[tuple[float, float]] = (),
    x_format: Formatter = format_number,
    y_format: Formatter = format_number,
    zero_lines: bool = True,
) -> str:
    """A scatter plot with a label next to each point; `front` is drawn as a connecting step line."""
    usable = [p for p in points if math.isfinite(p.x) and math.isfinite(p.y)]
    out = _open(width, height, title, kind)
    out.append(f'<text x="10" y="16" font-size="13" font-weight="600" fill="#111">{escape(title)}</text>')
    if not usable:
        out.append(
            f'<text x="{width / 2:.1f}" y="{height / 2:.1f}" font-size="12" text-anchor="middle" '
            f'fill="#888">no runs with both learning and forgetting</text></svg>'
        )
        return "\n".join(out)
    xs = [p.x for p in usable] + ([0.0] if zero_lines else [])
    ys = [p.y for p in usable] + ([0.0] if zero_lines else [])
    x0, x1 = _padded_range(xs, 0.12)
    y0, y1 = _padded_range(ys, 0.12)
    frame = _Frame(x0, x1, y0, y1, left=70, top=30, width=width - 70 - 20, height=height - 30 - 46)
    out += _axes(frame, nice_ticks(x0, x1, 6), nice_ticks(y0, y1, 6), x_format, y_format, x_label, y_label)
    if zero_lines:
        out.append(
            f'<line x1="{frame.px(0):.1f}" y1="{frame.top:.1f}" x2="{frame.px(0):.1f}" '
            f'y2="{frame.top + frame.height:.1f}" stroke="#bbb" stroke-dasharray="4 3"/>'
        )
        out.append(
            f'<line x1="{frame.left:.1f}" y1="{frame.py(0):.1f}" x2="{frame.left + frame.width:.1f}" '
            f'y2="{frame.py(0):.1f}" stroke="#bbb" stroke-dasharray="4 3"/>'
        )
    ordered = sorted((x, y) for x, y in front if math.isfinite(x) and math.isfinite(y))
    if len(ordered) >= 2:
        path = [f"M{frame.px(ordered[0][0]):.1f},{frame.py(ordered[0][1]):.1f}"]
        for (_, py), (nx, ny) in zip(ordered[:-1], ordered[1:], strict=True):
            path.append(f"L{frame.px(nx):.1f},{frame.py(py):.1f} L{frame.px(nx):.1f},{frame.py(ny):.1f}")
        out.append(
            f'<path class="pareto-front" d="{" ".join(path)}" fill="none" stroke="#2a9d4b" '
            f'stroke-width="2" opacity="0.7"/>'
        )
    for p in usable:
        cx, cy = frame.px(p.x), frame.py(p.y)
        if p.highlight:
            out.append(
                f'<circle class="point front" cx="{cx:.1f}" cy="{cy:.1f}" r="7" fill="{p.color}" '
                f'stroke="#111" stroke-width="2"><title>{escape(p.label)} (Pareto front)</title></circle>'
            )
        else:
            out.append(
                f'<circle class="point" cx="{cx:.1f}" cy="{cy:.1f}" r="5.5" fill="#fff" stroke="{p.color}" '
                f'stroke-width="2.2"><title>{escape(p.label)}</title></circle>'
            )
        anchor = "end" if cx > frame.left + frame.width * 0.75 else "start"
        dx = -10 if anchor == "end" else 10
        weight = ' font-weight="600"' if p.highlight else ""
        out.append(
            f'<text x="{cx + dx:.1f}" y="{cy - 8:.1f}" font-size="12" text-anchor="{anchor}" '
            f'fill="#222"{weight}>{escape(p.label)}</text>'
        )
    out.append("</svg>")
    return "\n".join(out)


def downsample(points: Sequence[tuple[float, float]], buckets: int = 400) -> list[tuple[float, float]]:
    """At most about 4 * buckets points that keep the shape: first, min, max and last of each bucket."""
    if len(points) <= 4 * buckets:
        return list(points)
    size = len(points) / buckets
    kept: list[tuple[float, float]] = []
    for b in range(buckets):
        chunk = points[int(b * size) : int((b + 1) * size)]
        if not chunk:
            continue
        picks = {0, len(chunk) - 1}
        picks.add(min(range(len(chunk)), key=lambda i: chunk[i][1]))
        picks.add(max(range(len(chunk)), key=lambda i: chunk[i][1]))
        kept += [chunk[i] for i in sorted(picks)]
    return kept
