"""``python -m jobs score --date D``: the champion's predictions for every user active in the window through D.

Each user with an event in the ``--history-days`` through D gets the sequence
``features`` would build for the cutoff D + 1 (the same ``build_sequences``),
scored in Spark's Python workers: every worker loads the champion once,
scores its partitions in Arrow batches and writes the scored rows as Parquet
itself, so nothing is collected to the driver. With ``--from-features`` the
workers read the snapshot's Parquet files themselves (SequenceFiles), so the
histories never pass through the JVM's rows; sequences built here arrive by
``mapInArrow``. The predictions are
committed from those files (``Lake.prepare_files``: Spark reads them and Delta writes the table's files,
while the suite checks them). The
predictions cover the horizon the champion was trained for, starting D + 1.
Three tables get the ``score_date = D`` partition:

- ``user_interest_predictions``: per user, the top ``--top-k`` categories with
  probabilities, the current top category (most events among the last L),
  the probability of moving into any category new to them, the model version;
- ``category_demand_forecast`` (inventory): per category, expected engaged
  users (the sum of probabilities) and expected new users (the same over
  users who have not engaged with it in the window), with the change against
  the previous score date;
- ``marketing_segments`` (marketing): per category, the users most likely to
  move into it among those who have not engaged with it in the window, ranked,
  at most ``--segment-size`` per category and at least ``--min-propensity``.

A re-run replaces the date's partitions with the same rows (``scored_at``
records when, and is the only column that changes); earlier versions stay
readable through Delta history. Nothing is published when there is no
champion, or when the predictions' expectation suite fails critically (one
row per active user, probabilities in [0, 1], top lists sorted): the previous
partitions stay as they were.

The nightly DAG splits publishing off: ``--hold`` writes the three partitions
as a held write (``jobs/core/held.py``) instead, ``validate --table
user_interest_predictions`` checks it, and ``python -m jobs publish`` commits
it. ``--from-features`` scores the sequences the ``features --mode score``
task wrote for the date instead of building them again.
"""
from __future__ import annotations

import argparse
import datetime as dt

from jobs.core.config import PipelineConfig, check_range, default_help, fill_from_settings
from jobs.core.errors import PipelineError
from jobs.core.stage import add_validation_argument, open_stage_lake, require_date
from jobs.core.tables import CATEGORY_DEMAND_FORECAST, EVENTS, MARKETING_SEGMENTS, USER_INTEREST_PREDICTIONS
# Models trained before metadata recorded the window were trained on LEGACY_HISTORY_DAYS.
from jobs.features import LEGACY_HISTORY_DAYS, add_sample_argument, build_sequences, sample_users


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--top-k", type=int, help=f"categories per user in top_categories ({default_help('top_k')})")
    parser.add_argument("--segment-size", type=int,
                        help=f"most users per category in marketing_segments ({default_help('segment_size')})")
    parser.add_argument("--min-propensity", type=float,
                        help="least probability of moving into the category for a segment member "
                             f"({default_help('min_propensity')})")
    parser.add_argument("--history-days", type=int, default=None,
                        help="users with an event in this many days through --date are active (default: the "
                             "champion's training history window, since its window counts depend on it)")
    parser.add_argument("--batch-rows", type=int, default=4096, help="users per inference batch (default 4096)")
    parser.add_argument("--from-features", action="store_true",
                        help="score the sequences features --mode score wrote for --date instead of building them")
    parser.add_argument("--hold", action="store_true",
                        help="hold the partitions for validate and publish instead of publishing")
    add_sample_argument(parser)
    add_validation_argument(parser)


def run(args: argparse.Namespace, config: PipelineConfig) -> dict:
    from jobs.core.runs import record_run
    from jobs.score.driver import ScoreOptions, active_users as count_active_users, feature_sequences, score_sequences
    from models.registry import Registry

    score_date = require_date(args.date, "score", "the last complete event date; predictions start the day after")
    fill_from_settings(args, config, {"top_k": "top_k", "segment_size": "segment_size",
                                      "min_propensity": "min_propensity", "user_sample_fraction": "user_sample_fraction"})
    for option in ("top_k", "segment_size", "min_propensity", "user_sample_fraction"):
        check_range(option, getattr(args, option), f"--{option.replace('_', '-')}")
    config = config.with_overrides(validate_writes=args.validate)
    registry = Registry(config.lake)
    champion = registry.champion()
    if champion is None:
        raise PipelineError(f"no champion model under {registry.root}: train and evaluate a version first; "
                            "nothing was published")
    metadata = registry.metadata(champion)
    length = int(metadata["model"]["sequence_length"])
    history_days = args.history_days
    if history_days is None:
        history_days = int(metadata["training_window"].get("history_days", LEGACY_HISTORY_DAYS))
    if history_days < 1:
        raise PipelineError("--history-days must be at least 1")
    lake = open_stage_lake(config, "score", EVENTS, made_by="dedupe and sessionize",
                           validates=config.validate_writes and not args.hold)
    cutoff = score_date + dt.timedelta(days=1)
    dates = [(score_date - dt.timedelta(days=d)).isoformat() for d in range(history_days + 1)]
    with record_run(lake, "score", score_date) as metrics:
        events = sample_users(lake.read(EVENTS, partitions={"event_date": dates}).select(
            "user_id", "event_id", "category", "event_type", "event_ts", "session_id"), args.user_sample_fraction)
        if args.from_features:
            sequences = feature_sequences(lake, cutoff, length, history_days)
        else:
            sequences = build_sequences(events, cutoff, length, history_days, None)
        active_users = count_active_users(events, cutoff, history_days)
        published = score_sequences(lake, config, registry, champion, sequences, score_date, active_users,
                                    ScoreOptions(args.top_k, args.segment_size, args.min_propensity, args.batch_rows,
                                                 args.hold),
                                    metrics)
        metrics.rows_in = active_users
        metrics.rows_out = published[USER_INTEREST_PREDICTIONS]
        metrics.details.update({"model_version": champion, "rows": published})
    print(f"score {score_date}: {published[USER_INTEREST_PREDICTIONS]:,} users scored by {champion}"
          f"{' (held for validate and publish)' if args.hold else ''}; "
          f"{published[CATEGORY_DEMAND_FORECAST]:,} category forecasts, "
          f"{published[MARKETING_SEGMENTS]:,} marketing segment rows")
    return {"model_version": champion, "rows": published}
