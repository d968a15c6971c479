"""``pipeline_runs``: one row per stage run, with counts, duration and status.

Every stage wraps its work in ``record_run``; the row is appended whether the
run succeeds or fails, so the table is the audit trail that reconciliation
(rows read = clean + quarantined, clean = kept + duplicates) is checked against.
"""
from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator

from pyspark.sql import types as T

from jobs.lake import Lake
from jobs.tables import PARTITIONS, PIPELINE_RUNS

PIPELINE_RUNS_SCHEMA = T.StructType(
    [
        T.StructField("run_id", T.StringType()),
        T.StructField("run_date", T.DateType()),
        T.StructField("stage", T.StringType()),
        T.StructField("rows_in", T.LongType()),
        T.StructField("rows_out", T.LongType()),
        T.StructField("rows_quarantined", T.LongType()),
        T.StructField("rows_duplicate", T.LongType()),
        T.StructField("seconds", T.DoubleType()),
        T.StructField("status", T.StringType()),
        T.StructField("started_at", T.TimestampType()),
        T.StructField("details", T.StringType()),
        T.StructField("lake_impl", T.StringType()),
    ]
)


@dataclass
class RunMetrics:
    """What a stage reports; filled in by the stage while it runs."""

    run_date: dt.date | None = None
    rows_in: int = 0
    rows_out: int = 0
    rows_quarantined: int = 0
    rows_duplicate: int = 0
    details: dict = field(default_factory=dict)


@contextmanager
def record_run(lake: Lake, stage: str, run_date: dt.date | None) -> Iterator[RunMetrics]:
    """Time the block and append its metrics to ``pipeline_runs``, even on failure."""
    metrics = RunMetrics(run_date=run_date)
    started_at = dt.datetime.now(dt.timezone.utc)
    started = time.perf_counter()
    status = "failed"
    try:
        yield metrics
        status = "succeeded"
    except BaseException as error:
        metrics.details["error"] = f"{type(error).__name__}: {error}"[:2000]
        raise
    finally:
        row = (
            uuid.uuid4().hex,
            metrics.run_date,
            stage,
            metrics.rows_in,
            metrics.rows_out,
            metrics.rows_quarantined,
            metrics.rows_duplicate,
            round(time.perf_counter() - started, 3),
            status,
            started_at,
            json.dumps(metrics.details, sort_keys=True, default=str),
            lake.name,
        )
        lake.append_rows(PIPELINE_RUNS, [row], PIPELINE_RUNS_SCHEMA, PARTITIONS[PIPELINE_RUNS])
