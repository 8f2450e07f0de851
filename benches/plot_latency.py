#!/usr/bin/env python3
"""Latency percentiles against offered load, as an SVG with no dependencies.

    plot_latency.py SWEEP MAX OUT.svg

SWEEP has one line per rate, as benches/load.sh writes it:
    offered_rps achieved_rps p50_ms p99_ms p99.9_ms errors 503s
MAX is the throughput measured at 16 connections (drawn as a vertical line).
The latency axis is logarithmic: past saturation latencies grow by orders of magnitude.
"""
import math
import sys

W, H = 720, 420
LEFT, RIGHT, TOP, BOTTOM = 70, 150, 40, 60
SERIES = [("p50", 2, "#1b9e77"), ("p99", 3, "#d95f02"), ("p99.9", 4, "#7570b3")]


def main(sweep_path, max_rps, out_path):
    rows = []
    with open(sweep_path) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 7:
                rows.append([float(p) for p in parts[:7]])
    if not rows:
        sys.exit(f"{sweep_path}: no measurements to plot")
    rows.sort()
    max_rps = float(max_rps)
    x_max = max(max(r[0] for r in rows), max_rps) * 1.05
    lat = [r[i] for r in rows for _, i, _ in SERIES if r[i] > 0]
    y_min = 10 ** math.floor(math.log10(min(lat)))
    y_max = 10 ** math.ceil(math.log10(max(lat)))
    pw, ph = W - LEFT - RIGHT, H - TOP - BOTTOM

    def x(v):
        return LEFT + pw * v / x_max

    def y(v):
        v = max(v, y_min)
        return TOP + ph * (1 - (math.log10(v) - math.log10(y_min)) / (math.log10(y_max) - math.log10(y_min)))

    svg = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
        f'<rect width="{W}" height="{H}" fill="white"/>',
        f'<text x="{LEFT}" y="22" font-size="14">jitguard serve: latency against offered load (open loop, 16 connections)</text>',
    ]
    decade = y_min
    while decade <= y_max * 1.001:
        svg.append(f'<line x1="{LEFT}" x2="{LEFT + pw}" y1="{y(decade):.1f}" y2="{y(decade):.1f}" stroke="#ddd"/>')
        svg.append(f'<text x="{LEFT - 6}" y="{y(decade) + 4:.1f}" text-anchor="end">{decade:g} ms</text>')
        decade *= 10
    step = 10 ** math.floor(math.log10(x_max / 2))
    tick = 0.0
    while tick <= x_max:
        svg.append(f'<line x1="{x(tick):.1f}" x2="{x(tick):.1f}" y1="{TOP + ph}" y2="{TOP + ph + 5}" stroke="black"/>')
        svg.append(f'<text x="{x(tick):.1f}" y="{TOP + ph + 18}" text-anchor="middle">{tick:g}</text>')
        tick += step
    svg.append(f'<text x="{LEFT + pw / 2}" y="{H - 15}" text-anchor="middle">offered load (requests/s)</text>')
    svg.append(f'<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="black"/>')
    svg.append(f'<line x1="{x(max_rps):.1f}" x2="{x(max_rps):.1f}" y1="{TOP}" y2="{TOP + ph}" stroke="#888" stroke-dasharray="4 3"/>')
    svg.append(f'<text x="{x(max_rps) - 4:.1f}" y="{TOP + 14}" text-anchor="end" fill="#555">max at 16 connections: {max_rps:g}/s</text>')
    for i, (name, col, color) in enumerate(SERIES):
        points = " ".join(f"{x(r[0]):.1f},{y(r[col]):.1f}" for r in rows)
        svg.append(f'<polyline points="{points}" fill="none" stroke="{color}" stroke-width="2"/>')
        for r in rows:
            svg.append(f'<circle cx="{x(r[0]):.1f}" cy="{y(r[col]):.1f}" r="3" fill="{color}"/>')
        ly = TOP + 20 + 20 * i
        svg.append(f'<line x1="{LEFT + pw + 15}" x2="{LEFT + pw + 40}" y1="{ly}" y2="{ly}" stroke="{color}" stroke-width="2"/>')
        svg.append(f'<text x="{LEFT + pw + 46}" y="{ly + 4}">{name}</text>')
    shed = [r for r in rows if r[6] > 0]
    if shed:
        first = shed[0]
        svg.append(f'<text x="{LEFT + pw + 15}" y="{TOP + 100}" fill="#555">503s from</text>')
        svg.append(f'<text x="{LEFT + pw + 15}" y="{TOP + 116}" fill="#555">{first[0]:g}/s offered</text>')
    svg.append("</svg>")
    with open(out_path, "w") as f:
        f.write("\n".join(svg) + "\n")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(*sys.argv[1:])
