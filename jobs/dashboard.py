"""``python -m jobs dashboard --date D``: one static page per night that people look at rather than read.

Written to ``<lake>/dashboard/<D>/index.html`` with its plots as PNG files
beside it, and copied to ``<lake>/dashboard/index.html`` (the newest night,
with a list of the others). The Airflow UI links it (``plugins/``), and the
compose deployment serves it there. The panels:

- **models**: each candidate's NDCG@10 against the strongest baseline, and the
  paired 95% interval of the difference, promoted or not (``model_decisions``);
- **drift and retraining**: the daily category-mix divergence against the
  retraining threshold, with the promotions and refusals on the same axis;
- **data quality**: validations per day by their worst severity, and the
  quarantined rows per ingest date by reason;
- **inventory**: the night's largest expected demand shifts per category;
- **marketing**: segment sizes per category;
- **migration**: the distribution of the night's migration probabilities.

Only the rows a panel needs are read, with deltalake (no Spark): the night's
partitions, the last ``--days`` dates of the history tables. A table not yet
written is a panel that says so. The page is written aside and renamed into
place, so a reader never sees half a night.
"""
from __future__ import annotations

import argparse
import datetime as dt
import html
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from jobs.core.config import PipelineConfig
from jobs.core.errors import PipelineError
from jobs.core.tables import (CATEGORY_DEMAND_FORECAST, EVENTS_QUARANTINE, MARKETING_SEGMENTS, MODEL_DECISIONS,
                              PIPELINE_RUNS, USER_INTEREST_PREDICTIONS)

if TYPE_CHECKING:  # Arrow is imported where the page is built: the command's --help stays quick
    import pyarrow as pa

FOLDER = "dashboard"
WIDTH, HEIGHT, DPI = 7.5, 3.4, 110


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--days", type=int, default=30, help="how many dates of history the trend panels show "
                                                             "(default 30)")


@dataclass
class Panel:
    title: str
    caption: str
    image: str | None = None  # the PNG's file name, or None when there was nothing to plot
    empty: str = ""


def run(args: argparse.Namespace, config: PipelineConfig) -> dict:
    from models.registry import Registry, atomic_write

    if args.date is None:
        raise PipelineError("dashboard needs --date YYYY-MM-DD (the night to show)")
    if args.days < 1:
        raise PipelineError(f"--days must be 1 or more, got {args.days}")
    root = config.lake / FOLDER
    root.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=f".{args.date}.", dir=root))
    os.chmod(building, 0o755)  # mkdtemp makes it private; the page is for whoever may read the lake
    try:
        since = args.date - dt.timedelta(days=args.days - 1)
        panels = build_panels(config.lake, args.date, since, config.retrain_drift, building)
        champion = Registry(config.lake).champion()
        nights = sorted({p.name for p in root.iterdir() if _is_date(p.name)} | {args.date.isoformat()})
        (building / "index.html").write_text(page(args.date, panels, champion, nights, prefix=""))
        target = root / args.date.isoformat()
        _replace(building, target)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    newest = nights[-1]
    if newest == args.date.isoformat():  # the front page is the newest night's (a backfill of an old date leaves it)
        atomic_write(root / "index.html", page(args.date, panels, champion, nights, prefix=f"{newest}/"))
    plotted = sum(p.image is not None for p in panels)
    print(f"dashboard {args.date}: {plotted} of {len(panels)} panels plotted -> {target / 'index.html'}")
    return {"page": str(target / "index.html"), "panels": len(panels), "plotted": plotted}


