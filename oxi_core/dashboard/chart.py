"""Bar charts as inline SVG, drawn on the server: no chart library, nothing fetched, and a
table beside each chart carries the same figures for screen readers."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from oxi_core.dashboard.markup import Markup, el, join

# Distinct on white and on the dark theme's background; the legend names every colour.
PALETTE = ("#1f6fd1", "#d9730d", "#2e8540", "#8e44ad", "#c0392b", "#5d6d7e")
OTHER = "other"
WIDTH, HEIGHT = 640, 200
LEFT, BOTTOM, TOP = 56, 22, 8


def series_colours(totals: Mapping[str, float], limit: int = len(PALETTE) - 1
                   ) -> dict[str, str]:
    """The largest ``limit`` series get a colour each; the rest are drawn together as
    ``other`` in the last colour."""
    ranked = sorted((name for name, value in totals.items() if value),
                    key=lambda name: (-totals[name], name))
    colours = {name: PALETTE[i] for i, name in enumerate(ranked[:limit])}
    if len(ranked) > limit:
        colours[OTHER] = PALETTE[-1]
    return colours


def stacked_bars(columns: Sequence[tuple[str, Mapping[str, float]]], colours: Mapping[str, str],
                 *, chart_id: str, title: str, description: str,
                 fmt: Callable[[float], str]) -> Markup:
    """One bar per column (a day), stacked by series in ``colours`` order."""
    folded = [(label, _fold(values, colours)) for label, values in columns]
    peak = max((sum(values.values()) for _label, values in folded), default=0.0) or 1.0
    plot_w, plot_h = WIDTH - LEFT, HEIGHT - BOTTOM - TOP
    step = plot_w / max(len(folded), 1)
    bar_w = max(step * 0.7, 1.0)
    parts: list[Markup] = [
        el("title", title, id=f"{chart_id}-title"),
        el("desc", description, id=f"{chart_id}-desc"),
    ]
    for fraction in (0.0, 0.5, 1.0):
        y = TOP + plot_h * (1 - fraction)
        parts.append(el("line", x1=LEFT, x2=WIDTH, y1=_n(y), y2=_n(y), class_="grid"))
        parts.append(el("text", fmt(peak * fraction), x=LEFT - 4, y=_n(y + 4),
                        class_="axis", text_anchor="end"))
    for index, (label, values) in enumerate(folded):
        x = LEFT + index * step + (step - bar_w) / 2
        base = float(TOP + plot_h)
        for name, colour in colours.items():
            value = values.get(name, 0.0)
            if value <= 0:
                continue
            height = plot_h * value / peak
            base -= height
            parts.append(el("rect", el("title", f"{label} {name}: {fmt(value)}"),
                            x=_n(x), y=_n(base), width=_n(bar_w), height=_n(max(height, 0.5)),
                            fill=colour))
    if folded:
        for index in sorted({0, len(folded) // 2, len(folded) - 1}):
            x = LEFT + index * step + step / 2
            parts.append(el("text", folded[index][0][5:], x=_n(x), y=HEIGHT - 6,
                            class_="axis", text_anchor="middle"))
    return el("svg", join(parts), id=chart_id, class_="chart", role="img",
              viewBox=f"0 0 {WIDTH} {HEIGHT}", preserveAspectRatio="xMidYMid meet",
              aria_labelledby=f"{chart_id}-title {chart_id}-desc")


def legend(colours: Mapping[str, str], totals: Mapping[str, float],
           fmt: Callable[[float], str]) -> Markup:
    items = []
    for name, colour in colours.items():
        value = (sum(v for n, v in totals.items() if n not in colours) if name == OTHER
                 else totals.get(name, 0.0))
        swatch = el("svg", el("rect", width=12, height=12, fill=colour), width=12, height=12,
                    aria_hidden="true", class_="swatch")
        items.append(el("li", swatch, " ", name, " ", el("span", fmt(value), class_="muted")))
    return el("ul", join(items), class_="legend")


def _fold(values: Mapping[str, float], colours: Mapping[str, str]) -> dict[str, float]:
    folded: dict[str, float] = {}
    for name, value in values.items():
        key = name if name in colours else OTHER
        folded[key] = folded.get(key, 0.0) + value
    return folded


def _n(value: float) -> str:
    return f"{value:.1f}"
