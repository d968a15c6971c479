"""What every Spark stage does first: check its date, start Spark, open the lake."""
from __future__ import annotations

import datetime as dt

from jobs.config import PipelineConfig
from jobs.errors import PipelineError
from jobs.lake import Lake, open_lake
from jobs.spark import build_spark


def require_date(date: dt.date | None, stage: str, meaning: str) -> dt.date:
    if date is None:
        raise PipelineError(f"{stage} needs --date YYYY-MM-DD ({meaning})")
    return date


def open_stage_lake(config: PipelineConfig, stage: str, needs_table: str | None = None, made_by: str = "") -> Lake:
    """The lake for ``stage``; fails with a clear line if its input table is missing."""
    lake = open_lake(build_spark(config, stage), config.lake, config.lake_impl)
    if needs_table and not lake.exists(needs_table):
        raise PipelineError(f"no {needs_table} table under {config.lake}: run {made_by} first")
    return lake
