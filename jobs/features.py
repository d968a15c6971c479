"""``python -m jobs features --date D``: per-user event sequences as of cutoffs, with labels.

For a cutoff T (00:00 UTC) each user active in the ``--history-days`` before T
gets the last ``--length`` events before T, oldest first: category, event
type, time-gap bucket (since the previous event), age bucket (time before T)
and whether the event starts a session; and every category of the whole
window with its event, session and active-day counts and the time since its
last event. The label is the set of categories
the user engages with in [T, T + horizon), each marked new when it is absent
from the whole history window. Users with no event in the horizon keep an
empty label: they are the negatives that calibrate the probabilities.

``--mode train`` writes the cutoffs of ``models.cutoffs.plan_cutoffs`` for
data through D (train, validation, test); ``--mode score`` writes one cutoff,
D + 1, without labels, for scoring. Both replace the ``as_of_date = D``
partitions they write in ``user_sequences``, after its expectation suite
(which re-checks that no history event is at or after its cutoff and no label
event before it) passes.
"""
from __future__ import annotations

import argparse
import datetime as dt
from typing import TYPE_CHECKING

from jobs.core.config import PipelineConfig, check_range, default_help, fill_from_settings
from jobs.core.errors import PipelineError
from jobs.core.input_size import tables_bytes
from jobs.core.stage import add_validation_argument, open_stage_lake, require_date
from jobs.core.tables import EVENTS, USER_SEQUENCES
from models.cutoffs import SCORE, plan_cutoffs

if TYPE_CHECKING:  # Spark is imported where it runs: `--help` stays quick (jobs/cli.py)
    from pyspark.sql import Column, DataFrame

# The history window of every version trained before metadata recorded it: fixed, whatever
# IM_HISTORY_DAYS says now, so that those versions score with the window they learnt from.
LEGACY_HISTORY_DAYS = 28


def _bucket(seconds, edges) -> Column:
    """Number of edges at or below ``seconds``: a small ordinal bucket."""
    return sum((seconds >= edge).cast("int") for edge in edges)


