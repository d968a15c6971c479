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

from jobs.core.lake import Lake
from jobs.core.tables import PARTITIONS, PIPELINE_RUNS

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
        # Data-quality gates run by the stage (see jobs.core.quality): expectations
        # evaluated and failed, the worst severity, and the category-mix
        # divergence from the trailing week (a retraining trigger).
        T.StructField("expectations_evaluated", T.LongType()),
        T.StructField("expectations_failed", T.LongType()),
        T.StructField("dq_severity", T.StringType()),
        T.StructField("category_divergence", T.DoubleType()),
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
    validations: list = field(default_factory=list)  # jobs.core.quality.ValidationReport, one per suite run

    def quality_columns(self) -> tuple:
        """expectations_evaluated, expectations_failed, dq_severity, category_divergence (nulls when none ran)."""
        if not self.validations:
            return None, None, None, None
        order = ["passed", "warning", "critical"]
        severity = max((v.severity for v in self.validations), key=order.index)
        divergence = next((v.category_divergence for v in self.validations if v.category_divergence is not None), None)
        return (sum(v.evaluated for v in self.validations), sum(len(v.failures) for v in self.validations),
                severity, divergence)


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
        if metrics.validations:
            metrics.details["validation"] = [v.summary() for v in metrics.validations]
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
            *metrics.quality_columns(),
        )
        lake.append_rows(PIPELINE_RUNS, [row], PIPELINE_RUNS_SCHEMA, PARTITIONS[PIPELINE_RUNS])
