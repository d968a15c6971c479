"""``python -m jobs dedupe --date D``: ``events_clean`` -> ``events``, one row per real event.

A range of dates (``--from-date A --to-date B``, or ``--previous-days``) is one pass with the same result
as its dates one after another: one Spark job and one validation for a backfill.

Two rows with the same ``event_id`` are one event (sources without ids got a
fingerprint of user, item, event type and second at ingest). For event date D
this keeps one row per id among all of D's clean rows, whatever batch they came
in, and drops ids already published in ``events`` for the previous
``replay_lookback_days`` dates: a replay re-stamped with a later time must not
count twice. The kept row is chosen by a total order (earliest ingest, then
time, then content), so re-runs give identical tables.

Counts: rows in = kept + duplicates within the date (extra copies of an id)
+ replays (distinct ids already published for an earlier date). Copies of one
id whose contents differ (user, item, category, type, time, price, session
hint or extra fields) are conflicts: the same total order picks the winner,
and ``pipeline_runs.details.event_id_conflicts`` counts those ids.
"""
from __future__ import annotations

import argparse
import datetime as dt
from typing import TYPE_CHECKING

from jobs.core.config import PipelineConfig
from jobs.core.input_size import tables_bytes
from jobs.core.stage import add_validation_argument, open_stage_lake, require_date
from jobs.core.tables import EVENTS, EVENTS_CLEAN

if TYPE_CHECKING:  # Spark is imported where it runs: `--help` stays quick (jobs/cli.py)
    from pyspark.sql import DataFrame

EVENT_COLUMNS = (
    "event_id", "user_id", "item_id", "category", "event_type", "event_ts", "event_date",
    "price", "session_hint", "props", "source", "source_file", "ingest_date",
)