def build_panels(lake: Path, day: dt.date, since: dt.date, drift_threshold: float, out: Path) -> list[Panel]:
    import matplotlib

    matplotlib.use("Agg")
    decisions = _read(lake, MODEL_DECISIONS)
    runs = _read(lake, PIPELINE_RUNS, filters=[("run_date", ">=", since), ("run_date", "<=", day)],
                 columns=["run_date", "stage", "status", "dq_severity", "category_divergence"])
    return [
        _plot(out, "models.png", "Models against the baselines", "NDCG@10 of each candidate and of the strongest "
              "baseline on the same test origins; below, the candidate minus that baseline with its paired 95% "
              "interval (promoted only when the interval is above zero).", _models, decisions),
        _plot(out, "drift.png", "Category-mix drift and retraining", f"Divergence of each day's category mix from "
              f"its trailing week (retraining above {drift_threshold}); vertical lines: promotion decisions "
              "(solid: promoted, dotted: kept the champion).", _drift, runs, decisions, drift_threshold),
        _plot(out, "quality.png", "Data quality per day", "Validations per run date by their worst result "
              "(pipeline_runs).", _quality, runs),
        _plot(out, "quarantine.png", "Quarantine reasons per day", "Rows quarantined at ingest, per ingest date "
              "and reason.", _quarantine,
              _read(lake, EVENTS_QUARANTINE, filters=[("ingest_date", ">=", since), ("ingest_date", "<=", day)],
                    columns=["ingest_date", "reason"])),
        _plot(out, "demand.png", "Inventory: expected demand shift", f"Expected engaged users per category on "
              f"{day} minus the forecast before it: the largest gains and losses.", _demand,
              _read(lake, CATEGORY_DEMAND_FORECAST, filters=[("score_date", "=", day)],
                    columns=["category", "expected_users_change"])),
        _plot(out, "segments.png", "Marketing: segment sizes", f"Users in each category's audience on {day} "
              "(new to the category, above the propensity threshold).", _segments,
              _read(lake, MARKETING_SEGMENTS, filters=[("score_date", "=", day)], columns=["category"])),
        _plot(out, "migration.png", "Migration probabilities", f"Each user's probability, on {day}, of engaging "
              "with a category new to them within the horizon.", _migration,
              _read(lake, USER_INTEREST_PREDICTIONS, filters=[("score_date", "=", day)],
                    columns=["migration_probability"])),
    ]


def _read(lake: Path, table: str, filters=None, columns=None) -> pa.Table | None:
    """The rows a panel needs, or None when the table is not there yet."""
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    try:
        return DeltaTable(str(lake / table)).to_pyarrow_table(filters=filters, columns=columns)
    except TableNotFoundError:
        return None


def _plot(out: Path, name: str, title: str, caption: str, draw, data, *extra) -> Panel:
    import matplotlib.pyplot as plt

    drawn = draw(plt, data, *extra) if data is not None and data.num_rows else None
    if drawn is None:
        return Panel(title, caption, empty="No data yet.")
    figure, axes = drawn
    figure.tight_layout()
    figure.savefig(out / name, dpi=DPI)
    plt.close(figure)
    return Panel(title, caption, image=name)


def _models(plt, decisions: pa.Table):
    rows = sorted((r for r in decisions.to_pylist() if r["candidate_value"] is not None), key=lambda r: r["decided_at"])
    if not rows:
        return None
    names = [r["candidate"] for r in rows]
    x = range(len(rows))
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(WIDTH, HEIGHT * 1.5), sharex=True)
    top.plot(x, [r["candidate_value"] for r in rows], "o-", label="candidate")
    top.plot(x, [r["best_baseline_value"] for r in rows], "s--", label="strongest baseline")
    top.set_ylabel("NDCG@10")
    top.legend(loc="best", fontsize=8)
    for i, r in enumerate(rows):
        if r["baseline_difference"] is None:
            continue
        low, high = r["baseline_low"], r["baseline_high"]
        bottom.errorbar([i], [r["baseline_difference"]], yerr=[[r["baseline_difference"] - low],
                                                              [high - r["baseline_difference"]]],
                        fmt="o", color="tab:green" if r["promoted"] else "tab:gray", capsize=4)
    bottom.axhline(0, color="black", linewidth=0.8)
    bottom.set_ylabel("minus baseline")
    bottom.set_xticks(list(x), names, rotation=30, ha="right", fontsize=8)
    return figure, (top, bottom)


