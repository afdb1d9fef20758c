#!/usr/bin/env python3
"""Draws scripts/compare.sh's figures as SVG charts, from its JSON lines.

    python3 scripts/compare_charts.py target/compare/results.jsonl OUT_DIR

Writes, into OUT_DIR:
- throughput-get_hit.svg, throughput-set.svg: ops/s of every system at
  concurrency 1 and 64 (median of the rounds), one bar each, log scale;
- delete-expired-scaling.svg (when the run had --scaling): the time to
  remove the same number of entries against the store's size, log-log.

Plain SVG text, standard library only: the charts are small enough that a
plotting library would only add a dependency. Colours tell kvstores (blue)
from its peers (grey), concurrency 1 (light) from 64 (dark).
"""

import math
import os
import statistics
import sys
from html import escape

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare_table import load  # noqa: E402

FONT = 'font-family="system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif"'
OURS = ("#9ecae1", "#2171b5")
PEERS = ("#d9d9d9", "#737373")


def human(value):
    """1234567 -> 1.2M; 0.5 -> 0.5."""
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= limit:
            return f"{value / limit:.3g}{suffix}"
    return f"{value:.3g}"


def decades(low, high):
    """The powers of ten that bracket [low, high]."""
    first = math.floor(math.log10(low))
    last = math.ceil(math.log10(high))
    if last == first:
        last += 1
    return [10.0 ** e for e in range(first, last + 1)]


def throughput_chart(runs, op, concurrencies=(1, 64)):
    """Horizontal bars, one row per system, one bar per concurrency."""
    rate = {k: statistics.median(r["ops_per_s"] for r in v) for k, v in runs.items()}
    systems = [s for s in dict.fromkeys(k[0] for k in runs)
               if any((s, op, c) in rate for c in concurrencies)]
    if not systems:
        return None
    values = [rate[(s, op, c)] for s in systems for c in concurrencies if (s, op, c) in rate]
    ticks = decades(min(values), max(values))
    lo, hi = math.log10(ticks[0]), math.log10(ticks[-1])
    left, right, top, bar, gap = 290, 70, 58, 11, 9
    width = 900
    plot = width - left - right
    height = top + len(systems) * (bar * len(concurrencies) + gap) + 30

    def x(value):
        return left + (math.log10(value) - lo) / (hi - lo) * plot

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" {FONT} font-size="12">',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="{left}" y="20" font-size="15" font-weight="bold">'
           f'{escape(op)}: operations per second (log scale; median of the rounds)</text>']
    legend_x = left
    for shade, label in ((0, "concurrency 1"), (1, "concurrency 64")):
        out.append(f'<rect x="{legend_x}" y="30" width="12" height="12" fill="{OURS[shade]}"/>'
                   f'<rect x="{legend_x + 13}" y="30" width="12" height="12" fill="{PEERS[shade]}"/>'
                   f'<text x="{legend_x + 30}" y="40">{label}</text>')
        legend_x += 140
    out.append(f'<text x="{legend_x}" y="40" fill="#444">blue: kvstores; grey: peers</text>')
    bottom = height - 30
    for tick in ticks:
        tx = x(tick)
        out.append(f'<line x1="{tx:.1f}" y1="{top - 6}" x2="{tx:.1f}" y2="{bottom}" stroke="#ddd"/>'
                   f'<text x="{tx:.1f}" y="{bottom + 16}" text-anchor="middle" fill="#444">'
                   f'{human(tick)}</text>')
    y = top
    for system in systems:
        colours = OURS if system.startswith("kvstores-") else PEERS
        row = bar * len(concurrencies)
        out.append(f'<text x="{left - 8}" y="{y + row / 2 + 4:.1f}" text-anchor="end">'
                   f'{escape(system)}</text>')
        for i, c in enumerate(concurrencies):
            value = rate.get((system, op, c))
            if value is not None:
                end = x(value)
                out.append(f'<rect x="{left}" y="{y}" width="{max(end - left, 1):.1f}" '
                           f'height="{bar - 1}" fill="{colours[min(i, 1)]}">'
                           f'<title>{escape(system)} {op} c={c}: {value:,.0f} ops/s</title></rect>'
                           f'<text x="{end + 4:.1f}" y="{y + bar - 2}" font-size="10" fill="#333">'
                           f'{human(value)}</text>')
            y += bar
        y += gap
    out.append(f'<line x1="{left}" y1="{top - 6}" x2="{left}" y2="{bottom}" stroke="#444"/>')
    out.append("</svg>")
    return "\n".join(out)


