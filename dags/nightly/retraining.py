"""Whether tonight's run retrains before it scores, and why: the nightly DAG's branch.

Read from what the lake already records, without Spark (the DAG's Python
tasks stay light; Spark runs only under spark-submit):

- the champion pointer and its metadata (``models/registry.py``): no champion,
  or a champion trained ``every_days`` or more before the run date, is due;
- ``pipeline_runs``: the category-mix divergence the ``validate`` stage
  recorded for the run date; above ``drift_threshold`` is due;
- the first event date in ``events``: training needs the history
  ``models.cutoffs.plan_cutoffs`` asks for, so a young lake is never due (and
  ``always`` on one fails with the number of days it needs).

``policy`` is the DAG's ``retrain`` param: ``auto`` applies the rules,
``always`` and ``never`` override them.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from deltalake import DeltaTable

from jobs.core.config import default
from jobs.core.errors import PipelineError
from jobs.core.tables import EVENTS, PIPELINE_RUNS
from models.cutoffs import plan_cutoffs
from models.registry import Registry

POLICIES = ("auto", "always", "never")


@dataclass(frozen=True)
class RetrainingDecision:
    retrain: bool
    score: bool  # False only while there is no model to score with
    reason: str


def decide_retraining(lake_root: Path, run_date: dt.date, policy: str,
                      horizon_days: int = default("horizon_days"), every_days: int = default("retrain_every_days"),
                      drift_threshold: float = default("retrain_drift")) -> RetrainingDecision:
    if policy not in POLICIES:
        raise PipelineError(f"retrain must be one of {', '.join(POLICIES)}, got {policy!r}")
    registry = Registry(Path(lake_root))
    champion = registry.champion()
    trainable, too_short = _enough_history(Path(lake_root), run_date, horizon_days)
    if policy == "never":
        return RetrainingDecision(False, champion is not None, "retrain=never" + ("" if champion else
                                                                                  "; no champion, nothing to score"))
    if policy == "always":
        if not trainable:
            raise PipelineError(f"retrain=always, but {too_short}")
        return RetrainingDecision(True, True, "retrain=always")
    reasons = []
    if champion is None:
        reasons.append("there is no champion yet")
    else:
        trained_on = dt.date.fromisoformat(registry.metadata(champion).get("as_of_date", champion.split(".")[0]))
        if (run_date - trained_on).days >= every_days:
            reasons.append(f"the champion {champion} was trained on data through {trained_on}, "
                           f"{(run_date - trained_on).days} days ago (retrain every {every_days})")
    drift = category_drift(Path(lake_root), run_date)
    if drift is not None and drift > drift_threshold:
        reasons.append(f"the category mix of {run_date} drifted {drift:.3f} from the trailing week "
                       f"(threshold {drift_threshold})")
    if not reasons:
        return RetrainingDecision(False, True, f"the champion {champion} is fresh and the category mix is stable"
                                  + ("" if drift is None else f" (drift {drift:.3f})"))
    if not trainable:
        return RetrainingDecision(False, champion is not None, f"retraining is due ({'; '.join(reasons)}), but "
                                  f"{too_short}")
    return RetrainingDecision(True, True, "; ".join(reasons))


def category_drift(lake_root: Path, run_date: dt.date) -> float | None:
    """The largest category-mix divergence any validation recorded for ``run_date`` (None when none did)."""
    path = lake_root / PIPELINE_RUNS
    if not (path / "_delta_log").is_dir():
        return None
    runs = DeltaTable(str(path)).to_pyarrow_table(
        columns=["category_divergence"], filters=[("run_date", "=", run_date)]).column(0).to_pylist()
    values = [v for v in runs if v is not None]
    return max(values) if values else None


def first_event_date(lake_root: Path) -> dt.date | None:
    """From the Delta log's partition values: no data read."""
    path = lake_root / EVENTS
    if not (path / "_delta_log").is_dir():
        return None
    dates = [p["event_date"] for p in DeltaTable(str(path)).partitions() if p.get("event_date")]
    return dt.date.fromisoformat(min(dates)) if dates else None


def _enough_history(lake_root: Path, run_date: dt.date, horizon_days: int) -> tuple[bool, str]:
    first = first_event_date(lake_root)
    if first is None:
        return False, "there are no events to train on"
    try:
        plan_cutoffs(run_date, horizon_days, first_event_date=first)
    except ValueError as error:
        return False, str(error)
    return True, ""
