"""``python -m jobs score --date D``: the champion's predictions for every user active in the window through D.

Each user with an event in the ``--history-days`` through D gets the sequence
``features`` would build for the cutoff D + 1 (the same ``build_sequences``),
scored in Spark's Python workers: every worker loads the champion once,
scores its partitions in Arrow batches and writes the scored rows as Parquet
itself, so nothing is collected to the driver. With ``--from-features`` the
workers read the snapshot's Parquet files themselves (SequenceFiles), so the
histories never pass through the JVM's rows; sequences built here arrive by
``mapInArrow``. The predictions are
committed from those files (``Lake.stage_files``: Spark reads them and Delta writes the table's files,
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
as a candidate (``jobs/candidates.py``) instead, ``validate --table
user_interest_predictions`` checks it, and ``python -m jobs publish`` commits
it. ``--from-features`` scores the sequences the ``features --mode score``
task wrote for the date instead of building them again.
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import uuid
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pyarrow as pa
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import to_arrow_schema
from pyspark.sql.types import (ArrayType, DateType, DoubleType, IntegerType, LongType, StringType, StructField,
                               StructType, TimestampType)

from jobs.config import PipelineConfig, default, default_help, fill_from_settings
from jobs.errors import PipelineError
from jobs import candidates
# Models trained before metadata recorded the window were trained on LEGACY_HISTORY_DAYS.
from jobs.features import LEGACY_HISTORY_DAYS, add_sample_argument, build_sequences, sample_users
from jobs.lake import gated_write
from jobs.quality.gate import check_partition
from jobs.runs import record_run
from jobs.stage import add_validation_argument, open_stage_lake, require_date
from jobs.tables import (
    CATEGORY_DEMAND_FORECAST,
    EVENTS,
    MARKETING_SEGMENTS,
    USER_INTEREST_PREDICTIONS,
    USER_SEQUENCES,
)
from models.encoding import INPUT_COLUMNS, older_snapshot
from models.registry import Registry

# The Python workers write the scored rows as Parquet themselves (ScoredFiles), and Spark receives one
# (partition, users) row per task: the rows never go back through the JVM before the commit, and the
# workers' files are the staged rows the suite validates (no staging copy).
PREDICTIONS_SCHEMA = StructType([
    StructField("score_date", DateType(), False),
    StructField("user_id", StringType()),
    StructField("top_categories", ArrayType(StructType([StructField("category", StringType()),
                                                         StructField("probability", DoubleType())]))),
    StructField("current_top_category", StringType()),
    StructField("migration_probability", DoubleType()),
    # Why, in a line a marketer reads: each top category's share from the user's own habits against the
    # sequence model, and the recent categories that drove it (models/explain.py).
    StructField("explanation", StringType()),
    StructField("model_version", StringType(), False),
    StructField("scored_at", TimestampType(), False),
])
# A prediction file's columns: the partition column is in the Delta log, not in the files.
PREDICTION_FILE_ARROW = to_arrow_schema(StructType(PREDICTIONS_SCHEMA.fields[1:]))
# Each user's segment candidates, flat: the categories new to them at or above the propensity threshold,
# as positions among the ranked categories.
CANDIDATES_SCHEMA = StructType([StructField("user_id", StringType()), StructField("pos", IntegerType()),
                                StructField("probability", DoubleType())])
# Per task and category: expected users, expected new users and users new to the category.
DEMAND_SCHEMA = StructType([StructField("pos", IntegerType()), StructField("expected_users", DoubleType()),
                            StructField("expected_new_users", DoubleType()), StructField("users_new", LongType())])
TASK_SCHEMA = StructType([StructField("partition", IntegerType()), StructField("users", LongType())])
# What a worker reads from a snapshot's files.
SEQUENCE_COLUMNS = ("user_id", *INPUT_COLUMNS)
# Snapshot columns of strings repeated across users, read as dictionaries (_sequence_file).
DICTIONARY_COLUMNS = ("history_categories", "history_event_types", "window_categories")
# Rows per Parquet row group in the workers' files.
ROW_GROUP_ROWS = 65_536
# Up to this many categories, top_positions sorts each row in full (faster than a partial selection).
FULL_SORT_CATEGORIES = 100
# Under the lake root, so cluster workers write where the driver reads; removed when score ends.
SCRATCH_DIR = "_scratch"
# Python workers keep the champion between partitions: loaded once per worker and version.
_LOADED: dict[str, object] = {}
_HABIT_ZERO: dict[str, float] = {}


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
                        help="write the partitions as a candidate for validate and publish instead of publishing")
    add_sample_argument(parser)
    add_validation_argument(parser)


def run(args: argparse.Namespace, config: PipelineConfig) -> dict:
    score_date = require_date(args.date, "score", "the last complete event date; predictions start the day after")
    fill_from_settings(args, config, {"top_k": "top_k", "segment_size": "segment_size",
                                      "min_propensity": "min_propensity"})
    if args.top_k < 1 or args.segment_size < 1 or not 0 <= args.min_propensity <= 1:
        raise PipelineError("--top-k and --segment-size must be at least 1, --min-propensity within [0, 1]")
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
        active_users = _active_users(events, cutoff, history_days)
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
    convert them back to Arrow for the workers. At 1M users that took about as long as the model (28 of
    58 s, bench/bench_score.py); pyarrow reads the files straight into the Arrow the encoder takes.
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
                       _threads_per_worker(lake.spark), options.min_propensity, options.segment_size, champion, scored_at,
                       str(scratch.root))
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
        stamp = [F.lit(score_date).alias("score_date"), F.lit(champion).alias("model_version")]
        partials = lake.spark.read.schema(DEMAND_SCHEMA).parquet(str(scratch.folder("demand")))
        segment_candidates = lake.spark.read.schema(CANDIDATES_SCHEMA).parquet(str(scratch.folder("candidates")))
        frames = {CATEGORY_DEMAND_FORECAST: _demand(lake, partials, categories, score_date, active_users, stamp),
                  MARKETING_SEGMENTS: _segments(segment_candidates, categories, options.segment_size, stamp)}
        predictions = scratch.folder("predictions")
        top_k = min(options.top_k, len(vocabulary))
        if options.hold:
            return _hold(lake, score_date, champion, active_users, top_k, predictions, frames)
        return _publish(lake, config, metrics, score_date, active_users, predictions, frames, top_k)
    finally:
        shutil.rmtree(scratch.root, ignore_errors=True)


@dataclass(frozen=True)
class WorkerJob:
    """What each Python worker needs to score its partitions (pickled into every task)."""
    version_dir: str
    top_k: int
    batch_rows: int
    threads: int
    min_propensity: float
    segment_size: int
    model_version: str
    scored_at: dt.datetime
    scratch: str


class ScoredFiles:
    """The workers' Parquet output under one scratch folder: ``predictions``, ``candidates`` and ``demand``.

    A task writes ``<kind>/part-<partition>.parquet`` through a hidden temporary name and renames it when
    complete, so a retried or speculative attempt replaces its partition's file instead of adding one,
    and an attempt that dies leaves only a hidden file, which Spark's readers skip.
    """
    KINDS = {"predictions": PREDICTION_FILE_ARROW, "candidates": to_arrow_schema(CANDIDATES_SCHEMA),
             "demand": to_arrow_schema(DEMAND_SCHEMA)}

    def __init__(self, root: str | Path, partition: int = 0, attempt: int = 0):
        self.root = Path(root)
        self.partition, self.attempt = partition, attempt
        self._writers: dict[str, object] = {}
        self._pending: dict[str, list[pa.RecordBatch]] = {kind: [] for kind in self.KINDS}

    def folder(self, kind: str) -> Path:
        return self.root / kind

    def make(self) -> None:
        for kind in self.KINDS:
            self.folder(kind).mkdir(parents=True, exist_ok=True)

    def _temporary(self, kind: str) -> Path:
        return self.folder(kind) / f".part-{self.partition:05d}.attempt-{self.attempt}.tmp"

    def write(self, kind: str, batch: pa.RecordBatch) -> None:
        """Buffer ``batch``; written as one row group every ROW_GROUP_ROWS rows."""
        if not batch.num_rows:
            return
        pending = self._pending[kind]
        pending.append(batch)
        if sum(b.num_rows for b in pending) >= ROW_GROUP_ROWS:
            self._flush(kind)

    def _flush(self, kind: str) -> None:
        import pyarrow.parquet as pq

        pending = self._pending[kind]
        if not pending:
            return
        if kind not in self._writers:
            self.folder(kind).mkdir(parents=True, exist_ok=True)
            self._writers[kind] = pq.ParquetWriter(self._temporary(kind), self.KINDS[kind])
        self._writers[kind].write_table(pa.Table.from_batches(pending, schema=self.KINDS[kind]))
        pending.clear()

    def close(self) -> None:
        """Write what is buffered and publish each file under its partition's name (none when no rows)."""
        for kind in self.KINDS:
            self._flush(kind)
        for kind, writer in self._writers.items():
            writer.close()
            os.replace(self._temporary(kind), self.folder(kind) / f"part-{self.partition:05d}.parquet")


