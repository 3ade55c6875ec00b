"""BFCL-v3 and ACEBench Overall across iterations (plotext through textual-plotext).

Replotting is CPU work on the UI loop, so it happens only when a score changes (a few times a run).
"""
from __future__ import annotations

from textual_plotext import PlotextPlot


class AccuracyPlot(PlotextPlot):
    def on_mount(self) -> None:
        self.show({})

    def show(self, points: dict[str, list[tuple[int, float]]]) -> None:
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        plt.title("Overall (%) by iteration")
        any_points = False
        for bench, label, color in (("bfcl", "BFCL-v3", "cyan"), ("acebench", "ACEBench", "magenta")):
            pts = points.get(bench) or []
            if pts:
                any_points = True
                xs = [j for j, _ in pts]
                ys = [v * 100 if v <= 1.0 else v for _, v in pts]
                plt.plot(xs, ys, label=label, marker="braille", color=color)
        if any_points:
            iters = sorted({j for pts in points.values() for j, _ in pts})
            plt.xticks(iters)
            ys = [v * 100 if v <= 1.0 else v for pts in points.values() for _, v in pts]
            lo, hi = min(ys), max(ys)
            pad = max(2.0, (hi - lo) * 0.15)
            plt.ylim(max(0.0, lo - pad), min(100.0, hi + pad))
        else:
            plt.ylim(0, 100)
        self.refresh()
