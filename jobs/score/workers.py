"""What runs inside Spark's Python workers when score runs: pure Arrow and NumPy around the champion.

Each task gets the users' sequences as Arrow batches (``score_batches``) or
reads them from the snapshot's Parquet row groups itself (``score_pieces``),
scores them in fixed-shape batches, and writes three kinds of rows as Parquet
under the run's scratch folder (``ScoredFiles``): one prediction per user, the
segment prospects that can still make a segment, and its per-category sums for
the demand forecast. Only a (partition, users) row goes back to Spark. Nothing
here needs a Spark session: tests call these functions directly.
"""
from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from pyspark.sql.pandas.types import to_arrow_schema

from jobs.score.schemas import DEMAND_SCHEMA, PREDICTION_FILE_ARROW, PROSPECTS_SCHEMA, TASK_SCHEMA
from models.encoding import INPUT_COLUMNS

# What a worker reads from a snapshot's files.
SEQUENCE_COLUMNS = ("user_id", *INPUT_COLUMNS)
# Snapshot columns of strings repeated across users, read as dictionaries (_sequence_file).
DICTIONARY_COLUMNS = ("history_categories", "history_event_types", "window_categories")
# Rows per Parquet row group in the workers' files.
ROW_GROUP_ROWS = 65_536
# Up to this many categories, top_positions sorts each row in full (faster than a partial selection).
FULL_SORT_CATEGORIES = 100
# Python workers keep the champion between partitions: loaded once per worker and version.
_LOADED: dict[str, object] = {}
_HABIT_ZERO: dict[str, float] = {}


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
    """The workers' Parquet output under one scratch folder: ``predictions``, ``prospects`` and ``demand``.

    A task writes ``<kind>/part-<partition>.parquet`` through a hidden temporary name and renames it when
    complete, so a retried or speculative attempt replaces its partition's file instead of adding one,
    and an attempt that dies leaves only a hidden file, which Spark's readers skip.
    """
    KINDS = {"predictions": PREDICTION_FILE_ARROW, "prospects": to_arrow_schema(PROSPECTS_SCHEMA),
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


class SegmentProspects:
    """One task's segment prospects, cut to those that can still make a segment: per category, the
    ``size`` most likely users and every user tied with the last of them.

    Exact: a prospect with a lower probability than ``size`` others of the same task cannot rank within
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
        # Each category's probability at rank ``size`` (none when it has fewer prospects).
        cutoff = np.where(sizes >= self.size, probabilities[np.minimum(starts + self.size - 1, len(order) - 1)],
                          -np.inf)
        kept = probabilities >= np.repeat(cutoff, sizes)
        self._users = [users.take(pa.array(order[kept]))]
        self._positions, self._probabilities = [positions[kept]], [probabilities[kept]]
        self._rows = int(kept.sum())

    def batch(self, schema: pa.Schema) -> pa.RecordBatch:
        """The kept prospects as (user_id, pos, probability)."""
        import numpy as np

        self._cut()
        if not self._rows:
            return pa.RecordBatch.from_arrays([pa.array([], f.type) for f in schema], schema=schema)
        return pa.RecordBatch.from_arrays([self._users[0], pa.array(self._positions[0].astype(np.int32)),
                                           pa.array(self._probabilities[0])], schema=schema)


def score_batches(job: WorkerJob, batches):
    """mapInArrow body: user_sequences rows in; the scored rows written to ``job.scratch`` (ScoredFiles):
    one prediction per user, each user's segment prospects, and this task's per-category sums for the
    demand forecast (expected users, expected new users, users new to the category). Yields one
    (partition, users) row.

    A user's segment prospects are the categories new to them (not in their window) with a probability
    of at least ``job.min_propensity``, as (position among the ranked categories, probability), of which
    the task keeps those that can still make a segment (SegmentProspects). Taking the sums and
    prospects here means Spark never holds or explodes the users x categories matrix.
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
    prospects = SegmentProspects(job.segment_size)
    for table in regrouped(batches, job.batch_rows):
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
        prospects.add(pc.take(user_ids, pa.array(user_of)), position, probabilities[user_of, position])
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
    files.write("prospects", prospects.batch(files.KINDS["prospects"]))
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


def regrouped(batches, rows: int):
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
