"""What score does on the Spark driver: find the sequences, run the workers, aggregate, hold or publish.

``score_sequences`` sends the users' sequences to the Python workers
(``jobs/score/workers.py``), which write the scored rows as Parquet
themselves; the driver then reads the workers' per-category sums and segment
prospects into the two aggregates (``jobs/score/aggregates.py``) and either
publishes all three tables through one gated write or holds them for validate
and publish (``jobs/core/held.py``).
"""
from __future__ import annotations

import datetime as dt
import os
import shutil
import uuid
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from jobs.core import held
from jobs.core.config import PipelineConfig, default
from jobs.core.errors import PipelineError
from jobs.core.lake import gated_write
from jobs.core.quality.gate import check_partition
from jobs.core.tables import CATEGORY_DEMAND_FORECAST, MARKETING_SEGMENTS, USER_INTEREST_PREDICTIONS, USER_SEQUENCES
from jobs.score.aggregates import demand_forecast, marketing_segments
from jobs.score.schemas import DEMAND_SCHEMA, PREDICTIONS_SCHEMA, PROSPECTS_SCHEMA, TASK_SCHEMA
from jobs.score.workers import SEQUENCE_COLUMNS, ScoredFiles, WorkerJob, score_batches, score_pieces
from models.encoding import older_snapshot
from models.registry import Registry

# Under the lake root, so cluster workers write where the driver reads; removed when score ends.
SCRATCH_DIR = "_scratch"


@dataclass(frozen=True)
class ScoreOptions:
    top_k: int = default("top_k")
    segment_size: int = default("segment_size")
    min_propensity: float = default("min_propensity")
    batch_rows: int = 4096
    hold: bool = False


@dataclass(frozen=True)
class SequenceFiles:
    """A user_sequences snapshot as the row groups of the Parquet files that hold it, which the Python
    workers read themselves (one Spark task per row group).

    Why not ``mapInArrow`` over the Delta read: Spark would decode every history into its own rows and
    convert them back to Arrow for the workers, work as large as the model's (docs/performance.md);
    pyarrow reads the files straight into the Arrow the encoder takes.
    """
    pieces: tuple[tuple[str, int], ...]

    @classmethod
    def of(cls, paths: list[str]) -> "SequenceFiles":
        """From each file's footer: its row groups, after checking that it has every column scoring reads
        (a snapshot an older features job wrote lacks the newer ones)."""
        import pyarrow.parquet as pq

        pieces = []
        for path in paths:
            parquet = pq.ParquetFile(path)
            missing = [c for c in SEQUENCE_COLUMNS if c not in parquet.schema_arrow.names]
            if missing:
                raise PipelineError(older_snapshot(missing))
            pieces.extend((path, group) for group in range(parquet.metadata.num_row_groups)
                          if parquet.metadata.row_group(group).num_rows)
        return cls(tuple(pieces))


def score_sequences(lake, config: PipelineConfig, registry: Registry, champion: str,
                    sequences: DataFrame | SequenceFiles, score_date: dt.date, active_users: int,
                    options: ScoreOptions, metrics) -> dict[str, int]:
    """Score ``sequences`` (build_sequences rows, one per user) with ``champion`` and publish the three tables.

    Split from ``run`` so bench/bench_score.py can time it on sequences it made itself.
    """
    scored_at = dt.datetime.now(dt.timezone.utc)
    scratch = ScoredFiles(lake.root / SCRATCH_DIR / f"score-{score_date.isoformat()}-{uuid.uuid4().hex}")
    worker = WorkerJob(str(registry.version_dir(champion)), options.top_k, options.batch_rows,
                       threads_per_worker(lake.spark), options.min_propensity, options.segment_size, champion,
                       scored_at, str(scratch.root))
    try:
        scratch.make()
        # One small row per task comes back to the driver; the scored rows stay in the workers' files.
        if isinstance(sequences, SequenceFiles):
            pieces = sequences.pieces
            tasks = (lake.spark.range(0, len(pieces), 1, len(pieces))
                     .mapInArrow(partial(score_pieces, worker, pieces), TASK_SCHEMA).collect() if pieces else [])
        else:
            tasks = sequences.mapInArrow(partial(score_batches, worker), TASK_SCHEMA).collect()
        metrics.details.update({"scoring_tasks": len(tasks), "users_scored": sum(t["users"] for t in tasks)})
        vocabulary = _vocabulary(registry, champion)
        categories = lake.spark.createDataFrame(list(enumerate(vocabulary)), "position int, category string")
        partials = lake.spark.read.schema(DEMAND_SCHEMA).parquet(str(scratch.folder("demand")))
        prospects = lake.spark.read.schema(PROSPECTS_SCHEMA).parquet(str(scratch.folder("prospects")))
        frames = {CATEGORY_DEMAND_FORECAST: demand_forecast(partials, categories, previous_demand(lake, score_date),
                                                            score_date, champion, active_users),
                  MARKETING_SEGMENTS: marketing_segments(prospects, categories, options.segment_size, score_date,
                                                         champion)}
        predictions = scratch.folder("predictions")
        top_k = min(options.top_k, len(vocabulary))
        if options.hold:
            return _hold(lake, score_date, champion, active_users, top_k, predictions, frames)
        return _publish(lake, config, metrics, score_date, active_users, predictions, frames, top_k)
    finally:
        shutil.rmtree(scratch.root, ignore_errors=True)


