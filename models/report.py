"""The evaluation report of a model version: ``metrics.json`` and a self-contained ``report.html``.

Plots are inline SVG from matplotlib (no JavaScript, nothing fetched), so the
page opens anywhere, including from a shared lake folder.
"""
from __future__ import annotations

import html
import io
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def _svg(figure) -> str:
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight")
    plt.close(figure)
    text = buffer.getvalue()
    return text[text.index("<svg"):]


def _bars(title: str, values: dict[str, float]) -> str:
    figure, axis = plt.subplots(figsize=(6, 0.45 * len(values) + 1))
    names = list(values)
    axis.barh(names, [values[n] for n in names], color=["#1f77b4" if n in ("model", "champion") else
                                                         "#2ca02c" if n.startswith("oracle") else "#7f7f7f" for n in names])
    axis.invert_yaxis()
    axis.set_title(title)
    for i, n in enumerate(names):
        axis.text(values[n], i, f" {values[n]:.3f}", va="center")
    return _svg(figure)


def _reliability(title: str, table: list[dict]) -> str:
    figure, axis = plt.subplots(figsize=(4.5, 4.5))
    rows = [r for r in table if r["count"]]
    axis.plot([0, 1], [0, 1], linestyle="--", color="#999999", label="perfect")
    axis.plot([r["mean_predicted"] for r in rows], [r["observed"] for r in rows], marker="o", label="model")
    axis.set_xlabel("predicted probability")
    axis.set_ylabel("observed frequency")
    axis.set_title(title)
    axis.legend()
    return _svg(figure)


def _table(head: list[str], rows: list[list]) -> str:
    cells = lambda row, tag: "".join(f"<{tag}>{html.escape(_fmt(v))}</{tag}>" for v in row)  # noqa: E731
    return ("<table border=1 cellpadding=4><tr>" + cells(head, "th") + "</tr>"
            + "".join("<tr>" + cells(r, "td") + "</tr>" for r in rows) + "</table>")


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def write_report(folder: Path, metrics: dict) -> Path:
    """Write metrics.json and report.html into ``folder``; returns the HTML path."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "metrics.json").write_text(json.dumps(metrics, indent=1, default=str))
    users = sum(metrics["test_users"].values())
    sections = [f"<h1>Model {html.escape(metrics['version'])}</h1>",
                f"<p>Test origins {', '.join(metrics['test_cutoffs'])}, horizon {metrics['horizon_days']} days, "
                f"{users:,} user-origins ({sum(metrics['migrating_users'].values()):,} moving into a new category). "
                f"Code {html.escape(str(metrics.get('code_version')))}. Baselines are fitted on the training cutoffs; "
                f"the recency decay ({metrics['baselines']['decay_days']} days) was chosen on validation.</p>"]
    for subset, label in (("all", "All users: every category ranked"),
                          ("migration", "Migration subset: only new categories count, seen ones not ranked")):
        result = metrics["ranking"][subset]
        sections.append(f"<h2>{label}</h2><p>Pooled over the test origins.</p>")
        keys = [k for k in next(iter(result["pooled"].values()))]
        sections.append(_table(["method", *keys], [[m, *(v[k] for k in keys)] for m, v in result["pooled"].items()]))
        metric = result["metric"]
        sections.append(f"<p>The model minus each method on {metric}: mean and 95% paired bootstrap interval "
                        f"(users resampled)</p>")
        sections.append(_table(["method", "difference", "low", "high", "verdict"],
                               [[m, i["difference"], i["low"], i["high"], i["verdict"]]
                                for m, i in result["intervals"].items()]))
        per_origin = result["per_origin"]
        methods = list(next(iter(per_origin.values())))
        sections.append(f"<p>{metric} per test origin</p>")
        sections.append(_table(["origin", *methods], [[o, *(rows[m][metric] for m in methods)]
                                                      for o, rows in per_origin.items()]))
        sections.append(_bars(f"{metric} ({subset}, pooled)", {m: v[metric] for m, v in result["pooled"].items()}))
    sections.append("<h2>Classification view</h2>")
    sections.append(_table(["head", "threshold", "precision", "recall", "f1", "auc", "positives"],
                           [[h, v["threshold"], v["precision"], v["recall"], v["f1"], v["auc"], v["positives"]]
                            for h, v in (("category", metrics["category"]), ("new category", metrics["new_category"]))]))
    sections.append("<h2>Calibration</h2>")
    for head, values in metrics["calibration"].items():
        sections.append(f"<p>{head}: ECE {values['ece']:.4f} over {values['count']:,} predictions, "
                        f"{values['ece_acted_on']:.4f} over the {values['acted_on']:,} predicted at least 1%; "
                        f"Brier {values['brier']:.4f}; mean predicted {values['mean_predicted']:.4f} against "
                        f"{values['observed']:.4f} observed</p>")
        sections.append(_reliability(f"reliability: {head}", values["reliability"]))
    sections.append("<h2>Inventory: expected engaged users per category against what happened</h2>")
    sections.append(_table(["origin", "forecast", "MAE", "RMSE", "WAPE"],
                           [[o, name, e["mae"], e["rmse"], e["wape"]] for o, forecasts in metrics["inventory"].items()
                            for name, e in forecasts.items()]))
    sections.append("<h2>Marketing: share of each segment that moved into its category</h2>")
    sections.append(_table(["origin", "segments", "audience", "model", "most active (naive)", "base rate"],
                           [[o, m["segments"], m["audience"], m["model_share"], m["naive_share"], m["base_rate"]]
                            for o, m in metrics["marketing"].items()]))
    if metrics.get("explanations"):
        sections.append("<h2>Why: the users most likely to move, and their most likely new categories, "
                        "explained as in user_interest_predictions.explanation</h2>")
        sections.append(_table(["user", "P(moves to a new category)", "explanation"],
                               [[e["user_id"], e["migration_probability"], e["explanation"]]
                                for e in metrics["explanations"]]))
    if metrics.get("promotion"):
        sections.append(f"<h2>Promotion</h2><p>{html.escape(metrics['promotion']['reason'])}</p>")
    page = folder / "report.html"
    page.write_text("<!doctype html><html><head><meta charset='utf-8'><title>Model report</title></head><body>"
                    + "\n".join(sections) + "</body></html>")
    return page
