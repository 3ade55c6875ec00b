"""`looptool runs report RUN --out report.html`: one self-contained HTML page on a run.

    build_report(doc, curves) -> str     the page: sections with a plot (a PNG `data:` URI) and its numbers
    write_report(doc, out)               curves from the run directory, the page written atomically

`doc` is what `looptool runs show --json` prints (console.cli_runs.run_doc); `curves` is each
iteration's train curve (train_curves). The page has no script and names no URL outside itself: it opens
the same from a file, an e-mail or a machine without a network. Every string that comes from the run
(ids, categories, kinds, reasons) is HTML-escaped. A section without data (no ACEBench, no judge verdicts,
no GRPO iteration) says so in a sentence instead of drawing an empty plot.
"""
from __future__ import annotations

import html
import re
from datetime import datetime, timezone
from pathlib import Path

from core.errors import UserError

COMPOSITION_PARTS = ("error_seeds", "expansions", "high_ppl", "fresh_seeds", "topped_up")
ACEBENCH_COLUMNS = (("Normal", "normal"), ("Special", "special"), ("Agent", "agent"), ("Overall", "overall"))
MEAN = "subset mean"
_ITER_DIR = re.compile(r"^iter-(\d+)$")

STYLE = """
body { font-family: sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.85em; }
th, td { border: 1px solid #ddd; padding: 2px 8px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
figure { margin: 0.8em 0; } img { max-width: 100%; height: auto; }
p.none { color: #666; font-style: italic; }
"""


def esc(value) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def pct(x) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


# -- reading --------------------------------------------------------------------------------------

def train_curves(doc: dict) -> dict[int, list[dict]]:
    """Each iteration's train curve: its train_curve.jsonl in the run directory (full precision, and
    there while the iteration is still training), else the curve its store record keeps."""
    from core.train_curve import CURVE_FILE, read_curve

    curves = {it["iteration"]: [p for p in (it.get("train") or {}).get("curve") or []
                                if isinstance(p, dict) and isinstance(p.get("step"), int)]
              for it in doc.get("iterations", [])}
    run_dir = Path(doc["run"].get("run_dir") or "")
    if doc["run"].get("run_dir") and run_dir.is_dir():
        for d in run_dir.iterdir():
            m = _ITER_DIR.match(d.name)
            if m and (d / CURVE_FILE).is_file():
                try:
                    points = read_curve(d / CURVE_FILE)
                except (OSError, UnicodeDecodeError) as e:
                    raise UserError(f"{d / CURVE_FILE}: cannot be read: {e}") from None
                if points:
                    curves[int(m.group(1))] = points
    return {j: curves[j] for j in sorted(curves) if curves[j]}


def write_report(doc: dict, out: Path) -> None:
    """The page for `doc` written to `out` (through a temp file: an old report stays whole until the new
    one replaces it); UserError when `out` cannot be written."""
    from core.records import write_text_atomic

    out = Path(out)
    if out.is_dir():
        raise UserError(f"--out: {out} is a folder; give a file name such as {out / 'report.html'}")
    if not out.parent.is_dir():
        raise UserError(f"--out: folder {out.parent} does not exist")
    page = build_report(doc, train_curves(doc))
    try:
        write_text_atomic(out, page)
    except OSError as e:
        out.with_name(out.name + ".tmp").unlink(missing_ok=True)
        raise UserError(f"--out: {out}: {e.strerror or e}") from None


# -- the page ---------------------------------------------------------------------------------------

def build_report(doc: dict, curves: dict[int, list[dict]]) -> str:
    run = doc["run"]
    sections = [_heldout(doc), _leaderboards(doc), _composition(doc), _verdicts(doc), _training(doc, curves),
                _mastery(doc)]
    facts = [("state", run.get("state")), ("model", run.get("model")), ("iterations", run.get("iterations")),
             ("run directory", run.get("run_dir")), ("updated", run.get("updated_at"))]
    made = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>looptool run {esc(run['run_id'])}</title><style>{STYLE}</style></head><body>",
        f"<h1>looptool run {esc(run['run_id'])}</h1>",
        _table(["", ""], [[k, v] for k, v in facts if v is not None], header=False),
        f"<p>Written {esc(made)} by <code>looptool runs report</code> from the results store and the run "
        "directory.</p>",
        *sections, "</body></html>", ""])


def _section(title: str, body: list[str]) -> str:
    return "\n".join([f"<h2>{esc(title)}</h2>", *body])


def _plot(uri: str, alt: str) -> str:
    return f'<figure><img src="{esc(uri)}" alt="{esc(alt)}"><figcaption>{esc(alt)}</figcaption></figure>'