def build_sequences(
    events: DataFrame, cutoff: dt.date, length: int, history_days: int, horizon_days: int | None,
) -> DataFrame:
    """One row per user active in the history window before ``cutoff``.

    ``events`` needs user_id, event_id, category, event_type, event_ts and
    session_id. ``horizon_days=None`` builds history only (the score cutoff):
    the label columns are null.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    from models.encoding import AGE_EDGES_S, GAP_EDGES_S

    cutoff_ts = dt.datetime.combine(cutoff, dt.time(), dt.timezone.utc)
    history = events.where((F.col("event_ts") >= F.lit(cutoff_ts - dt.timedelta(days=history_days)))
                           & (F.col("event_ts") < F.lit(cutoff_ts)))
    ordered = Window.partitionBy("user_id").orderBy("event_ts", "event_id")
    seconds = lambda ts: F.unix_micros(ts) / 1e6  # noqa: E731
    previous_ts = F.lag("event_ts").over(ordered)
    previous_session = F.lag("session_id").over(ordered)
    steps = (
        history.withColumn("_position", F.row_number().over(ordered))
        .withColumn("_events", F.count(F.lit(1)).over(Window.partitionBy("user_id")))
        .withColumn("gap_bucket", F.when(previous_ts.isNull(), F.lit(0))
                    .otherwise(1 + _bucket(seconds(F.col("event_ts")) - seconds(previous_ts), GAP_EDGES_S)))
        .withColumn("age_bucket", _bucket(F.lit(cutoff_ts.timestamp()) - seconds(F.col("event_ts")), AGE_EDGES_S))
        .withColumn("session_start", previous_session.isNull() | (F.col("session_id") != previous_session)
                    | F.col("session_id").isNull())
        .where(F.col("_position") > F.col("_events") - length)
    )
    step = F.struct("_position", "category", "event_type", "gap_bucket", "age_bucket", "session_start", "event_ts")
    sequences = steps.groupBy("user_id").agg(F.sort_array(F.collect_list(step)).alias("_steps")).select(
        "user_id",
        F.col("_steps.category").alias("history_categories"),
        F.col("_steps.event_type").alias("history_event_types"),
        F.col("_steps.gap_bucket").alias("history_gap_buckets"),
        F.col("_steps.age_bucket").alias("history_age_buckets"),
        F.col("_steps.session_start").alias("history_session_starts"),
        F.size("_steps").alias("history_length"),
        F.element_at(F.col("_steps.event_ts"), -1).alias("history_last_ts"),
    )
    # Every category of the whole history window with its event and session
    # counts: the last L events cover only the user's last few active days, and
    # stable interests show over weeks. "New" in the label means absent from
    # this window, not merely from the last L events.
    # Also on how many days, and how long before the cutoff it was last seen: a habit kept up every week
    # and a one-day burst can have the same event count, and an interest lapsed three weeks ago is not
    # one touched yesterday. Days are UTC dates.
    per_category = history.groupBy("user_id", "category").agg(
        F.count(F.lit(1)).alias("events"), F.count_distinct("session_id").alias("sessions"),
        F.count_distinct(F.to_date("event_ts")).alias("days"), F.max("event_ts").alias("last_ts"))
    window = per_category.groupBy("user_id").agg(F.sort_array(F.collect_list(
        F.struct("category", "events", "sessions", "days", "last_ts"))).alias("_window")).select(
        "user_id", F.col("_window.category").alias("window_categories"),
        F.col("_window.events").cast("array<int>").alias("window_category_events"),
        F.col("_window.sessions").cast("array<int>").alias("window_category_sessions"),
        F.col("_window.days").cast("array<int>").alias("window_category_days"),
        F.transform("_window.last_ts", lambda last: F.lit(cutoff_ts.timestamp()) - seconds(last))
        .cast("array<double>").alias("window_category_age_seconds"))
    sequences = sequences.join(window, "user_id")
    if horizon_days is None:
        joined = sequences.select(
            "*", F.lit(None).cast("array<string>").alias("label_categories"),
            F.lit(None).cast("array<boolean>").alias("label_new"), F.lit(None).cast("timestamp").alias("label_first_ts"),
            F.lit(None).cast("timestamp").alias("label_last_ts"))
    else:
        future = events.where((F.col("event_ts") >= F.lit(cutoff_ts))
                              & (F.col("event_ts") < F.lit(cutoff_ts + dt.timedelta(days=horizon_days))))
        labels = future.groupBy("user_id").agg(
            F.array_sort(F.collect_set("category")).alias("label_categories"),
            F.min("event_ts").alias("label_first_ts"), F.max("event_ts").alias("label_last_ts"))
        joined = sequences.join(labels, "user_id", "left").withColumn(
            "label_categories", F.coalesce("label_categories", F.array().cast("array<string>"))
        ).withColumn(
            "label_new", F.transform("label_categories", lambda c: ~F.array_contains("window_categories", c)))
    return joined.select(
        F.lit(cutoff).alias("cutoff_date"), F.lit(cutoff_ts).alias("cutoff_ts"), "user_id",
        "history_categories", "history_event_types", "history_gap_buckets", "history_age_buckets",
        "history_session_starts", "history_length", "history_last_ts",
        "window_categories", "window_category_events", "window_category_sessions", "window_category_days",
        "window_category_age_seconds", "label_categories", "label_new", "label_first_ts", "label_last_ts",
        F.exists("label_new", lambda new: new).alias("has_new_category"),
        F.lit(length).alias("sequence_length"), F.lit(history_days).alias("history_days"),
        F.lit(horizon_days).cast("int").alias("horizon_days"),
    )


def add_sample_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--user-sample-fraction", type=float,
                        help="keep this fraction of users, chosen by a hash of user_id so every stage and date "
                             f"keeps the same ones ({default_help('user_sample_fraction')}: everyone)")


def sample_users(events: DataFrame, fraction: float) -> DataFrame:
    """The rows of a stable ``fraction`` of users: the same users in features and score, on every date."""
    from pyspark.sql import functions as F

    check_range("user_sample_fraction", fraction, "--user-sample-fraction")
    if fraction == 1:
        return events
    return events.where(F.pmod(F.xxhash64("user_id"), F.lit(1_000_000)) < F.lit(int(fraction * 1_000_000)))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--mode", choices=["train", "score"], default="train",
                        help="train: labelled train/validation/test cutoffs for data through --date; "
                             "score: the cutoff after --date, without labels (default train)")
    parser.add_argument("--length", type=int, default=50, help="events per history sequence, L (default 50)")
    parser.add_argument("--horizon-days", type=int, help=f"label window, H ({default_help('horizon_days')})")
    parser.add_argument("--history-days", type=int, default=None,
                        help="how far back a history may reach; users with no event in it are inactive (train: "
                             f"{default_help('history_days')}, shortened on a young lake so that every cutoff has "
                             "all of it; score: default the champion's)")
    parser.add_argument("--train-cutoffs", type=int, default=8, help="rolling train cutoffs, one a day (default 8)")
    parser.add_argument("--test-origins", type=int, default=3,
                        help="rolling test cutoffs, one a day, each judged on its own (default 3)")
    add_sample_argument(parser)
    add_validation_argument(parser)


def run(args: argparse.Namespace, config: PipelineConfig) -> dict:
    from pyspark.sql import functions as F

    from jobs.core.lake import gated_write
    from jobs.core.quality import check_partition
    from jobs.core.runs import record_run

    require_date(args.date, "features", "the last complete event date")
    as_ofs = getattr(args, "dates", None) or [args.date]
    if args.length < 1 or (args.history_days is not None and args.history_days < 1):
        raise PipelineError("--length and --history-days must be at least 1")
    config = config.with_overrides(validate_writes=args.validate)
    fill_from_settings(args, config, {"horizon_days": "horizon_days", "user_sample_fraction": "user_sample_fraction"})
    score_history_days = (args.history_days or _champion_history_days(config.lake, config.history_days)
                          if args.mode == SCORE else None)
    lake = open_stage_lake(config, "features", EVENTS, made_by="dedupe and sessionize",
                           validates=config.validate_writes,
                           input_bytes=lambda: tables_bytes(config.lake, {EVENTS: _read_dates(as_ofs, score_history_days)}))
    first_date = _first_event_date(lake)
    plans = {as_of: _date_cutoffs(args, config, as_of, first_date, score_history_days) for as_of in as_ofs}
    horizon = None if args.mode == SCORE else args.horizon_days
    # Each distinct (cutoff, history window) is built once, however many as-of dates it serves (a range in
    # train mode shares most cutoffs between neighbouring dates); its rows are then copied to each of them.
    windows = sorted({(cutoff, history_days) for cutoffs, history_days in plans.values() for _, cutoff in cutoffs})
    served = [(windows.index((cutoff, history_days)), as_of, split)
              for as_of, (cutoffs, history_days) in plans.items() for split, cutoff in cutoffs]
    dates = _window_dates(windows, horizon)
    with record_run(lake, "features", as_ofs[-1]) as metrics:
        events = sample_users(lake.read(EVENTS, partitions={"event_date": dates}).select(
            "user_id", "event_id", "category", "event_type", "event_ts", "session_id"),
            args.user_sample_fraction).persist()
        frames = [build_sequences(events, cutoff, args.length, history_days, horizon).withColumn("_window", F.lit(i))
                  for i, (cutoff, history_days) in enumerate(windows)]
        sequences = frames[0]
        for frame in frames[1:]:
            sequences = sequences.unionByName(frame)
        targets = lake.spark.createDataFrame(served, "_window int, as_of_date date, split string")
        columns = [c for c in frames[0].columns if c != "_window"]
        sequences = sequences.join(F.broadcast(targets), "_window").select(*columns, "split", "as_of_date")
        # Each as-of date replaces exactly its own cutoffs, as a run of that date alone does.
        replace = [{"as_of_date": [as_of.isoformat()], "cutoff_date": sorted({c.isoformat() for _, c in cutoffs})}
                   for as_of, (cutoffs, _) in plans.items()]
        try:
            with gated_write(lake, metrics, config.validate_writes) as gate:
                prepared = gate.prepare(USER_SEQUENCES, sequences, replace)
                counts = {(r["as_of_date"], r["cutoff_date"]): (r["rows"], r["migrating"])
                          for r in prepared.groupBy("as_of_date", "cutoff_date").agg(
                              F.count(F.lit(1)).alias("rows"),
                              F.sum(F.col("has_new_category").cast("int")).alias("migrating")).collect()}
                gate.check(lambda: check_partition(lake, config, USER_SEQUENCES, as_ofs, prepared,
                                                   sequence_length=args.length, horizon_days=args.horizon_days))
        finally:
            events.unpersist()
        metrics.rows_out = sum(rows for rows, _ in counts.values())
        metrics.details.update({"mode": args.mode, "as_of_dates": [d.isoformat() for d in as_ofs],
                                "cutoffs": {c.isoformat(): s for s, c in plans[as_ofs[-1]][0]},
                                "rows_per_cutoff": {c.isoformat(): rows for (a, c), (rows, _) in counts.items()
                                                    if a == as_ofs[-1]},
                                "rows_per_as_of_date": {a.isoformat(): sum(rows for (d, _), (rows, _) in counts.items()
                                                                           if d == a) for a in as_ofs}})
    for as_of, (cutoffs, _) in plans.items():
        for split, cutoff in cutoffs:
            rows, migrating = counts.get((as_of, cutoff), (0, 0))
            print(f"features {as_of} {split} cutoff {cutoff}: {rows:,} user sequences"
                  + ("" if horizon is None else f", {migrating or 0:,} moving into a new category"))
    last_cutoffs = plans[as_ofs[-1]][0]
    return {"rows": metrics.rows_out,
            "cutoffs": {(s, c.isoformat()): counts.get((as_ofs[-1], c), (0, 0))[0] for s, c in last_cutoffs}}


def _date_cutoffs(args: argparse.Namespace, config: PipelineConfig, as_of: dt.date, first_date: dt.date | None,
                  score_history_days: int | None) -> tuple[list[tuple[str, dt.date]], int]:
    """The (split, cutoff) pairs one as-of date writes, and their history window in days."""
    if args.mode == SCORE:
        return [(SCORE, as_of + dt.timedelta(days=1))], score_history_days
    try:
        plan = plan_cutoffs(as_of, args.horizon_days, args.train_cutoffs, first_event_date=first_date,
                            test_origins=args.test_origins, history_days=args.history_days or config.history_days)
    except ValueError as error:
        raise PipelineError(f"{as_of}: {error}") from error
    return plan.labelled(), plan.history_days


def _window_dates(windows: list[tuple[dt.date, int]], horizon: int | None) -> list[str]:
    """Every event date the (cutoff, history days) windows and their horizon read."""
    earliest = min(cutoff - dt.timedelta(days=days + 1) for cutoff, days in windows)
    latest = max(cutoff for cutoff, _ in windows) + dt.timedelta(days=horizon or 0)
    return [(earliest + dt.timedelta(days=d)).isoformat() for d in range((latest - earliest).days + 1)]


def _read_dates(as_ofs: list[dt.date], score_history_days: int | None) -> dict[str, list[str]] | None:
    """The event dates a run reads, known before Spark starts in score mode (each as-of date's history window
    and the day after it); None in train mode, whose cutoffs depend on the lake's first date: then the whole
    table bounds what it reads."""
    if score_history_days is None:
        return None
    return {"event_date": _window_dates([(as_of + dt.timedelta(days=1), score_history_days) for as_of in as_ofs], None)}


def _champion_history_days(lake_root, default_days: int) -> int:
    """The history length the champion was trained with (score sequences must match it), else ``default_days``."""
    from models.registry import Registry

    registry = Registry(lake_root)
    champion = registry.champion()
    if champion is None:
        return default_days
    return int(registry.metadata(champion)["training_window"].get("history_days", LEGACY_HISTORY_DAYS))


def _first_event_date(lake) -> dt.date | None:
    """The earliest event date in the lake, from the partition list (no data read)."""
    dates = lake.partition_values(EVENTS, "event_date")
    return dt.date.fromisoformat(dates[0]) if dates else None
