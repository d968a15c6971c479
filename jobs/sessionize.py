"""``python -m jobs sessionize --date D``: sessions for event date D, and ``events.session_id``.

A new session starts after ``--gap-minutes`` (``IM_SESSION_GAP_MINUTES``, 30) without an event.
Session ids are a hash of user and session start, so re-runs give the same ids.
A session that crosses midnight keeps one id: the previous day's tail (its last
event per user, already sessionized) is read, and a first event of D within the
gap of it continues that session. ``sessions`` has one row per session and
event date it touches (``is_continuation`` marks the part after midnight).

Late events reach D when dedupe re-runs for D; re-running sessionize for D
(then D+1, whose midnight sessions may change) re-sessionizes them. Run dates
in order, or as one range (``--from-date A --to-date B``, or
``--previous-days``): one pass that gives the same tables.
"""
from __future__ import annotations

import argparse
import datetime as dt

from typing import TYPE_CHECKING

from jobs.core.config import PipelineConfig, default_help
from jobs.core.input_size import tables_bytes
from jobs.core.stage import add_validation_argument, open_stage_lake, require_date
from jobs.core.tables import EVENTS, SESSIONS

if TYPE_CHECKING:  # Spark is imported where it runs: `--help` stays quick (jobs/cli.py)
    from pyspark.sql import DataFrame


def previous_day_tail(previous_day: DataFrame) -> DataFrame:
    """Per user, the last event of the previous day and its session id."""
    from pyspark.sql import functions as F

    return previous_day.where(F.col("session_id").isNotNull()).groupBy("user_id").agg(
        F.max("event_ts").alias("tail_ts"), F.max_by("session_id", "event_ts").alias("tail_session_id")
    )


