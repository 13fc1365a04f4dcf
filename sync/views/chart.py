"""A budget's balance over time as an inline SVG step chart, drawn on the server.

Pages must work without JavaScript and without fetching anything (a statement is saved,
mailed, printed), so the chart is plain SVG markup inside the HTML. A balance only changes at
a posting, so the line is a staircase: flat until the next posting, then a vertical step.
Coordinates are computed with integers (times in seconds, amounts in minor units): money never
passes through a float, not even on its way to a pixel.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape
from zoneinfo import ZoneInfo

from sync.model import format_amount

WIDTH = 640
HEIGHT = 220
_LEFT, _RIGHT, _TOP, _BOTTOM = 8, 8, 22, 24
MAX_POINTS = 600


@dataclass(frozen=True, slots=True)
class BalancePoint:
    """The balance (minor units of the budget's unit) from moment `at` on."""

    at: dt.datetime
    balance_minor: int


def balance_chart_svg(
    points: Sequence[BalancePoint],
    *,
    unit: str,
    unit_label: str,
    title: str,
    end: dt.datetime,
    tz: ZoneInfo,
    threshold_minor: int | None = None,
    formatter: Callable[[int], str] | None = None,
) -> str:
    """An accessible SVG of `points` (sorted by time) held flat until `end`.

    `unit` is the ledger unit (a currency code or HOUR) used to format amounts unless a
    `formatter` is given (a statement passes its own, so the chart shows its figures);
    `unit_label` is what a reader sees next to them ("EUR", "hours"). A refill threshold is
    drawn as a dashed line.
    """

    def show(minor: int) -> str:
        return format_amount(minor, unit) if formatter is None else formatter(minor)

    label = escape(title)
    if not points:
        return (
            f'<svg class="chart" viewBox="0 0 {WIDTH} 40" role="img" aria-label="{label}">'
            f'<title>{label}</title><text x="8" y="24">no postings yet</text></svg>'
        )
    points = _thin(sorted(points, key=lambda p: p.at))
    t0 = _epoch(points[0].at)
    t1 = max(_epoch(end), t0 + 1)
    values = [p.balance_minor for p in points] + [0]
    if threshold_minor is not None:
        values.append(threshold_minor)
    low, high = min(values), max(values)
    if high == low:
        high = low + 1
    plot_w = WIDTH - _LEFT - _RIGHT
    plot_h = HEIGHT - _TOP - _BOTTOM

    def x(seconds: int) -> int:
        return _LEFT + (seconds - t0) * plot_w // (t1 - t0)

    def y(minor: int) -> int:
        return _TOP + (high - minor) * plot_h // (high - low)

    path = [f"M{x(t0)},{y(points[0].balance_minor)}"]
    for point in points[1:]:
        path.append(f"H{x(_epoch(point.at))}V{y(point.balance_minor)}")
    path.append(f"H{x(t1)}")
    last = points[-1].balance_minor
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{label}"'
        ' xmlns="http://www.w3.org/2000/svg">',
        f"<title>{label}</title>",
        f'<line x1="{_LEFT}" x2="{WIDTH - _RIGHT}" y1="{y(0)}" y2="{y(0)}" class="zero"/>',
    ]
    if threshold_minor is not None:
        ty = y(threshold_minor)
        parts.append(
            f'<line x1="{_LEFT}" x2="{WIDTH - _RIGHT}" y1="{ty}" y2="{ty}" class="threshold"/>'
        )
        parts.append(
            f'<text x="{WIDTH - _RIGHT}" y="{ty - 4}" text-anchor="end" class="note">refill'
            f" below {escape(show(threshold_minor))} {escape(unit_label)}</text>"
        )
    parts += [
        f'<path d="{"".join(path)}" class="balance"/>',
        f'<text x="{_LEFT}" y="14" class="note">{escape(show(high))} {escape(unit_label)}</text>',
        f'<text x="{WIDTH - _RIGHT}" y="14" text-anchor="end" class="now">now'
        f" {escape(show(last))} {escape(unit_label)}</text>",
        f'<text x="{_LEFT}" y="{HEIGHT - 6}" class="note">'
        f"{points[0].at.astimezone(tz).date().isoformat()}</text>",
        f'<text x="{WIDTH - _RIGHT}" y="{HEIGHT - 6}" text-anchor="end" class="note">'
        f"{end.astimezone(tz).date().isoformat()}</text>",
        "</svg>",
    ]
    return "".join(parts)


CHART_CSS = (
    ".chart{width:100%;height:auto;max-width:720px;background:#fff;border:1px solid #ddd;"
    "border-radius:4px}.chart .balance{fill:none;stroke:#1f6feb;stroke-width:2}"
    ".chart .zero{stroke:#999;stroke-width:1}"
    ".chart .threshold{stroke:#d1242f;stroke-width:1;stroke-dasharray:6 4}"
    ".chart text{font:12px sans-serif;fill:#555}.chart .now{fill:#1f6feb;font-weight:bold}"
)


def _epoch(moment: dt.datetime) -> int:
    """Whole seconds since 1970 of an aware datetime (integer arithmetic, no float)."""
    delta = moment - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return delta.days * 86_400 + delta.seconds


def _thin(points: list[BalancePoint]) -> list[BalancePoint]:
    """At most about MAX_POINTS points: keep the first, the last and each bucket's extremes,
    so a long history still draws quickly and its lowest balance stays visible."""
    if len(points) <= MAX_POINTS:
        return points
    size = -(-len(points) // (MAX_POINTS // 2))
    kept: list[BalancePoint] = [points[0]]
    for start in range(1, len(points) - 1, size):
        bucket = points[start : min(start + size, len(points) - 1)]
        lowest = min(bucket, key=lambda p: p.balance_minor)
        highest = max(bucket, key=lambda p: p.balance_minor)
        kept.extend(sorted({lowest, highest}, key=lambda p: p.at))
    kept.append(points[-1])
    return kept
