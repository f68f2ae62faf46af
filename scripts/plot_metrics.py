#!/usr/bin/env python3
"""Records a pipeline's scraped metrics and draws them as an SVG (standard library only).

    scripts/plot_metrics.py record URL OUT.tsv SECONDS   scrape URL every 0.5 s
    scripts/plot_metrics.py plot IN.tsv OUT.svg           two panels over time

`record` writes one line per scrape: seconds since start, the input lag
(sum of timely_kafka_source_lag_records), transactions committed so far, and
the mean duration of the transactions committed since the previous scrape
(from timely_kafka_pipeline_transaction_seconds _sum/_count; empty if none).
Lines starting with `# event` (`# event SECONDS LABEL`, appended by the
caller, e.g. scripts/metrics_restart.sh) mark moments on the plot.
"""
import sys
import time
import urllib.request
from xml.sax.saxutils import escape


def series(text, name):
    total, found = 0.0, False
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            total += float(line.rsplit(" ", 1)[1])
            found = True
    return total if found else None


def record(url, out, seconds):
    start = time.time()
    last_sum = last_count = 0.0
    with open(out, "w") as f:
        f.write("seconds\tlag\tcommits\tcommit_seconds\n")
        while time.time() - start < seconds:
            try:
                text = urllib.request.urlopen(url, timeout=2).read().decode()
            except OSError:
                time.sleep(0.5)
                continue
            lag = series(text, "timely_kafka_source_lag_records")
            commits = series(text, "timely_kafka_pipeline_transactions_committed_total") or 0
            total = series(text, "timely_kafka_pipeline_transaction_seconds_sum") or 0.0
            count = series(text, "timely_kafka_pipeline_transaction_seconds_count") or 0.0
            mean = (total - last_sum) / (count - last_count) if count > last_count else None
            last_sum, last_count = total, count
            f.write(f"{time.time() - start:.2f}\t{'' if lag is None else int(lag)}\t{int(commits)}\t"
                    f"{'' if mean is None else f'{mean:.4f}'}\n")
            f.flush()
            time.sleep(0.5)


WIDTH, PANEL, LEFT, RIGHT, TOP, GAP = 760, 170, 80, 30, 40, 50


def plot(source, target):
    rows, events = [], []
    for line in open(source):
        if line.startswith("# event"):
            _, _, at, label = line.rstrip("\n").split(" ", 3)
            if (float(at), label) not in events:
                events.append((float(at), label))
        elif line.strip() and not line.startswith("seconds") and not line.startswith("#"):
            rows.append(line.rstrip("\n").split("\t"))
    xs = [float(r[0]) for r in rows]
    x_max = max(xs) if xs else 1
    panels = [
        ("input lag (records)", [(float(r[0]), float(r[1])) for r in rows if r[1]], "#1f77b4"),
        ("commit latency (s, mean per scrape)", [(float(r[0]), float(r[3])) for r in rows if len(r) > 3 and r[3]],
         "#d62728"),
    ]
    height = TOP + 2 * PANEL + GAP + 40
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
           f'font-family="sans-serif" font-size="12">',
           f'<rect width="{WIDTH}" height="{height}" fill="white"/>',
           f'<text x="{WIDTH / 2}" y="20" text-anchor="middle" font-size="14">'
           f'word_count --exactly-once --live through a broker restart (scraped every 0.5 s)</text>']
    plot_w = WIDTH - LEFT - RIGHT
    for index, (title, points, color) in enumerate(panels):
        top = TOP + index * (PANEL + GAP)
        # Lag is a count: at least 0..10 on its axis, so a flat 0 reads as 0.
        y_max = max([p[1] for p in points] + [10.0 if index == 0 else 1e-9]) * 1.1
        sx = lambda x: LEFT + plot_w * x / x_max
        sy = lambda y: top + PANEL - PANEL * y / y_max
        out.append(f'<rect x="{LEFT}" y="{top}" width="{plot_w}" height="{PANEL}" fill="none" stroke="#888"/>')
        out.append(f'<text x="{LEFT}" y="{top - 6}">{escape(title)}</text>')
        for k in range(5):
            y = y_max * k / 4
            label = f"{y:.0f}" if y_max > 10 else f"{y:.2f}"
            out.append(f'<text x="{LEFT - 6}" y="{sy(y) + 4:.1f}" text-anchor="end">{label}</text>')
            out.append(f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{sy(y):.1f}" y2="{sy(y):.1f}" stroke="#eee"/>')
        for at, label in events:
            out.append(f'<line x1="{sx(at)}" x2="{sx(at)}" y1="{top}" y2="{top + PANEL}" stroke="#999" '
                       f'stroke-dasharray="4,3"/>')
            if index == 0:
                out.append(f'<text x="{sx(at) + 3}" y="{top + 12}" fill="#555">{escape(label)}</text>')
        if points:
            path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in points)
            out.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="1.5"/>')
    axis_y = TOP + 2 * PANEL + GAP
    for k in range(6):
        x = x_max * k / 5
        out.append(f'<text x="{LEFT + plot_w * k / 5}" y="{axis_y + 16}" text-anchor="middle">{x:.0f}</text>')
    out.append(f'<text x="{LEFT + plot_w / 2}" y="{axis_y + 34}" text-anchor="middle">seconds</text>')
    out.append("</svg>")
    with open(target, "w") as f:
        f.write("\n".join(out) + "\n")


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "record":
        record(sys.argv[2], sys.argv[3], float(sys.argv[4]))
    elif len(sys.argv) == 4 and sys.argv[1] == "plot":
        plot(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)
