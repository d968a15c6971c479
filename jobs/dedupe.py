"""``python -m jobs dedupe --date D``: ``events_clean`` -> ``events``, one row per real event.

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
from jobs.core.stage import add_validation_argument, open_stage_lake, require_date
from jobs.core.tables import EVENTS, EVENTS_CLEAN

if TYPE_CHECKING:  # Spark is imported where it runs: `--help` stays quick (jobs/cli.py)
    from pyspark.sql import DataFrame

EVENT_COLUMNS = (
    "event_id", "user_id", "item_id", "category", "event_type", "event_ts", "event_date",
    "price", "session_hint", "props", "source", "source_file", "ingest_date",
)


def dedupe_events(clean: DataFrame, published_ids: DataFrame) -> DataFrame:
    """One row per event id of ``clean``, with ``n_copies``, ``replay`` and ``conflict`` for counting.

    ``published_ids`` (one column, ``event_id``) are ids already in ``events`` for
    earlier dates; a group whose id is among them is a replay (``replay`` true).
    One window over ``event_id`` does both jobs, so the data is shuffled and
    sorted once (a ``min_by`` aggregation over a struct of the whole row was a
    third slower: it falls back to a sort-based aggregate anyway).
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    # props sorted by key: the same extra fields in another order are the same content.
    content = F.xxhash64("user_id", "item_id", "category", "event_type", "event_ts", "price", "session_hint",
                         F.to_json(F.array_sort(F.map_entries("props"))))
    current = clean.select(*EVENT_COLUMNS, F.lit(False).alias("_published"), content.alias("_content"))
    earlier = published_ids.select("event_id", F.lit(True).alias("_published"))
    by_id = Window.partitionBy("event_id")
    # A total order over the row's content, so re-runs keep the same copy; a
    # published marker sorts first, then the copies of this date.
    ordered = by_id.orderBy(
        F.col("_published").desc(), "ingest_date", "event_ts", "source_file", "user_id", "item_id", "event_type",
        "category", "price", "session_hint", "source", F.to_json("props"),
    )
    ranked = (
        current.unionByName(earlier, allowMissingColumns=True)
        .withColumn("_rank", F.row_number().over(ordered))
        .withColumn("replay", F.max("_published").over(by_id))
        .withColumn("n_copies", F.count(F.when(~F.col("_published"), 1)).over(by_id))
        .withColumn("conflict", F.min("_content").over(by_id) != F.max("_content").over(by_id))
    )
    # The first copy of this date: rank 1, or 2 behind a published marker.
    first_copy = ~F.col("_published") & (F.col("_rank") == F.when(F.col("replay"), 2).otherwise(1))
    return ranked.where(first_copy).select(*EVENT_COLUMNS, "n_copies", "replay", "conflict")


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
    config = config.with_overrides(replay_lookback_days=args.replay_lookback_days, validate_writes=args.validate)
    lake = open_stage_lake(config, "dedupe", EVENTS_CLEAN, made_by="ingest",
                           validates=config.validate_writes)
    day = args.date.isoformat()
    with record_run(lake, "dedupe", args.date) as metrics:
        clean = lake.read(EVENTS_CLEAN, partitions={"event_date": [day]})
        earlier_dates = [(args.date - dt.timedelta(days=d)).isoformat() for d in range(1, config.replay_lookback_days + 1)]
        published = lake.read_or_empty(EVENTS, "event_id string", partitions={"event_date": earlier_dates}).select("event_id")
        # Counts are observed while the write runs: one pass over the data.
        observed = Observation("dedupe")
        deduped = dedupe_events(clean, published).observe(
            observed,
            F.sum("n_copies").alias("rows_in"),
            F.count(F.lit(1)).alias("distinct_ids"),
            F.sum(F.when(~F.col("replay"), 1).otherwise(0)).alias("kept"),
            F.sum(F.when(F.col("conflict"), 1).otherwise(0)).alias("conflicts"),
        )
        with gated_write(lake, metrics, config.validate_writes) as gate:
            prepared = gate.prepare(EVENTS, kept_events(deduped), {"event_date": [day]})
            # Session ids come later, from sessionize.
            gate.check(lambda: check_partition(lake, config, EVENTS, [args.date], prepared, require_session_id=False))
        totals = {k: int(v or 0) for k, v in observed.get.items()}
        metrics.rows_in = totals.get("rows_in", 0)
        metrics.rows_out = totals.get("kept", 0)
        metrics.rows_duplicate = metrics.rows_in - metrics.rows_out
        replays = totals.get("distinct_ids", 0) - metrics.rows_out
        metrics.details.update({"duplicates_within_date": metrics.rows_in - totals.get("distinct_ids", 0),
                                "replays_of_earlier_dates": replays, "lookback_dates": earlier_dates,
                                "event_id_conflicts": totals.get("conflicts", 0)})
    print(f"dedupe {day}: read {metrics.rows_in:,}, kept {metrics.rows_out:,}, duplicates {metrics.rows_duplicate:,} "
          f"({replays:,} replays of earlier dates; {totals.get('conflicts', 0):,} ids with differing copies)")
    return {"rows_in": metrics.rows_in, "rows_out": metrics.rows_out, "rows_duplicate": metrics.rows_duplicate, "replays": replays}
