"""Validate a partition of a table with its suite, with bounds computed from the lake.

The producing stages call ``check_partition`` on the *prepared* rows, before the
commit: a critical failure raises and the table keeps its previous version.
``python -m jobs validate`` calls it on a published partition.
"""
from __future__ import annotations

import datetime as dt
from typing import Sequence

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from jobs.core.config import PipelineConfig
from jobs.core.lake import Lake
from jobs.core.quality.report import ValidationReport
from jobs.core.tables import EVENTS, EVENTS_CLEAN, EVENTS_QUARANTINE, SESSIONS, USER_INTEREST_PREDICTIONS

TRAILING_DAYS = 7
# Tables with one partition per day, whose volume is compared with the trailing week.
DATED_TABLES = (EVENTS_CLEAN, EVENTS, SESSIONS)
_FAR_PAST = dt.datetime(1970, 1, 1)
# Suites that GX should not cache first: each expectation reads another column of a wide batch once, so
# caching every column (nested top lists included) cost more than it saved (bench/bench_score.py).
UNCACHED = {USER_INTEREST_PREDICTIONS}


def check_partition(
    lake: Lake,
    config: PipelineConfig,
    table: str,
    dates: Sequence[dt.date],
    frame: DataFrame,
    require_session_id: bool = True,
    sequence_length: int = 50,
    horizon_days: int | None = None,
    expected_rows: int | None = None,
    top_k: int | None = None,
) -> ValidationReport:
    """Run ``table``'s suite on ``frame``, the rows of ``dates`` (ingest dates for events_clean, else event dates).

    Volume and drift compare one partition with its trailing week. When
    ``frame`` spans several dates (a backfill, or a date re-run with the one
    after it) the suite runs once over all of them, without those two, and
    each date's row count is then compared with its own trailing week (from
    the frame and the lake: ``range_volume_failures``). There a date out of
    bounds is a warning that names it: a range is a history, whose closed
    days and ramp-ups are facts to report; the nightly's single-date gates
    (ingest and validate of the run date) are the ones an outage stops.
    """
    # Imported here, not at the top: Great Expectations is slow to import, which a stage run with
    # --no-validate should not pay and a validating one overlaps with the JVM's start or the stage's first queries
    # (jobs.core.stage.open_stage_lake), here the lake reads for the volume and drift bounds included.
    from jobs.core.stage import wait_for_validation_imports

    dates = sorted(dates)
    first, last = dates[0], dates[-1]
    single = len(dates) == 1
    trailing = tuple(_trailing_rows(lake, table, last)) if single and table in DATED_TABLES else ()
    mix = _category_mix(lake, last) if single and table == EVENTS else {}
    wait_for_validation_imports()
    from expectations import PREPARE, SUITES, SuiteParams
    from jobs.core.quality.gx_run import run_suite

    if table not in SUITES:
        raise ValueError(f"no expectation suite for table {table!r}; suites: {', '.join(sorted(SUITES))}")
    params = SuiteParams(
        run_date=last,
        window_start=_window_start(config, table, first),
        window_end=_window_end(config, table, last),
        trailing_rows=trailing,
        reference_category_mix=mix,
        max_quarantine_rate=config.max_quarantine_rate,
        volume_warning_fraction=config.volume_warning_fraction,
        volume_critical_fraction=config.volume_critical_fraction,
        volume_baseline_partitions=config.volume_baseline_partitions,
        volume_acknowledged=config.volume_acknowledged,
        max_category_divergence=config.max_category_divergence,
        max_session_hours=config.max_session_hours,
        max_session_events=config.bot_events_per_day,
        require_session_id=require_session_id,
        sequence_length=sequence_length,
        horizon_days=config.horizon_days if horizon_days is None else horizon_days,
        expected_rows=expected_rows,
        top_k=config.top_k if top_k is None else top_k,
    )
    if table in PREPARE:
        frame = PREPARE[table](frame, params)
    report = run_suite(config.lake / "_gx", table, last, frame, SUITES[table](params),
                       cache=table not in UNCACHED)
    if not single and table in DATED_TABLES:
        counted = range_volume_failures(lake, config, table, dates, frame)
        report.evaluated += len(dates)
        report.failures.extend(counted)
    shown = ", ".join(d.isoformat() for d in dates) if len(dates) <= 3 else f"{first}..{last} ({len(dates)} dates)"
    print(f"validate {table} {shown}: {report.evaluated} expectations, "
          f"{len(report.critical)} critical and {len(report.warnings)} warning failures; Data Docs: {report.docs_path}")
    for failure in report.warnings:
        print(f"  {failure.line()}")
    return report