def _drift(plt, runs: pa.Table | None, decisions: pa.Table | None, threshold: float):
    figure, axis = plt.subplots(figsize=(WIDTH, HEIGHT))
    points: dict[dt.date, float] = {}
    for r in runs.to_pylist():
        if r["stage"] == "validate" and r["category_divergence"] is not None:
            points[r["run_date"]] = max(points.get(r["run_date"], 0.0), r["category_divergence"])
    dates = sorted(points)
    if not dates:
        plt.close(figure)
        return None
    axis.plot(dates, [points[d] for d in dates], "o-", label="category-mix divergence")
    axis.axhline(threshold, color="tab:red", linestyle="--", linewidth=1, label="retraining threshold")
    for r in (decisions.to_pylist() if decisions is not None else []):
        # On the data's own time line: the candidate's as-of date (its name), not when evaluate ran.
        as_of = dt.date.fromisoformat(r["candidate"].rsplit(".", 1)[0])
        if dates and dates[0] <= as_of <= dates[-1]:
            axis.axvline(as_of, color="tab:green" if r["promoted"] else "tab:gray",
                         linestyle="-" if r["promoted"] else ":", linewidth=1)
    import matplotlib.dates as mdates

    axis.set_ylabel("divergence")
    axis.legend(loc="best", fontsize=8)
    axis.xaxis.set_major_locator(mdates.DayLocator(interval=max(1, len(dates) // 8)))
    axis.xaxis.set_major_formatter(mdates.DateFormatter("%Y-%m-%d"))
    figure.autofmt_xdate()
    return figure, axis


def _quality(plt, runs: pa.Table):
    counts: dict[dt.date, dict[str, int]] = {}
    for r in runs.to_pylist():
        if r["dq_severity"]:
            day = counts.setdefault(r["run_date"], {"passed": 0, "warning": 0, "critical": 0})
            day[r["dq_severity"]] = day.get(r["dq_severity"], 0) + 1
    if not counts:
        return None
    figure, axis = plt.subplots(figsize=(WIDTH, HEIGHT))
    dates = sorted(counts)
    bottom = [0] * len(dates)
    for severity, color in (("passed", "tab:green"), ("warning", "tab:orange"), ("critical", "tab:red")):
        values = [counts[d].get(severity, 0) for d in dates]
        axis.bar([d.isoformat() for d in dates], values, bottom=bottom, color=color, label=severity)
        bottom = [b + v for b, v in zip(bottom, values)]
    axis.set_ylabel("validations")
    axis.legend(loc="best", fontsize=8)
    _date_labels(axis, len(dates))
    return figure, axis


def _quarantine(plt, quarantine: pa.Table):
    grouped = quarantine.group_by(["ingest_date", "reason"]).aggregate([([], "count_all")]).to_pylist()
    totals: dict[str, int] = {}
    for r in grouped:
        totals[r["reason"]] = totals.get(r["reason"], 0) + r["count_all"]
    shown = sorted(totals, key=totals.get, reverse=True)[:6]
    dates = sorted({r["ingest_date"] for r in grouped})
    figure, axis = plt.subplots(figsize=(WIDTH, HEIGHT))
    bottom = [0] * len(dates)
    for reason in [*shown, "other"]:
        values = [sum(r["count_all"] for r in grouped if r["ingest_date"] == d
                      and (r["reason"] == reason or (reason == "other" and r["reason"] not in shown)))
                  for d in dates]
        if any(values):
            axis.bar([d.isoformat() for d in dates], values, bottom=bottom, label=reason)
            bottom = [b + v for b, v in zip(bottom, values)]
    axis.set_ylabel("rows quarantined")
    axis.legend(loc="best", fontsize=7)
    _date_labels(axis, len(dates))
    return figure, axis


def _date_labels(axis, count: int) -> None:
    """Dates as slanted labels on a bar chart, every n-th one when there are many."""
    axis.tick_params(axis="x", labelrotation=45, labelsize=7)
    step = max(1, count // 10)
    for i, label in enumerate(axis.get_xticklabels()):
        label.set_visible(i % step == 0)


def _demand(plt, forecast: pa.Table):
    rows = [r for r in forecast.to_pylist() if r["expected_users_change"] is not None] or forecast.to_pylist()
    rows.sort(key=lambda r: r["expected_users_change"] or 0)
    shown = rows if len(rows) <= 20 else rows[:10] + rows[-10:]
    figure, axis = plt.subplots(figsize=(WIDTH, HEIGHT * 1.4))
    values = [r["expected_users_change"] or 0 for r in shown]
    axis.barh([r["category"] for r in shown], values,
              color=["tab:green" if v >= 0 else "tab:red" for v in values])
    axis.axvline(0, color="black", linewidth=0.8)
    axis.set_xlabel("expected engaged users, change")
    axis.tick_params(axis="y", labelsize=7)
    return figure, axis


def _segments(plt, segments: pa.Table):
    counts = segments.group_by("category").aggregate([([], "count_all")]).sort_by([("count_all", "descending")])
    counts = counts.slice(0, 20)
    figure, axis = plt.subplots(figsize=(WIDTH, HEIGHT * 1.4))
    axis.barh(counts["category"].to_pylist()[::-1], counts["count_all"].to_pylist()[::-1], color="tab:blue")
    axis.set_xlabel("users in the segment")
    axis.tick_params(axis="y", labelsize=7)
    return figure, axis


def _migration(plt, predictions: pa.Table):
    import pyarrow.compute as pc

    values = pc.drop_null(predictions["migration_probability"]).to_numpy(zero_copy_only=False)
    if not len(values):
        return None
    figure, axis = plt.subplots(figsize=(WIDTH, HEIGHT))
    axis.hist(values, bins=40, range=(0, 1), color="tab:purple")
    axis.set_xlabel("migration probability")
    axis.set_ylabel("users")
    return figure, axis


def page(day: dt.date, panels: list[Panel], champion: str | None, nights: list[str], prefix: str) -> str:
    """The page: every plot an ``<img>``, and a script that records on ``<body>`` how many of them loaded
    (what the headless-browser test reads, and what a person sees if a file went missing)."""
    e = html.escape
    cards = []
    for panel in panels:
        body = (f'<img class="plot" src="{e(prefix + panel.image)}" alt="{e(panel.title)}">' if panel.image
                else f'<p class="empty">{e(panel.empty)}</p>')
        cards.append(f'<section><h2>{e(panel.title)}</h2>{body}<p class="caption">{e(panel.caption)}</p></section>')
    # A night's page sits in its own folder; the front page beside the nights' folders.
    up = "" if prefix else "../"
    links = " ".join(f'<a href="{e(up + n)}/index.html">{e(n)}</a>' for n in reversed(nights[-14:]))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Interest migration, {e(str(day))}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1.5rem; color: #222; background: #fafafa; }}
main {{ display: grid; grid-template-columns: repeat(auto-fit, minmax(36rem, 1fr)); gap: 1rem; }}
section {{ background: white; border: 1px solid #ddd; border-radius: 6px; padding: 0.8rem; }}
h1 {{ font-size: 1.4rem; }} h2 {{ font-size: 1.05rem; margin: 0 0 0.4rem; }}
img.plot {{ max-width: 100%; }} .caption, .empty, nav {{ color: #555; font-size: 0.85rem; }}
</style></head>
<body data-plots-loaded="0" data-plots="{sum(p.image is not None for p in panels)}">
<h1>Interest migration &mdash; night of {e(str(day))}</h1>
<p>Champion model: <strong>{e(champion or "none")}</strong>. Generated {e(dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))}.</p>
<nav>Nights: {links}</nav>
<main>{"".join(cards)}</main>
<script>
window.addEventListener("load", function () {{
  var images = Array.prototype.slice.call(document.querySelectorAll("img.plot"));
  var loaded = images.filter(function (i) {{ return i.complete && i.naturalWidth > 0; }}).length;
  document.body.setAttribute("data-plots-loaded", String(loaded));
}});
</script>
</body></html>
"""


def _is_date(name: str) -> bool:
    try:
        dt.date.fromisoformat(name)
        return True
    except ValueError:
        return False


def _replace(built: Path, target: Path) -> None:
    """Put the built folder at ``target``: the old one is moved aside first and removed after."""
    old = target.with_name(f".{target.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        os.replace(target, old)
    os.replace(built, target)
    shutil.rmtree(old, ignore_errors=True)