def sessionize(events: DataFrame, tail: DataFrame, gap: dt.timedelta) -> DataFrame:
    """``events`` of one day with ``session_id`` and ``is_continuation`` set.

    ``tail`` (user_id, tail_ts, tail_session_id) carries sessions over midnight.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    gap_seconds = gap.total_seconds()
    by_user = Window.partitionBy("user_id").orderBy("event_ts", "event_id")
    running = by_user.rowsBetween(Window.unboundedPreceding, Window.currentRow)
    seconds_since = lambda earlier: F.unix_micros("event_ts") / 1e6 - F.unix_micros(earlier) / 1e6  # noqa: E731
    previous_ts = F.lag("event_ts").over(by_user)
    starts_session = F.when(
        previous_ts.isNull(),
        F.col("tail_ts").isNull() | (seconds_since(F.col("tail_ts")) > gap_seconds),
    ).otherwise(seconds_since(previous_ts) > gap_seconds)
    with_flags = events.drop("session_id").join(F.broadcast(tail), "user_id", "left").withColumn(
        "_starts", starts_session
    )
    # Start times only grow, so the running max of starts is the current session's start.
    session_start = F.max(F.when(F.col("_starts"), F.col("event_ts"))).over(running)
    hashed = F.substring(F.md5(F.concat_ws("|", "user_id", F.unix_micros(session_start).cast("string"))), 1, 16)
    return (
        with_flags.withColumn("_session_start", session_start)
        .withColumn("is_continuation", F.col("_session_start").isNull())
        .withColumn("session_id", F.when(F.col("is_continuation"), F.col("tail_session_id")).otherwise(hashed))
        .drop("_starts", "_session_start", "tail_ts", "tail_session_id")
    )


def summarize_sessions(sessionized: DataFrame, tail: DataFrame) -> DataFrame:
    """One row per (session, event date): bounds, size and category breadth.

    A session that began before the row's date is ``is_continuation``: its id
    is the previous day's last session for that user (``tail``, the day
    before the first date), or, in a range, it has events on an earlier date
    of the range.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    carried = tail.select("user_id", F.col("tail_session_id").alias("session_id"), F.lit(True).alias("_carried"))
    first_date = F.min("event_date").over(Window.partitionBy("user_id", "session_id"))
    return (
        sessionized.groupBy("user_id", "session_id", "event_date")
        .agg(
            F.min("event_ts").alias("session_start"),
            F.max("event_ts").alias("session_end"),
            F.count(F.lit(1)).alias("n_events"),
            F.size(F.collect_set("category")).alias("n_categories"),
        )
        .join(F.broadcast(carried), ["user_id", "session_id"], "left")
        .withColumn("duration_seconds", (F.unix_micros("session_end") - F.unix_micros("session_start")) / 1e6)
        .select("user_id", "session_id", "session_start", "session_end", "duration_seconds", "n_events", "n_categories",
                (F.coalesce("_carried", F.lit(False)) | (F.col("event_date") > first_date)).alias("is_continuation"),
                "event_date")
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--gap-minutes", type=int, help=f"inactivity that ends a session ({default_help('session_gap_minutes')})")
    add_validation_argument(parser)


def run(args: argparse.Namespace, config: PipelineConfig) -> dict:
    from pyspark.sql import Observation
    from pyspark.sql import functions as F

    from jobs.core.lake import gated_write
    from jobs.core.quality import check_partition
    from jobs.core.runs import record_run

    require_date(args.date, "sessionize", "the event date to sessionize")
    dates = getattr(args, "dates", None) or [args.date]
    config = config.with_overrides(session_gap_minutes=args.gap_minutes, validate_writes=args.validate)
    gap = dt.timedelta(minutes=config.session_gap_minutes)
    days = [d.isoformat() for d in dates]
    previous = (dates[0] - dt.timedelta(days=1)).isoformat()
    lake = open_stage_lake(config, "sessionize", EVENTS, made_by="dedupe", validates=config.validate_writes,
                           input_bytes=lambda: tables_bytes(config.lake, {EVENTS: {"event_date": [previous, *days]}}))
    label = days[0] if len(days) == 1 else f"{days[0]}..{days[-1]}"
    with record_run(lake, "sessionize", dates[-1]) as metrics:
        events = lake.read(EVENTS, partitions={"event_date": days})
        midnight = dt.datetime.combine(dates[0], dt.time(), dt.timezone.utc)
        tail = previous_day_tail(
            lake.read(EVENTS, partitions={"event_date": [previous]}).where(F.col("event_ts") >= F.lit(midnight - gap))
        )
        # One pass stages the range's events with their session ids (a user's events in time order across
        # its dates: a session over midnight inside the range continues as it does from the tail); sessions
        # are then summarised from the prepared files (columnar, cheap to re-read) instead of holding the
        # sessionized events in memory. Both are validated, then published; a critical failure publishes neither.
        observed = Observation("sessionize")
        sessionized = sessionize(events, tail, gap).observe(observed, F.count(F.lit(1)).alias("events"))
        replace = {"event_date": days}
        # Sessions commit first: events with new session ids never point at sessions that are not there.
        with gated_write(lake, metrics, config.validate_writes, commit_order=(SESSIONS, EVENTS)) as gate:
            # The events are written once, and the sessions summarised from their prepared files.
            prepared_events = gate.prepare(EVENTS, sessionized.select(*events.columns), replace)
            counted = Observation("sessions")
            sessions = summarize_sessions(prepared_events, tail).observe(
                counted, F.count(F.lit(1)).alias("sessions"), F.sum(F.col("is_continuation").cast("int")).alias("continued"))
            prepared_sessions = gate.prepare(SESSIONS, sessions, replace)
            for table, frame in ((EVENTS, prepared_events), (SESSIONS, prepared_sessions)):
                gate.check(lambda table=table, frame=frame: check_partition(lake, config, table, dates, frame))
        totals = {**observed.get, **counted.get}
        metrics.rows_in = int(totals.get("events") or 0)
        metrics.rows_out = int(totals.get("sessions") or 0)
        metrics.details.update({"gap_minutes": config.session_gap_minutes, "event_dates": days,
                                "continued_from_previous_day": int(totals.get("continued") or 0)})
    print(f"sessionize {label}: {metrics.rows_in:,} events in {metrics.rows_out:,} sessions "
          f"({metrics.details['continued_from_previous_day']:,} continued from the day before)")
    return {"events": metrics.rows_in, "sessions": metrics.rows_out}