def range_volume_failures(lake: Lake, config: PipelineConfig, table: str, dates: Sequence[dt.date],
                          frame: DataFrame) -> list:
    """Each date's row count of a multi-date ``frame`` against its trailing week: the frame's own counts for the
    dates inside the range, the lake's for those before it. Warnings, each naming its date."""
    from expectations.common import volume_bounds
    from expectations.params import SuiteParams
    from jobs.core.quality.report import Failure

    column = "ingest_date" if table == EVENTS_CLEAN else "event_date"
    counts = {row[0].isoformat(): int(row[1]) for row in frame.groupBy(column).count().collect() if row[0]}
    first = min(dates)
    before = [(first - dt.timedelta(days=d)).isoformat() for d in range(1, TRAILING_DAYS + 1)]
    if table == EVENTS_CLEAN:
        clean = lake.partition_row_counts(EVENTS_CLEAN, "ingest_date", before) if lake.exists(EVENTS_CLEAN) else {}
        quarantined = (lake.partition_row_counts(EVENTS_QUARANTINE, "ingest_date", before)
                       if lake.exists(EVENTS_QUARANTINE) else {})
        earlier = {d: clean.get(d, 0) + quarantined.get(d, 0) for d in before if d in clean or d in quarantined}
    else:
        earlier = lake.partition_row_counts(table, "event_date", before) if lake.exists(table) else {}
    known = {**earlier, **{d.isoformat(): counts.get(d.isoformat(), 0) for d in dates}}
    failures = []
    for day in sorted(dates):
        trailing = tuple(known[d] for d in _trailing_dates(day) if d in known)
        params = SuiteParams(run_date=day, window_start=_midnight(day), window_end=_midnight(day), trailing_rows=trailing,
                             volume_warning_fraction=config.volume_warning_fraction,
                             volume_critical_fraction=config.volume_critical_fraction,
                             volume_baseline_partitions=config.volume_baseline_partitions,
                             volume_acknowledged=config.volume_acknowledged)
        rows = counts.get(day.isoformat(), 0)
        for low, high, _, description in volume_bounds(params):
            if rows < low or (high is not None and rows > high):
                failures.append(Failure(expectation=f"expect_table_row_count_to_be_between ({day})", column=None,
                                        severity="warning", observed=f"{rows:,} rows",
                                        expected=description))
    return failures


def events_clean_batch(clean: DataFrame, quarantine: DataFrame) -> DataFrame:
    """The events_clean suite's batch: clean rows plus the same batch's quarantined rows (``reason`` set)."""
    return clean.withColumn("reason", F.lit(None).cast("string")).unionByName(
        quarantine.select("reason", "source", "ingest_date"), allowMissingColumns=True)


def _midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time())


def _window_start(config: PipelineConfig, table: str, day: dt.date) -> dt.datetime:
    if table != EVENTS_CLEAN:
        return _midnight(day)
    if config.max_lateness_days < 0:
        return _FAR_PAST
    return _midnight(day - dt.timedelta(days=config.max_lateness_days))


def _window_end(config: PipelineConfig, table: str, day: dt.date) -> dt.datetime:
    end = _midnight(day + dt.timedelta(days=1))
    return end + dt.timedelta(minutes=config.max_future_minutes) if table == EVENTS_CLEAN else end


def _trailing_dates(day: dt.date) -> list[str]:
    return [(day - dt.timedelta(days=d)).isoformat() for d in range(1, TRAILING_DAYS + 1)]


def _trailing_rows(lake: Lake, table: str, day: dt.date) -> list[int]:
    """Rows per earlier partition, from the Delta log (events_clean: clean plus quarantined per ingest date)."""
    dates = _trailing_dates(day)
    if table == EVENTS_CLEAN:
        clean = lake.partition_row_counts(EVENTS_CLEAN, "ingest_date", dates)
        quarantined = lake.partition_row_counts(EVENTS_QUARANTINE, "ingest_date", dates)
        return [clean.get(d, 0) + quarantined.get(d, 0) for d in dates if d in clean or d in quarantined]
    counts = lake.partition_row_counts(table, "event_date", dates)
    return [counts[d] for d in dates if d in counts]


def _category_mix(lake: Lake, day: dt.date) -> dict[str, float]:
    """Events per category over the trailing week: a few dozen aggregated rows reach the driver."""
    if not lake.exists(EVENTS):
        return {}
    rows = lake.read(EVENTS, partitions={"event_date": _trailing_dates(day)}).groupBy("category").count().collect()
    return {r["category"]: float(r["count"]) for r in rows if r["category"] is not None}