def scaling_chart(scaling):
    """Time of one call against the store's size, one line per system and op."""
    series = {}
    for (system, op, size), rows in scaling.items():
        series.setdefault((system, op), []).append(
            (size, statistics.median(r["secs"] for r in rows) * 1000))
    removed = next(iter(scaling.values()))[0]["ops"]
    sizes = sorted({k[2] for k in scaling})
    times = [t for points in series.values() for _, t in points]
    xt, yt = decades(min(sizes), max(sizes)), decades(min(times), max(times))
    left, right, top, bottom_margin = 70, 280, 40, 45
    width, height = 820, 420
    pw, ph = width - left - right, height - top - bottom_margin

    def x(size):
        return left + (math.log10(size) - math.log10(xt[0])) / (
            math.log10(xt[-1]) - math.log10(xt[0])) * pw

    def y(ms):
        return top + ph - (math.log10(ms) - math.log10(yt[0])) / (
            math.log10(yt[-1]) - math.log10(yt[0])) * ph

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" {FONT} font-size="12">',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="{left}" y="22" font-size="15" font-weight="bold">'
           f'Removing {removed:,} entries: time (ms) against store size (log-log)</text>']
    for tick in xt:
        out.append(f'<line x1="{x(tick):.1f}" y1="{top}" x2="{x(tick):.1f}" y2="{top + ph}" '
                   f'stroke="#ddd"/><text x="{x(tick):.1f}" y="{top + ph + 16}" '
                   f'text-anchor="middle" fill="#444">{human(tick)} keys</text>')
    for tick in yt:
        out.append(f'<line x1="{left}" y1="{y(tick):.1f}" x2="{left + pw}" y2="{y(tick):.1f}" '
                   f'stroke="#ddd"/><text x="{left - 6}" y="{y(tick) + 4:.1f}" '
                   f'text-anchor="end" fill="#444">{human(tick)}</text>')
    out.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#444"/>')
    palette = {"kvstores-memory": "#2171b5", "kvstores-file": "#d94801"}
    for n, ((system, op), points) in enumerate(sorted(series.items())):
        points.sort()
        colour = palette.get(system, "#555")
        dash = "" if op == "delete_expired" else ' stroke-dasharray="6 4"'
        path = " ".join(f"{x(s):.1f},{y(t):.1f}" for s, t in points)
        out.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"{dash}/>')
        for s, t in points:
            out.append(f'<circle cx="{x(s):.1f}" cy="{y(t):.1f}" r="3.5" fill="{colour}">'
                       f'<title>{escape(system)} {op}, {s:,} keys: {t:.1f} ms</title></circle>')
        ly = top + 14 + n * 20
        out.append(f'<line x1="{left + pw + 14}" y1="{ly - 4}" x2="{left + pw + 44}" y2="{ly - 4}" '
                   f'stroke="{colour}" stroke-width="2"{dash}/><text x="{left + pw + 50}" y="{ly}">'
                   f'{escape(system)} {escape(op)}</text>')
    out.append("</svg>")
    return "\n".join(out)


def main(path, out_dir):
    runs, scaling, _ = load(path)
    os.makedirs(out_dir, exist_ok=True)
    charts = {f"throughput-{op}.svg": throughput_chart(runs, op) for op in ("get_hit", "set")}
    if scaling:
        charts["delete-expired-scaling.svg"] = scaling_chart(scaling)
    for name, svg in charts.items():
        if svg is None:
            continue
        with open(os.path.join(out_dir, name), "w") as f:
            f.write(svg + "\n")
        print(f"wrote {os.path.join(out_dir, name)}", file=sys.stderr)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: compare_charts.py RESULTS.jsonl OUT_DIR")
    main(sys.argv[1], sys.argv[2])