def dedupe_events(clean: DataFrame, published: DataFrame, lookback_days: int) -> DataFrame:
    """One row per event id and event date of ``clean``, with ``n_copies``, ``replay`` and ``conflict``.

    ``clean`` holds the clean rows of one event date or of a range of them; ``published`` (``event_id``,
    ``event_date``) the ids already in ``events`` for the ``lookback_days`` dates before the range. A date's
    copies of an id are a replay (``replay`` true) when the id was kept on one of the ``lookback_days`` dates
    before it: one published before the range, or one this range keeps. Taken in date order that is what
    running the dates one after another does, so a range gives the same tables as its dates one by one, in
    one pass: one shuffle by ``event_id``, whose windows also pick each date's first copy (a ``min_by``
    aggregation over a struct of the whole row was a third slower: it falls back to a sort anyway).
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    # props sorted by key: the same extra fields in another order are the same content.
    content = F.xxhash64("user_id", "item_id", "category", "event_type", "event_ts", "price", "session_hint",
                         F.to_json(F.array_sort(F.map_entries("props"))))
    current = clean.select(*EVENT_COLUMNS, F.lit(False).alias("_published"), content.alias("_content"))
    earlier = published.select("event_id", "event_date", F.lit(True).alias("_published"))
    by_id = Window.partitionBy("event_id")
    by_copy = Window.partitionBy("event_id", "event_date")
    # A total order over the row's content, so re-runs keep the same copy.
    ordered = by_copy.orderBy(
        "ingest_date", "event_ts", "source_file", "user_id", "item_id", "event_type",
        "category", "price", "session_hint", "source", F.to_json("props"),
    )
    # The id's dates, oldest first, each marked published (before the range) or not; a date is kept when no
    # kept date lies within the lookback before it (published dates are kept: they are in events).
    marks = F.array_sort(F.collect_set(F.struct("event_date", "_published")).over(by_id))
    kept_dates = F.aggregate(
        marks, F.array().cast("array<date>"),
        lambda kept, mark: F.when(
            mark["_published"] | (F.size(kept) == 0) | (F.datediff(mark["event_date"], F.element_at(kept, -1))
                                                         > lookback_days),
            F.concat(kept, F.array(mark["event_date"]))).otherwise(kept))
    ranked = (
        current.unionByName(earlier, allowMissingColumns=True)
        .withColumn("_rank", F.row_number().over(ordered))
        .withColumn("replay", ~F.array_contains(kept_dates, F.col("event_date")))
        .withColumn("n_copies", F.count(F.lit(1)).over(by_copy))
        .withColumn("conflict", F.min("_content").over(by_copy) != F.max("_content").over(by_copy))
    )
    # Published markers have dates of their own, before the range: each date's first copy is rank 1.
    return ranked.where(~F.col("_published") & (F.col("_rank") == 1)).select(
        *EVENT_COLUMNS, "n_copies", "replay", "conflict")


def kept_events(deduped: DataFrame) -> DataFrame:
    """The rows to publish, with an empty ``session_id`` that sessionize fills."""
    from pyspark.sql import functions as F

    return deduped.where(~F.col("replay")).select(*EVENT_COLUMNS, F.lit(None).cast("string").alias("session_id"))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--replay-lookback-days", type=int, help="earlier event dates checked for replayed ids (default 2)")
    add_validation_argument(parser)


def run(args: argparse.Namespace, config: PipelineConfig) -> dict:
    from pyspark.sql import Observation
    from pyspark.sql import functions as F

    from jobs.core.lake import gated_write
    from jobs.core.quality import check_partition
    from jobs.core.runs import record_run

    require_date(args.date, "dedupe", "the event date to publish")
    dates = getattr(args, "dates", None) or [args.date]
    config = config.with_overrides(replay_lookback_days=args.replay_lookback_days, validate_writes=args.validate)
    days = [d.isoformat() for d in dates]
    earlier_dates = [(dates[0] - dt.timedelta(days=d)).isoformat() for d in range(1, config.replay_lookback_days + 1)]
    lake = open_stage_lake(config, "dedupe", EVENTS_CLEAN, made_by="ingest", validates=config.validate_writes,
                           input_bytes=lambda: tables_bytes(config.lake, {EVENTS_CLEAN: {"event_date": days},
                                                                          EVENTS: {"event_date": earlier_dates}}))
    label = days[0] if len(days) == 1 else f"{days[0]}..{days[-1]}"
    with record_run(lake, "dedupe", dates[-1]) as metrics:
        clean = lake.read(EVENTS_CLEAN, partitions={"event_date": days})
        published = lake.read_or_empty(EVENTS, "event_id string, event_date date",
                                       partitions={"event_date": earlier_dates}).select("event_id", "event_date")
        # Counts are observed while the write runs: one pass over the data.
        observed = Observation("dedupe")
        deduped = dedupe_events(clean, published, config.replay_lookback_days).observe(
            observed,
            F.sum("n_copies").alias("rows_in"),
            F.count(F.lit(1)).alias("distinct_ids"),
            F.sum(F.when(~F.col("replay"), 1).otherwise(0)).alias("kept"),
            F.sum(F.when(F.col("conflict"), 1).otherwise(0)).alias("conflicts"),
        )
        with gated_write(lake, metrics, config.validate_writes) as gate:
            prepared = gate.prepare(EVENTS, kept_events(deduped), {"event_date": days})
            # Session ids come later, from sessionize.
            gate.check(lambda: check_partition(lake, config, EVENTS, dates, prepared, require_session_id=False))
        totals = {k: int(v or 0) for k, v in observed.get.items()}
        metrics.rows_in = totals.get("rows_in", 0)
        metrics.rows_out = totals.get("kept", 0)
        metrics.rows_duplicate = metrics.rows_in - metrics.rows_out
        replays = totals.get("distinct_ids", 0) - metrics.rows_out
        metrics.details.update({"duplicates_within_date": metrics.rows_in - totals.get("distinct_ids", 0),
                                "replays_of_earlier_dates": replays, "lookback_dates": earlier_dates,
                                "event_id_conflicts": totals.get("conflicts", 0), "event_dates": days})
    print(f"dedupe {label}: read {metrics.rows_in:,}, kept {metrics.rows_out:,}, duplicates {metrics.rows_duplicate:,} "
          f"({replays:,} replays of earlier dates; {totals.get('conflicts', 0):,} ids with differing copies)")
    return {"rows_in": metrics.rows_in, "rows_out": metrics.rows_out, "rows_duplicate": metrics.rows_duplicate, "replays": replays}