def _threads_per_worker(spark) -> int:
    """TensorFlow threads for each Python worker: the machine's cores shared by the tasks Spark runs at once
    (in local mode; on a cluster one task has one core unless spark.task.cpus says otherwise)."""
    conf = spark.sparkContext.getConf()
    if conf.get("spark.master", "").startswith("local"):
        return max(1, (os.cpu_count() or 1) // spark.sparkContext.defaultParallelism)
    return int(conf.get("spark.task.cpus", "1"))


class SegmentCandidates:
    """One task's segment candidates, cut to those that can still make a segment: per category, the
    ``size`` most likely users and every user tied with the last of them.

    Exact: a candidate with a lower probability than ``size`` others of the same task cannot rank within
    ``size`` over all tasks. The cut keeps the rows Spark ranks to the task's share of the segments,
    instead of every new-to-user category above the threshold.
    """
    # Cut whenever this many rows are buffered, which bounds a task's memory.
    BUFFER_ROWS = 1_000_000

    def __init__(self, size: int):
        self.size = size
        self._users: list[pa.Array] = []
        self._positions: list = []
        self._probabilities: list = []
        self._rows = 0

    def add(self, users: pa.Array, positions, probabilities) -> None:
        self._users.append(users)
        self._positions.append(positions)
        self._probabilities.append(probabilities)
        self._rows += len(positions)
        if self._rows > max(self.BUFFER_ROWS, 2 * self.size):
            self._cut()

    def _cut(self) -> None:
        import numpy as np

        if not self._rows:
            return
        users = pa.concat_arrays(self._users)
        positions, probabilities = np.concatenate(self._positions), np.concatenate(self._probabilities)
        order = np.lexsort((-probabilities, positions))  # by category, most likely first
        positions, probabilities = positions[order], probabilities[order]
        starts = np.flatnonzero(np.r_[True, positions[1:] != positions[:-1]])
        sizes = np.diff(np.r_[starts, len(order)])
        # Each category's probability at rank ``size`` (none when it has fewer candidates).
        cutoff = np.where(sizes >= self.size, probabilities[np.minimum(starts + self.size - 1, len(order) - 1)],
                          -np.inf)
        kept = probabilities >= np.repeat(cutoff, sizes)
        self._users = [users.take(pa.array(order[kept]))]
        self._positions, self._probabilities = [positions[kept]], [probabilities[kept]]
        self._rows = int(kept.sum())

    def batch(self, schema: pa.Schema) -> pa.RecordBatch:
        """The kept candidates as (user_id, pos, probability)."""
        import numpy as np

        self._cut()
        if not self._rows:
            return pa.RecordBatch.from_arrays([pa.array([], f.type) for f in schema], schema=schema)
        return pa.RecordBatch.from_arrays([self._users[0], pa.array(self._positions[0].astype(np.int32)),
                                           pa.array(self._probabilities[0])], schema=schema)


def score_batches(job: WorkerJob, batches):
    """mapInArrow body: user_sequences rows in; the scored rows written to ``job.scratch`` (ScoredFiles):
    one prediction per user, each user's segment candidates, and this task's per-category sums for the
    demand forecast (expected users, expected new users, users new to the category). Yields one
    (partition, users) row.

    A user's segment candidates are the categories new to them (not in their window) with a probability
    of at least ``job.min_propensity``, as (position among the ranked categories, probability), of which
    the task keeps those that can still make a segment (SegmentCandidates). Taking the sums and
    candidates here means Spark never holds or explodes the users x categories matrix.
    """
    import numpy as np
    import pyarrow.compute as pc
    from pyspark import TaskContext

    from models.explain import explain, habit_at_zero
    from models.predict import limit_threads, load_version
    from models.vocabulary import OOV, PAD

    model = _LOADED.get(job.version_dir)
    if model is None:
        if not _LOADED:
            limit_threads(job.threads)
        model = _LOADED[job.version_dir] = load_version(Path(job.version_dir))
    vocabulary = model.vocabulary
    habit_zero = _HABIT_ZERO.get(job.version_dir)
    if habit_zero is None:
        habit_zero = _HABIT_ZERO[job.version_dir] = habit_at_zero(model.model)
    names_by_id = pa.array(["", "(other)", *vocabulary.categories], pa.string())
    ranked = np.ones(vocabulary.size, bool)
    ranked[[PAD, OOV]] = False
    names = pa.array(np.array(["", ""] + list(vocabulary.categories), dtype=object)[ranked], pa.string())
    width = len(names)
    k = min(job.top_k, width)
    expected, expected_new, users_new = np.zeros(width), np.zeros(width), np.zeros(width, np.int64)
    task = TaskContext.get()
    partition = task.partitionId() if task else 0
    files = ScoredFiles(job.scratch, partition, task.attemptNumber() if task else 0)
    version = pa.scalar(job.model_version, pa.string())
    scored_at = pa.scalar(job.scored_at, PREDICTION_FILE_ARROW.field("scored_at").type)
    users = 0
    segment_candidates = SegmentCandidates(job.segment_size)
    for table in _regrouped(batches, job.batch_rows):
        encoded = model.encode(table)
        explained: dict = {}
        probabilities, migration = model.predict_encoded(encoded, job.batch_rows, pad_to=job.batch_rows,
                                                         explained=explained)
        probabilities = probabilities[:, ranked].astype(np.float64)
        rows = table.num_rows
        users += rows
        order = top_positions(probabilities, k)
        top_p = np.take_along_axis(probabilities, order, axis=1)
        # The encoder's counts: events per category among the last L (current top category), and
        # events per category in the window (a category is new to the user when it has none).
        recent = encoded["seen"][:, ranked]
        is_new = ~(encoded["window_events"][:, ranked] > 0)
        expected += probabilities.sum(axis=0)
        expected_new += np.where(is_new, probabilities, 0.0).sum(axis=0)
        users_new += is_new.sum(axis=0)
        user_ids = table["user_id"].combine_chunks()
        user_of, position = np.nonzero(is_new & (probabilities >= job.min_propensity))
        segment_candidates.add(pc.take(user_ids, pa.array(user_of)), position, probabilities[user_of, position])
        top = pa.ListArray.from_arrays(
            pa.array(np.arange(0, rows * k + 1, k, dtype=np.int32)),
            pa.StructArray.from_arrays([pc.take(names, pa.array(order.ravel())), pa.array(top_p.ravel())],
                                       names=["category", "probability"]))
        current = pc.take(names, pa.array(recent.argmax(axis=1), mask=recent.max(axis=1) == 0))
        why = (explain(order + 2, top_p, names_by_id, explained["habit_logit"], explained["sequence_logit"],
                       habit_zero, encoded["window_events"] > 0, encoded["categories"], explained.get("attention"))
               if "habit_logit" in explained else pa.nulls(rows, pa.string()))  # a model from before them
        files.write("predictions", pa.RecordBatch.from_arrays([
            user_ids, top, current, pa.array(migration.astype(np.float64)), why,
            pa.repeat(version, rows), pa.repeat(scored_at, rows),
        ], schema=PREDICTION_FILE_ARROW))
    files.write("candidates", segment_candidates.batch(files.KINDS["candidates"]))
    if users:
        files.write("demand", pa.RecordBatch.from_arrays([
            pa.array(np.arange(width, dtype=np.int32)), pa.array(expected), pa.array(expected_new),
            pa.array(users_new)], schema=files.KINDS["demand"]))
    files.close()
    yield pa.RecordBatch.from_arrays([pa.array([partition], pa.int32()), pa.array([users], pa.int64())],
                                     schema=to_arrow_schema(TASK_SCHEMA))


def score_pieces(job: WorkerJob, pieces: tuple[tuple[str, int], ...], ids):
    """mapInArrow body over ``spark.range``: each id is a (file, row group) of ``pieces``, which this worker
    reads with pyarrow and scores as score_batches does (one task per piece)."""
    def batches():
        for batch in ids:
            for piece in batch.column(0).to_pylist():
                path, group = pieces[piece]
                yield from _sequence_file(path).iter_batches(job.batch_rows, row_groups=[group],
                                                             columns=list(SEQUENCE_COLUMNS), use_threads=False)

    yield from score_batches(job, batches())


def _sequence_file(path: str):
    """A snapshot file whose category and event-type lists read as dictionary arrays.

    Decoding them to strings cost more than reading the rest of the file; the encoder maps each distinct
    string once. Single-threaded: the worker has one core (score runs one per core).
    """
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(path)
    leaves = [parquet.schema.column(i).path for i in range(len(parquet.schema))]
    return pq.ParquetFile(path, read_dictionary=[leaf for leaf in leaves
                                                 if leaf.split(".")[0] in DICTIONARY_COLUMNS])


def top_positions(probabilities: "np.ndarray", k: int) -> "np.ndarray":
    """(rows, k) each row's k highest columns, highest first (ties: the lower column first).

    Past a hundred or so categories, a partial selection then a sort of only those k: with thousands of
    categories a full sort of every row costs several times more (below 100, the full sort is the
    faster)."""
    import numpy as np

    if k >= probabilities.shape[1] or probabilities.shape[1] <= FULL_SORT_CATEGORIES:
        return np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
    chosen = np.argpartition(-probabilities, k - 1, axis=1)[:, :k]
    values = np.take_along_axis(probabilities, chosen, axis=1)
    order = np.take_along_axis(chosen, np.lexsort((chosen, -values), axis=1), axis=1)
    # The partial selection breaks ties at the k-th value arbitrarily: the rows where it left out a tied
    # lower column are sorted in full, so the result is always the stable sort's.
    kth = np.take_along_axis(probabilities, order[:, -1:], axis=1)
    tied = (probabilities == kth).sum(axis=1) > (values == kth).sum(axis=1)
    if tied.any():
        order[tied] = np.argsort(-probabilities[tied], axis=1, kind="stable")[:, :k]
    return order


def _regrouped(batches, rows: int):
    """Arrow batches regrouped into tables of exactly ``rows`` rows (the last one fewer), so that every
    model call has one shape, compiled once per worker, whatever batch size Spark sends."""
    pending, count = [], 0
    for batch in batches:
        while batch.num_rows:
            taken = batch.slice(0, rows - count)
            pending.append(taken)
            count += taken.num_rows
            batch = batch.slice(taken.num_rows)
            if count == rows:
                yield pa.Table.from_batches(pending)
                pending, count = [], 0
    if count:
        yield pa.Table.from_batches(pending)


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
    """Write the three partitions as the date's candidate; validate and publish take it from there."""
    candidates.reset(lake.root, score_date)
    held = candidates.candidate_lake(lake, score_date)
    with gated_write(held, validate=False) as gate:
        # The forecast and segments first, so that they commit first: a reader never sees predictions without
        # their forecast.
        _stage_frames(gate, score_date, frames)
        _stage_predictions(gate, score_date, predictions)
    rows = {table: held.read(table).count() for table in (*frames, USER_INTEREST_PREDICTIONS)}
    candidates.write_manifest(lake.root, candidates.Candidate(score_date.isoformat(), champion, active_users,
                                                              top_k, rows))
    return rows


def _stage_frames(gate, score_date: dt.date, frames: dict[str, DataFrame]) -> dict[str, DataFrame]:
    replace = {"score_date": [score_date.isoformat()]}
    return {table: gate.stage(table, frame, replace) for table, frame in frames.items()}


def _stage_predictions(gate, score_date: dt.date, predictions: Path) -> DataFrame:
    return gate.stage_files(USER_INTEREST_PREDICTIONS, predictions, PREDICTIONS_SCHEMA,
                            {"score_date": score_date.isoformat()})


def _vocabulary(registry: Registry, version: str) -> list[str]:
    from models.vocabulary import Vocabulary

    return list(Vocabulary.load(registry.version_dir(version) / "vocabulary.json").categories)


def _active_users(events: DataFrame, cutoff: dt.date, history_days: int) -> int:
    """Users with an event in the history window before the cutoff: the row count the predictions must have."""
    end = dt.datetime.combine(cutoff, dt.time(), dt.timezone.utc)
    window = events.where((F.col("event_ts") >= F.lit(end - dt.timedelta(days=history_days)))
                          & (F.col("event_ts") < F.lit(end)))
    return window.select("user_id").distinct().count()


def _demand(lake, partials: DataFrame, categories: DataFrame, score_date: dt.date, active_users: int,
            stamp) -> DataFrame:
    """Per category: expected engaged and new users, and the change against the previous score date.

    ``partials``: the tasks' per-category sums (DEMAND_SCHEMA rows, score_batches)."""
    totals = partials.groupBy("pos").agg(
        F.sum("expected_users").alias("expected_users"),
        F.sum("expected_new_users").alias("expected_new_users"),
        F.sum("users_new").alias("users_new_to_category"))
    demand = totals.join(F.broadcast(categories), totals.pos == categories.position).select(
        *stamp[:1], "category", "expected_users", "expected_new_users", "users_new_to_category",
        F.lit(active_users).cast("long").alias("active_users"), stamp[1])
    previous = _previous_demand(lake, score_date)
    if previous is None:
        return demand.select("*", F.lit(None).cast("date").alias("previous_score_date"),
                             F.lit(None).cast("double").alias("previous_expected_users"),
                             F.lit(None).cast("double").alias("expected_users_change"),
                             F.lit(None).cast("double").alias("expected_new_users_change"))
    return demand.join(previous, "category", "left").select(
        *[demand[c] for c in demand.columns], F.col("previous_score_date"), F.col("previous_expected_users"),
        (demand.expected_users - F.col("previous_expected_users")).alias("expected_users_change"),
        (demand.expected_new_users - F.col("previous_expected_new_users")).alias("expected_new_users_change"))


def _previous_demand(lake, score_date: dt.date) -> DataFrame | None:
    if not lake.exists(CATEGORY_DEMAND_FORECAST):
        return None
    earlier = [d for d in lake.partition_values(CATEGORY_DEMAND_FORECAST, "score_date") if d < score_date.isoformat()]
    if not earlier:
        return None
    return lake.read(CATEGORY_DEMAND_FORECAST, partitions={"score_date": [earlier[-1]]}).select(
        "category", F.col("score_date").alias("previous_score_date"),
        F.col("expected_users").alias("previous_expected_users"),
        F.col("expected_new_users").alias("previous_expected_new_users"))


def _segments(candidates: DataFrame, categories: DataFrame, size: int, stamp) -> DataFrame:
    """Per category, users new to it ranked by their probability of engaging with it; ties by user id.

    ``candidates``: (user_id, pos, probability) of the users new to the category above the propensity
    threshold (score_batches picks them)."""
    ranked = candidates.withColumn("rank", F.row_number().over(
        Window.partitionBy("pos").orderBy(F.desc("probability"), "user_id"))).where(F.col("rank") <= size)
    return ranked.join(F.broadcast(categories), ranked.pos == categories.position).select(
        *stamp[:1], "category", "user_id", F.col("probability").alias("propensity"), F.col("rank").cast("int"), stamp[1])


def _publish(lake, config: PipelineConfig, metrics, score_date: dt.date, active_users: int, predictions: Path,
             frames: dict[str, DataFrame], top_k: int) -> dict[str, int]:
    """Stage all three partitions, gate the predictions, then commit; on any failure nothing is published.

    The predictions' suite runs on its own thread while the demand forecast and segments are computed and
    staged: the suite leaves the cores idle while Great Expectations works out its metrics and renders Data
    Docs, and the two small tables' Spark jobs fill that time.
    Either failing discards all three. Beside the suite, delta-spark writes the predictions' table files
    (``gate.write_ahead``), so that their commit after the verdict only records them instead of
    rewriting 1M rows: the cores the suite leaves idle do that work. The forecast and segments commit together, on two threads
    (each Delta commit is mostly small jobs and driver-side work), and both before the predictions.
    """
    from concurrent.futures import ThreadPoolExecutor

    with gated_write(lake, metrics, config.validate_writes, commit_order=(tuple(frames),)) as gate:
        staged = {USER_INTEREST_PREDICTIONS: _stage_predictions(gate, score_date, predictions)}
        # Straight from the staged Parquet: the gate does not let GX cache this suite's batch.
        with ThreadPoolExecutor(2, thread_name_prefix="predictions") as pool:
            checked = pool.submit(gate.check, lambda: check_partition(
                lake, config, USER_INTEREST_PREDICTIONS, [score_date], staged[USER_INTEREST_PREDICTIONS],
                expected_rows=active_users, top_k=top_k))
            written = pool.submit(gate.write_ahead, USER_INTEREST_PREDICTIONS)
            # A staging error leaves the block after the suite has finished (the pool waits for it), and is the
            # one raised.
            staged.update(_stage_frames(gate, score_date, frames))
            rows = {table: frame.count() for table, frame in staged.items()}
            checked.result()
            written.result()
    return rows
