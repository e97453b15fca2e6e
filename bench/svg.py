"""Small SVG charts written by hand (no plotting library): grouped bars, one group per row of a
table, one bar per target."""

from __future__ import annotations

from html import escape

COLOURS = ("#1f6feb", "#8a8f98", "#d9822b", "#2da44e", "#a371f7", "#cf222e")


def grouped_bars(
    title: str,
    groups: list[str],
    series: dict[str, list[float | None]],
    unit: str,
    width: int = 720,
) -> str:
    """``series``: target -> one value per group (None: no bar)."""
    height = 300
    left, right, top, bottom = 70, 20, 40, 80
    plot_w, plot_h = width - left - right, height - top - bottom
    values = [v for vs in series.values() for v in vs if v is not None]
    top_value = max(values) if values else 1.0
    top_value = _nice(top_value * 1.1 or 1.0)
    names = list(series)
    group_w = plot_w / max(1, len(groups))
    bar_w = min(40.0, group_w * 0.8 / max(1, len(names)))
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
        '<rect width="100%" height="100%" fill="white"/>',
        f'<text x="{width / 2}" y="20" text-anchor="middle" font-size="14">{escape(title)}</text>',
    ]
    for i in range(5):
        value = top_value * i / 4
        y = top + plot_h - plot_h * i / 4
        out.append(f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" '
                   'stroke="#ddd"/>')  # fmt: skip
        out.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{_fmt(value)}</text>')
    out.append(
        f'<text x="14" y="{top + plot_h / 2}" transform="rotate(-90 14 {top + plot_h / 2})" '
        f'text-anchor="middle">{escape(unit)}</text>'
    )
    for g, label in enumerate(groups):
        x0 = left + g * group_w + (group_w - bar_w * len(names)) / 2
        for s, name in enumerate(names):
            value = series[name][g] if g < len(series[name]) else None
            if value is None:
                continue
            h = plot_h * value / top_value
            x = x0 + s * bar_w
            out.append(
                f'<rect x="{x:.1f}" y="{top + plot_h - h:.1f}" width="{bar_w - 2:.1f}" '
                f'height="{h:.1f}" fill="{COLOURS[s % len(COLOURS)]}"><title>{escape(name)}: '
                f"{_fmt(value)} {escape(unit)}</title></rect>"
            )
        cx = left + g * group_w + group_w / 2
        out.append(f'<text x="{cx:.1f}" y="{top + plot_h + 16}" text-anchor="middle">'
                   f"{escape(label[:40])}</text>")  # fmt: skip
    for s, name in enumerate(names):
        x = left + s * 150
        y = height - 24
        out.append(f'<rect x="{x}" y="{y - 10}" width="12" height="12" '
                   f'fill="{COLOURS[s % len(COLOURS)]}"/>')  # fmt: skip
        out.append(f'<text x="{x + 18}" y="{y}">{escape(name)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _nice(value: float) -> float:
    magnitude = 10 ** len(str(int(value))) / 10 if value >= 1 else 0.1
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * magnitude:
            return step * magnitude
    return value


def _fmt(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"