def threads_per_worker(spark) -> int:
    """TensorFlow threads for each Python worker: the machine's cores shared by the tasks Spark runs at once
    (in local mode; on a cluster one task has one core unless spark.task.cpus says otherwise)."""
    from jobs.core.spark import local_parallelism

    cores = local_parallelism(spark)
    if cores is not None:
        return max(1, (os.cpu_count() or 1) // cores)
    return int(spark.conf.get("spark.task.cpus", "1"))


def feature_sequences(lake, cutoff: dt.date, length: int, history_days: int) -> DataFrame | SequenceFiles:
    """The score-mode snapshot features wrote for ``cutoff``, as its files when the lake can name them; refused
    when its window differs from the model's."""
    as_of = (cutoff - dt.timedelta(days=1)).isoformat()
    if not lake.exists(USER_SEQUENCES):
        raise PipelineError("no user_sequences table: run features --mode score first")
    snapshot = lake.read(USER_SEQUENCES, partitions={"as_of_date": [as_of], "cutoff_date": [cutoff.isoformat()]})
    shapes = {(r[0], r[1]) for r in snapshot.select("sequence_length", "history_days").distinct().collect()}
    if not shapes:
        raise PipelineError(f"no score sequences for {as_of}: run features --mode score --date {as_of} first")
    if shapes != {(length, history_days)}:
        raise PipelineError(f"the score sequences for {as_of} have (length, history days) {sorted(shapes)}, the "
                            f"champion needs ({length}, {history_days}): run features --mode score with those")
    files = lake.partition_files(USER_SEQUENCES, {"as_of_date": [as_of], "cutoff_date": [cutoff.isoformat()]})
    return snapshot if files is None else SequenceFiles.of(files)


def _hold(lake, score_date: dt.date, champion: str, active_users: int, top_k: int, predictions: Path,
          frames: dict[str, DataFrame]) -> dict[str, int]:
    """Write the three partitions as the date's held write; validate and publish take it from there."""
    def write(gate) -> None:
        # The forecast and segments first, so that they commit first: a reader never sees predictions without
        # their forecast.
        _prepare_frames(gate, score_date, frames)
        _prepare_predictions(gate, score_date, predictions)

    return held.hold(lake, score_date, champion, active_users, top_k, write)


def _prepare_frames(gate, score_date: dt.date, frames: dict[str, DataFrame]) -> dict[str, DataFrame]:
    replace = {"score_date": [score_date.isoformat()]}
    return {table: gate.prepare(table, frame, replace) for table, frame in frames.items()}


def _prepare_predictions(gate, score_date: dt.date, predictions: Path) -> DataFrame:
    return gate.prepare_files(USER_INTEREST_PREDICTIONS, predictions, PREDICTIONS_SCHEMA,
                            {"score_date": score_date.isoformat()})


def _vocabulary(registry: Registry, version: str) -> list[str]:
    from models.vocabulary import Vocabulary

    return list(Vocabulary.load(registry.version_dir(version) / "vocabulary.json").categories)


def active_users(events: DataFrame, cutoff: dt.date, history_days: int) -> int:
    """Users with an event in the history window before the cutoff: the row count the predictions must have."""
    end = dt.datetime.combine(cutoff, dt.time(), dt.timezone.utc)
    window = events.where((F.col("event_ts") >= F.lit(end - dt.timedelta(days=history_days)))
                          & (F.col("event_ts") < F.lit(end)))
    return window.select("user_id").distinct().count()


def previous_demand(lake, score_date: dt.date) -> DataFrame | None:
    """The latest forecast before ``score_date``, in the shape demand_forecast compares against."""
    if not lake.exists(CATEGORY_DEMAND_FORECAST):
        return None
    earlier = [d for d in lake.partition_values(CATEGORY_DEMAND_FORECAST, "score_date") if d < score_date.isoformat()]
    if not earlier:
        return None
    return lake.read(CATEGORY_DEMAND_FORECAST, partitions={"score_date": [earlier[-1]]}).select(
        "category", F.col("score_date").alias("previous_score_date"),
        F.col("expected_users").alias("previous_expected_users"),
        F.col("expected_new_users").alias("previous_expected_new_users"))


def _publish(lake, config: PipelineConfig, metrics, score_date: dt.date, active_users: int, predictions: Path,
             frames: dict[str, DataFrame], top_k: int) -> dict[str, int]:
    """Stage all three partitions, gate the predictions, then commit; on any failure nothing is published.

    The predictions' suite runs on its own thread while the demand forecast and segments are computed and
    prepared: the suite leaves the cores idle while Great Expectations works out its metrics and renders Data
    Docs, and the two small tables' Spark jobs fill that time.
    Either failing discards all three. Beside the suite, delta-spark writes the predictions' table files
    (``gate.write_ahead``), so that their commit after the verdict only records them instead of
    rewriting 1M rows: the cores the suite leaves idle do that work. The forecast and segments commit together, on two threads
    (each Delta commit is mostly small jobs and driver-side work), and both before the predictions.
    """
    from concurrent.futures import ThreadPoolExecutor

    with gated_write(lake, metrics, config.validate_writes, commit_order=(tuple(frames),)) as gate:
        prepared = {USER_INTEREST_PREDICTIONS: _prepare_predictions(gate, score_date, predictions)}
        # Straight from the prepared Parquet: the gate does not let GX cache this suite's batch.
        with ThreadPoolExecutor(2, thread_name_prefix="predictions") as pool:
            checked = pool.submit(gate.check, lambda: check_partition(
                lake, config, USER_INTEREST_PREDICTIONS, [score_date], prepared[USER_INTEREST_PREDICTIONS],
                expected_rows=active_users, top_k=top_k))
            written = pool.submit(gate.write_ahead, USER_INTEREST_PREDICTIONS)
            # A staging error leaves the block after the suite has finished (the pool waits for it), and is the
            # one raised.
            prepared.update(_prepare_frames(gate, score_date, frames))
            rows = {table: frame.count() for table, frame in prepared.items()}
            checked.result()
            written.result()
    return rows
