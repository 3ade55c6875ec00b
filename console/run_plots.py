"""The plots of `looptool runs report`, drawn with matplotlib's Agg canvas into PNG `data:` URIs.

Each function takes plain numbers (console/run_report.py picks them out of the run's doc) and returns
one `data:image/png;base64,...` string, so the page holds its images and fetches nothing. matplotlib is
imported inside the functions: the rest of the CLI starts without it. No pyplot: a Figure of its own
per plot, so nothing global (backend, open figures) is touched.
"""
from __future__ import annotations

import base64
import io

DPI = 100
WIDTH_IN = 9.0
PERCENT = 100.0


def _figure(height_in: float = 4.0, rows: int = 1):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(WIDTH_IN, height_in), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, 1, squeeze=False)[:, 0]
    return fig, list(axes)


def _data_uri(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, facecolor="white")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _text(label: str) -> str:
    """A label from the run as plain text: matplotlib reads $...$ as math (and fails on a lone one)."""
    return str(label).replace("$", r"\$")


def _colors(n: int) -> list:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def _legend(ax, n: int) -> None:
    if n:
        ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)


def iteration_lines(title: str, series: dict[str, list[tuple[int, float | None]]],
                    highlight: str | None = None, ylabel: str = "accuracy %") -> str:
    """One line per series over iterations (x: iteration, y: a share in 0..1, drawn in %); `highlight`
    names the series drawn thick and black (the mean)."""
    from matplotlib.ticker import MaxNLocator

    fig, (ax,) = _figure()
    for (name, points), color in zip(series.items(), _colors(len(series))):
        pts = [(x, PERCENT * y) for x, y in points if y is not None]
        if not pts:
            continue
        xs, ys = zip(*pts)
        style = dict(color="black", linewidth=3, zorder=3) if name == highlight else dict(color=color, linewidth=1.5)
        ax.plot(xs, ys, marker="o", label=_text(name), **style)
    ax.set_title(title)
    ax.set_xlabel("iteration (0: the base model)")
    ax.set_ylabel(ylabel)
    ax.set_ylim(-2, 102)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    _legend(ax, len(series))
    return _data_uri(fig)


def stacked_bars(title: str, labels: list[str], series: dict[str, list[float]], ylabel: str) -> str:
    """Bars at `labels`, each stacked from the series' values at that position."""
    fig, (ax,) = _figure()
    bottom = [0.0] * len(labels)
    for (name, values), color in zip(series.items(), _colors(len(series))):
        ax.bar([_text(x) for x in labels], values, bottom=bottom, label=_text(name), color=color)
        bottom = [b + v for b, v in zip(bottom, values)]
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    ax.grid(axis="y", alpha=0.3)
    _legend(ax, len(series))
    return _data_uri(fig)


def grouped_hbars(title: str, rows: list[str], groups: dict[str, list[float | None]], xlabel: str) -> str:
    """Horizontal bars: one row per label in `rows`, one bar per group (an iteration) within the row."""
    n = max(1, len(groups))
    height = 0.8 / n
    fig, (ax,) = _figure(height_in=max(3.0, 0.25 * len(rows) * n + 1.2))
    for g, ((name, values), color) in enumerate(zip(groups.items(), _colors(len(groups)))):
        ys = [i + (g - (n - 1) / 2) * height for i in range(len(rows))]
        ax.barh(ys, [PERCENT * v if v is not None else 0.0 for v in values], height=height, label=_text(name),
                color=color)
    ax.set_yticks(range(len(rows)), [_text(r) for r in rows])
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.grid(axis="x", alpha=0.3)
    _legend(ax, len(groups))
    return _data_uri(fig)


def train_curves(title: str, panels: dict[str, list[tuple[int, float]]], boundaries: list[tuple[int, str]]) -> str:
    """One panel per metric (loss, reward, ...) over the run's optimizer steps; a dashed line where each
    iteration's training starts, labelled with it."""
    fig, axes = _figure(height_in=2.6 * len(panels) + 0.6, rows=len(panels))
    for ax, (name, points) in zip(axes, panels.items()):
        if points:
            xs, ys = zip(*points)
            ax.plot(xs, ys, marker="." if len(points) < 60 else None, linewidth=1.5, color="tab:blue")
        for step, label in boundaries:
            ax.axvline(step, color="grey", linestyle="--", linewidth=1)
            ax.annotate(_text(label), (step, 1.0), xycoords=("data", "axes fraction"), xytext=(3, -12),
                        textcoords="offset points", fontsize=8, color="grey")
        ax.set_ylabel(_text(name))
        ax.grid(alpha=0.3)
    axes[0].set_title(title)
    axes[-1].set_xlabel("optimizer step of the run (iterations one after another)")
    return _data_uri(fig)
