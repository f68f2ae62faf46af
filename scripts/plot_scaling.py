#!/usr/bin/env python3
"""Draws MB/s against worker count as an SVG line chart (standard library only).

    scripts/plot_scaling.py RESULTS.tsv OUT.svg

RESULTS.tsv: a header line `workers<TAB>series...`, then one line per worker
count with one MB/s value per series ("" or "-" for a missing value).
Written by scripts/bench_scale.sh.
"""
import math
import sys
from xml.sax.saxutils import escape

COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]
DASHES = ["", "6,3", "", "6,3", "", "6,3", "", "6,3"]
WIDTH, HEIGHT = 760, 420
LEFT, RIGHT, TOP, BOTTOM = 70, 220, 40, 50


def read(path):
    with open(path) as f:
        rows = [line.rstrip("\n").split("\t") for line in f if line.strip()]
    names = rows[0][1:]
    workers = [int(r[0]) for r in rows[1:]]
    series = {}
    for i, name in enumerate(names):
        points = []
        for r in rows[1:]:
            value = r[i + 1] if i + 1 < len(r) else ""
            if value not in ("", "-"):
                points.append((int(r[0]), float(value)))
        series[name] = points
    return workers, series


def main():
    source, target = sys.argv[1], sys.argv[2]
    workers, series = read(source)
    # MB/s on a log10 axis: the file log (thousands) and Kafka (hundreds)
    # both stay readable on one chart.
    values = [v for pts in series.values() for _, v in pts if v > 0] or [1.0]
    ymin = 10 ** math.floor(math.log10(min(values)))
    ymax = 10 ** math.ceil(math.log10(max(values)))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    # Workers on a log2 axis: 1, 2, 4, 8 equally spaced.
    ticks = sorted(set(workers))
    lo, hi = math.log2(ticks[0]), math.log2(ticks[-1])
    span = (hi - lo) or 1.0

    def x(w):
        return LEFT + (math.log2(w) - lo) / span * plot_w

    def y(v):
        fraction = (math.log10(max(v, ymin)) - math.log10(ymin)) / (math.log10(ymax) - math.log10(ymin))
        return TOP + plot_h - fraction * plot_h

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'font-family="sans-serif" font-size="12">',
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
        f'<text x="{LEFT + plot_w / 2}" y="22" text-anchor="middle" font-size="15">'
        "Throughput against workers (median MB/s, log scale)</text>",
    ]
    grid = []
    decade = ymin
    while decade <= ymax:
        grid += [m * decade for m in (1, 2, 5) if m * decade <= ymax]
        decade *= 10
    for v in grid:
        out.append(f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{LEFT - 8}" y="{y(v) + 4:.1f}" text-anchor="end">{v:g}</text>')
    for w in ticks:
        out.append(f'<line x1="{x(w):.1f}" x2="{x(w):.1f}" y1="{TOP}" y2="{TOP + plot_h}" stroke="#eee"/>')
        out.append(f'<text x="{x(w):.1f}" y="{TOP + plot_h + 18}" text-anchor="middle">{w}</text>')
    out.append(f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#333"/>')
    out.append(f'<text x="{LEFT + plot_w / 2}" y="{HEIGHT - 10}" text-anchor="middle">workers (send = receive)</text>')
    out.append(
        f'<text x="18" y="{TOP + plot_h / 2}" text-anchor="middle" transform="rotate(-90 18 {TOP + plot_h / 2})">'
        "MB/s (log)</text>"
    )
    for i, (name, points) in enumerate(series.items()):
        color, dash = COLORS[i % len(COLORS)], DASHES[i % len(DASHES)]
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        if len(points) > 1:
            path = " ".join(f"{x(w):.1f},{y(v):.1f}" for w, v in points)
            out.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"{dash_attr}/>')
        for w, v in points:
            out.append(f'<circle cx="{x(w):.1f}" cy="{y(v):.1f}" r="3" fill="{color}"/>')
        ly = TOP + 10 + i * 20
        lx = LEFT + plot_w + 15
        out.append(f'<line x1="{lx}" x2="{lx + 24}" y1="{ly}" y2="{ly}" stroke="{color}" stroke-width="2"{dash_attr}/>')
        out.append(f'<text x="{lx + 30}" y="{ly + 4}">{escape(name)}</text>')
    out.append("</svg>")
    with open(target, "w") as f:
        f.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
