"""The held-out accuracy (the run's own metric) and ACEBench Overall across iterations (plotext
through textual-plotext). The BFCL-v3 Overall is plotted only from a core that sends no held-out
counts: over a subset it counts every unevaluated category as 0 (console/telemetry.py HeldOut.partial).

Replotting is CPU work on the UI loop, so it happens only when a score changes (a few times a run).
"""
from __future__ import annotations

from textual_plotext import PlotextPlot

LINES = (("heldout", "held-out", "cyan"), ("bfcl", "BFCL-v3", "cyan"),  # (points key, legend, colour)
         ("acebench", "ACEBench", "magenta"))


class AccuracyPlot(PlotextPlot):
    def on_mount(self) -> None:
        self.show({})

    def show(self, points: dict[str, list[tuple[int, float]]]) -> None:
        """points: line key of LINES -> [(iteration, accuracy as a fraction or a percent)]."""
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        plt.title("accuracy (%) by iteration")
        any_points = False
        for key, label, color in LINES:
            pts = points.get(key) or []
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
