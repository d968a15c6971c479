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
                                                         "#2ca02c" if n.endswith("oracle") else "#7f7f7f" for n in names])
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


def write_report(folder: Path, metrics: dict) -> Path:
    """Write metrics.json and report.html into ``folder``; returns the HTML path."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "metrics.json").write_text(json.dumps(metrics, indent=1, default=str))
    sections = [f"<h1>Model {html.escape(metrics['version'])}</h1>",
                f"<p>Test cutoff {metrics['test_cutoff']}, horizon {metrics['horizon_days']} days, "
                f"{metrics['test_users']:,} test users ({metrics['migrating_users']:,} moving into a new category). "
                f"Code {html.escape(str(metrics.get('code_version')))}.</p>"]
    for subset, label in (("all", "All users: every category ranked"),
                          ("migration", "Migration subset: only new categories count, seen ones not ranked")):
        methods = metrics["ranking"][subset]
        sections.append(f"<h2>{label}</h2>")
        keys = [k for k in next(iter(methods.values())) if k != "users"]
        head = "".join(f"<th>{k}</th>" for k in keys)
        rows = "".join(f"<tr><td>{html.escape(m)}</td>" + "".join(f"<td>{v[k]:.4f}</td>" for k in keys) + "</tr>"
                       for m, v in methods.items())
        sections.append(f"<table border=1 cellpadding=4><tr><th>method</th>{head}</tr>{rows}</table>")
        metric = "ndcg@10" if subset == "all" else "recall@10"
        sections.append(_bars(f"{metric} ({subset})", {m: v[metric] for m, v in methods.items()}))
    sections.append("<h2>Calibration</h2>")
    for head, values in metrics["calibration"].items():
        sections.append(f"<p>{head}: ECE {values['ece']:.4f}, Brier {values['brier']:.4f} over "
                        f"{values['count']:,} predictions</p>")
        sections.append(_reliability(f"reliability: {head}", values["reliability"]))
    if metrics.get("promotion"):
        sections.append(f"<h2>Promotion</h2><p>{html.escape(metrics['promotion']['reason'])}</p>")
    page = folder / "report.html"
    page.write_text("<!doctype html><html><head><meta charset='utf-8'><title>Model report</title></head><body>"
                    + "\n".join(sections) + "</body></html>")
    return page