def _none(sentence: str) -> str:
    return f'<p class="none">{esc(sentence)}</p>'


def _table(head: list, rows: list[list], header: bool = True) -> str:
    out = ["<table>"]
    if header:
        out.append("<tr>" + "".join(f"<th>{esc(h)}</th>" for h in head) + "</tr>")
    out += ["<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in rows]
    out.append("</table>")
    return "\n".join(out)


def loop_evals(evals: list[dict] | None) -> list[dict]:
    """The loop's own evals, one per iteration (the console's on-demand evals, on subsets the operator
    chose, are not points of these lines)."""
    return [e for e in evals or [] if not e.get("on_demand") and isinstance(e.get("iteration"), int)]


def _heldout(doc: dict) -> str:
    from console import run_plots

    evals = loop_evals(doc.get("evals"))
    title = "Held-out accuracy per iteration (BFCL-v3 subset of the run)"
    if not evals:
        return _section(title, [_none("No evaluation has been stored for this run yet.")])
    categories = sorted({c for e in evals for c in (e.get("per_category") or {})})
    series = {c: [(e["iteration"], (e.get("per_category") or {}).get(c)) for e in evals] for c in categories}
    series[MEAN] = [(e["iteration"], e.get("accuracy")) for e in evals]
    uri = run_plots.iteration_lines("BFCL-v3 held-out accuracy per category", series, highlight=MEAN)
    rows = [[c, *(pct((e.get("per_category") or {}).get(c)) for e in evals)] for c in categories]
    rows.append([MEAN, *(pct(e.get("accuracy")) for e in evals)])
    return _section(title, [_plot(uri, "held-out accuracy (%) per category and iteration"),
                            _table(["category", *(f"iter {e['iteration']}" for e in evals)], rows)])


def _leaderboards(doc: dict) -> str:
    from console import run_plots
    from console.report import acebench_skipped
    from evals.bfcl_metrics import LEADERBOARD_COLUMNS

    body = []
    evals = loop_evals(doc.get("evals"))
    if evals:
        series = {label: [(e["iteration"], e["scores"].get(key)) for e in evals] for label, key in LEADERBOARD_COLUMNS}
        body.append(_plot(run_plots.iteration_lines("BFCL-v3 leaderboard columns (v3 formula)", series,
                                                      ylabel="score %"),
                            "BFCL-v3 leaderboard columns per iteration (categories not evaluated count 0)"))
        body.append(_table(["iteration", *(label for label, _ in LEADERBOARD_COLUMNS)],
                           [[e["iteration"], *(pct(e["scores"].get(k)) for _, k in LEADERBOARD_COLUMNS)]
                            for e in evals]))
    else:
        body.append(_none("No BFCL-v3 evaluation has been stored for this run yet."))
    ace = loop_evals(doc.get("acebench"))
    reasons = acebench_skipped(doc)
    if ace:
        series = {label: [(e["iteration"], e["scores"].get(key)) for e in ace] for label, key in ACEBENCH_COLUMNS}
        body.append(_plot(run_plots.iteration_lines("ACEBench (en) columns", series, highlight="Overall",
                                                      ylabel="score %"),
                            "ACEBench Normal, Special, Agent and Overall per iteration (compat scorer)"))
        body.append(_table(["iteration", *(label for label, _ in ACEBENCH_COLUMNS)],
                           [[e["iteration"], *(pct(e["scores"].get(k)) for _, k in ACEBENCH_COLUMNS)] for e in ace]))
        body += [_none(f"ACEBench was not evaluated in some iterations: {r}") for r in reasons]
    elif reasons:
        body += [_none(f"ACEBench was not evaluated: {r}") for r in reasons]
    else:
        body.append(_none("ACEBench is not part of this run's evaluation (eval.acebench = false)."))
    extra = len(doc.get("evals") or []) + len(doc.get("acebench") or []) - len(evals) - len(ace)
    if extra:
        body.append(_none(f"{extra} on-demand evaluation(s) of this run are not drawn here: `looptool eval "
                          "list` and `looptool eval show` have them."))
    return _section("Leaderboard columns: BFCL-v3 and ACEBench", body)


def _composition(doc: dict) -> str:
    from console import run_plots

    title = "Dataset composition per iteration (the next dataset D(j+1) each iteration assembles)"
    built = [it for it in doc.get("iterations", []) if it.get("assemble")]
    if not built:
        return _section(title, [_none("No iteration has assembled a next dataset (a one-iteration run, or "
                                      "the first iteration is still running).")])
    parts = [p for p in COMPOSITION_PARTS if any(it["assemble"].get(p) for it in built)] or ["fresh_seeds"]
    labels = [f"D{it['iteration'] + 1} (iter {it['iteration']})" for it in built]
    series = {p: [float(it["assemble"].get(p) or 0) for it in built] for p in parts}
    uri = run_plots.stacked_bars("samples in each next dataset, by origin", labels, series, "samples")
    rows = [[label, *(it["assemble"].get(p, 0) for p in parts), it["assemble"].get("total", "")]
            for label, it in zip(labels, built)]
    return _section(title, [_plot(uri, "dataset composition: error seeds, expansions, high-perplexity "
                                         "mastered samples, fresh seeds"),
                            _table(["dataset", *parts, "total"], rows)])


def _verdicts(doc: dict) -> str:
    from console import run_plots

    title = "Judge verdicts per iteration"
    judged = [it for it in doc.get("iterations", []) if (it.get("judge") or {}).get("verdicts")]
    if not judged:
        return _section(title, [_none("No judge verdicts in this run (no iteration has probed and judged its "
                                      "dataset yet, or the judge stage is not part of it).")])
    names = list(dict.fromkeys(v for it in judged for v in it["judge"]["verdicts"]))
    labels = [f"iter {it['iteration']}" for it in judged]
    series = {v: [float(it["judge"]["verdicts"].get(v) or 0) for it in judged] for v in names}
    uri = run_plots.stacked_bars("the judge's verdicts on the probe's mismatches", labels, series, "samples")
    rows = [[label, *(it["judge"]["verdicts"].get(v, 0) for v in names), it["judge"].get("judged", "")]
            for label, it in zip(labels, judged)]
    return _section(title, [_plot(uri, "judge verdicts per iteration"),
                            _table(["iteration", *names, "judged"], rows)])


def _training(doc: dict, curves: dict[int, list[dict]]) -> str:
    from console import run_plots

    title = "Training: loss and reward"
    if not curves:
        return _section(title, [_none("No training step has been logged in this run yet.")])
    methods = {it["iteration"]: (it.get("train") or {}).get("method") for it in doc.get("iterations", [])}
    panels: dict[str, list[tuple[int, float]]] = {"loss": [], "reward": []}
    boundaries, offset = [], 0
    for j, points in curves.items():
        boundaries.append((offset, f"iter {j}" + (f" {methods[j]}" if methods.get(j) else "")))
        for p in points:
            for key in panels:
                if isinstance(p.get(key), (int, float)):
                    panels[key].append((offset + p["step"], float(p[key])))
        offset += max(p["step"] for p in points)
    body = []
    if not panels["reward"]:
        del panels["reward"]
        body.append(_none("No GRPO iteration has logged a reward: the reward curve is left out (SFT logs a "
                          "loss only)."))
    if not panels["loss"]:
        del panels["loss"]
    if panels:
        body.insert(0, _plot(run_plots.train_curves("per optimizer step", panels, boundaries),
                               "training " + " and ".join(panels) + " over the run's optimizer steps"))
    else:
        body.append(_none("The logged steps carry no loss or reward."))
    rows = [[f"iter {j}", methods.get(j) or "", len(points), _num(_first(points, "loss")),
             _num(_first(points[::-1], "loss")), _num(_first(points, "reward")), _num(_first(points[::-1], "reward"))]
            for j, points in curves.items()]
    body.append(_table(["iteration", "method", "steps", "first loss", "last loss", "first reward", "last reward"],
                       rows))
    return _section(title, body)


def _first(points: list[dict], key: str):
    return next((p[key] for p in points if isinstance(p.get(key), (int, float))), None)


def _num(x) -> str:
    return "-" if x is None else f"{x:.4g}"


def _mastery(doc: dict) -> str:
    from console import run_plots

    title = "Probe mastery per kind of sample"
    probed = [i for i in (doc.get("instruments") or {}).get("iterations", []) if i.get("by_kind")]
    if not probed:
        return _section(title, [_none("No iteration has probed its dataset yet (the last iteration does not "
                                      "probe: nothing after it would use the result).")])
    kinds = sorted({k for i in probed for k in i["by_kind"]})

    def share(i, kind):
        k = i["by_kind"].get(kind) or {}
        return k["mastered"] / k["total"] if k.get("total") else None

    groups = {f"iter {i['iteration']}": [share(i, k) for k in kinds] for i in probed}
    uri = run_plots.grouped_hbars("share of each kind the policy already masters", kinds, groups, "mastered %")
    rows = [[k, *("-" if not (c := i["by_kind"].get(k)) else f"{c['mastered']}/{c['total']} ({pct(share(i, k))}%)"
                  for i in probed)] for k in kinds]
    return _section(title, [_plot(uri, "probe mastery (%) per kind and iteration"),
                            _table(["kind", *groups], rows)])
