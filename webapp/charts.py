"""Geometry of the server-rendered SVG bar chart (the Usage page): plain numbers for a
template, no JavaScript and no inline style (the CSP allows neither)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

WIDTH = 720
HEIGHT = 220
LEFT = 44  # room for the y-axis labels
BOTTOM = 24  # room for the x-axis labels
TOP = 8


@dataclass(frozen=True)
class DayBar:
    """One day: the requests bar, and the errors bar drawn over its foot."""

    day: date
    x: float
    width: float
    requests: int
    errors: int
    requests_y: float
    requests_height: float
    errors_y: float
    errors_height: float


@dataclass(frozen=True)
class Tick:
    position: float
    label: str
    anchor: str = "middle"  # SVG text-anchor: the outer day labels stay inside the chart


@dataclass(frozen=True)
class BarChart:
    width: int
    height: int
    left: int
    baseline: float
    bars: list[DayBar]
    y_ticks: list[Tick]
    x_ticks: list[Tick]


def _nice_ceiling(value: int) -> int:
    """1, 2, 5, 10, 20, 50, … — the smallest at least `value` (an axis that reads well)."""
    if value <= 1:
        return 1
    magnitude = 10 ** math.floor(math.log10(value))
    return next(step * magnitude for step in (1, 2, 5, 10) if step * magnitude >= value)


def day_bars(points: Sequence[tuple[date, int, int]]) -> BarChart:
    """A bar per (day, requests, errors), scaled to the busiest day."""
    plot_width = WIDTH - LEFT
    plot_height = HEIGHT - TOP - BOTTOM
    baseline = float(HEIGHT - BOTTOM)
    top = _nice_ceiling(max((requests for _, requests, _ in points), default=0))
    slot = plot_width / max(len(points), 1)
    gap = min(slot * 0.2, 4.0)

    def height(count: int) -> float:
        return round(plot_height * count / top, 2)

    bars = [
        DayBar(
            day=day,
            x=round(LEFT + index * slot + gap / 2, 2),
            width=round(max(slot - gap, 1.0), 2),
            requests=requests,
            errors=errors,
            requests_y=round(baseline - height(requests), 2),
            requests_height=height(requests),
            errors_y=round(baseline - height(errors), 2),
            errors_height=height(errors),
        )
        for index, (day, requests, errors) in enumerate(points)
    ]
    y_ticks = [
        Tick(round(baseline - height(value), 2), str(value)) for value in sorted({0, top // 2, top})
    ]
    x_ticks: list[Tick] = []
    if bars:
        first, middle, last = bars[0], bars[len(bars) // 2], bars[-1]
        x_ticks.append(Tick(first.x, f"{first.day:%b %d}", "start"))
        if len(bars) > 2:
            x_ticks.append(Tick(round(middle.x + middle.width / 2, 2), f"{middle.day:%b %d}"))
        if len(bars) > 1:
            x_ticks.append(Tick(round(last.x + last.width, 2), f"{last.day:%b %d}", "end"))
    return BarChart(WIDTH, HEIGHT, LEFT, baseline, bars, y_ticks, x_ticks)
