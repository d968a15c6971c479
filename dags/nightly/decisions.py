"""The small decisions the nightly DAG makes outside Spark, as plain functions tests can call."""
from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Mapping

from jobs.core.config import PipelineConfig, check_range
from jobs.core.errors import PipelineError


def resolve_run_date(params: Mapping, logical_date: dt.datetime | None) -> dt.date:
    """The event date a run processes: ``params['run_date']``, else the day before the logical date.

    A nightly run at 02:00 on D+1 processes the complete day D. Fails with one
    clear line for a date that is malformed or has not ended yet.
    """
    text = params.get("run_date")
    if text:
        try:
            run_date = dt.date.fromisoformat(str(text))
        except ValueError:
            raise PipelineError(f"param run_date must be a date as YYYY-MM-DD, got {text!r}") from None
    elif logical_date is not None:
        run_date = logical_date.date() - dt.timedelta(days=1)
    else:
        raise PipelineError("this run has no logical date (an asset-triggered run?): set the run_date param")
    today = dt.datetime.now(dt.timezone.utc).date()
    if run_date >= today:
        raise PipelineError(f"param run_date {run_date} has not ended yet (today is {today} UTC): "
                            "a run processes a complete day")
    for name in ("user_sample_fraction", "session_gap_minutes"):  # the ranges the settings of the same name have
        if params.get(name) is not None:
            check_range(name, params[name], f"param {name}")
    if params.get("retrain", "auto") not in ("auto", "always", "never"):
        raise PipelineError(f"param retrain must be auto, always or never, got {params.get('retrain')!r}")
    return run_date


def landing_ready(lake_root: Path, run_date: dt.date, backfill: bool = False) -> bool:
    """Whether ingest can run for ``run_date``: its landing partition holds at least one file, or, in a backfill,
    a later date's partition does (the store's history has no events for this date, a closed day: ingest then
    records an empty batch, acknowledged, rather than the backfill waiting for a delivery that will not come)."""
    config = PipelineConfig(lake=lake_root)
    if _has_files(config.landing_partition(run_date)):
        return True
    if not backfill:
        return False
    partition = config.landing_partition(run_date)
    later = [p for p in partition.parent.glob("ingest_date=*") if p.name > partition.name]
    return any(_has_files(p) for p in later)


def _has_files(partition: Path) -> bool:
    """Whether ingest would read a file there: the same rule ingest applies (jobs/ingest/sources.py)."""
    from jobs.ingest.sources import find_source_files

    if not partition.is_dir():
        return False
    try:
        find_source_files(partition)
    except PipelineError:
        return False
    return True


def maintenance_due(run_date: dt.date, mode: str = "weekly") -> bool:
    """Whether the night of ``run_date`` runs ``maintain``: ``weekly`` on Sundays, or ``always``/``never``."""
    if mode not in ("weekly", "always", "never"):
        raise PipelineError(f"param maintain must be weekly, always or never, got {mode!r}")
    return mode == "always" or (mode == "weekly" and run_date.isoweekday() == 7)
