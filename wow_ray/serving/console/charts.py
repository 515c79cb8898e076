"""Charts drawn on the server as inline SVG: the console's Content-Security-Policy runs no script
but its own, so a chart is markup. Every text in it is escaped here (labels may come from files
other people wrote), and numbers are formatted floats, so the result is safe to embed."""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape

from wow_ray.flywheel.history import COLOURS

WIDTH, HEIGHT, PAD = 640, 240, 40


def line_chart(labels: Sequence[str], series: dict[str, Sequence[float | None]],
               title: str) -> Markup:
    """Lines over 0..1 for each series (a gap where a value is None), one x tick per label."""
    n = len(labels)
    plot_w, plot_h = WIDTH - 2 * PAD, HEIGHT - 2 * PAD

    def x(i: int) -> float:
        return PAD + (plot_w * i / (n - 1) if n > 1 else plot_w / 2)

    def y(v: float) -> float:
        return PAD + plot_h * (1 - max(0.0, min(1.0, v)))

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" '
             f'viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}">',
             f"<title>{escape(title)}</title>"]
    for tick in (0.0, 0.5, 1.0):
        parts.append(f'<line x1="{PAD}" x2="{WIDTH - PAD}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" '
                     f'stroke="#ddd"/><text x="{PAD - 6}" y="{y(tick) + 4:.1f}" '
                     f'text-anchor="end" font-size="11">{tick:.1f}</text>')
    for i, label in enumerate(labels):
        parts.append(f'<text x="{x(i):.1f}" y="{HEIGHT - PAD + 16}" text-anchor="middle" '
                     f'font-size="11">{escape(label)}</text>')
    for k, (name, values) in enumerate(series.items()):
        colour = escape(COLOURS.get(name, "#333"))
        points = [(x(i), y(v)) for i, v in enumerate(values) if v is not None]
        if len(points) > 1:
            path = " ".join(f"{px:.1f},{py:.1f}" for px, py in points)
            parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" '
                         f'points="{path}"/>')
        for px, py in points:
            parts.append(f'<circle cx="{px:.1f}" cy="{py:.1f}" r="3" fill="{colour}"/>')
        parts.append(f'<text x="{WIDTH - PAD}" y="{16 + 14 * k}" text-anchor="end" '
                     f'font-size="12" fill="{colour}">{escape(name)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))
