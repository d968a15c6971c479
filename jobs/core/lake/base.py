"""The lake interface (what stages may do with Delta tables), and its shared helpers."""
from __future__ import annotations

import abc
from pathlib import Path
from typing import Callable, Mapping, Sequence

import pyarrow.parquet as pq
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import from_arrow_schema
from pyspark.sql.types import StructType

# {"event_date": ["2024-01-01", ...]}: the partitions a write replaces or a read keeps.
PartitionValues = Mapping[str, Sequence[str]]
# What a write replaces: one PartitionValues (every combination of its values), or several, whose union is
# replaced: a range of features' as-of dates replaces each date's own cutoffs, not every date's with every other's.
Replacement = PartitionValues | Sequence[PartitionValues]


def replacement_parts(replace: Replacement) -> list[PartitionValues]:
    """``replace`` as a list of PartitionValues (one element for the plain form)."""
    return [replace] if isinstance(replace, Mapping) else list(replace)


class LakeError(RuntimeError):
    """A lake operation that cannot be done; the message says why."""


class PreparedWrite:
    """A partition overwrite whose data is written but not yet visible to readers.

    ``frame`` reads the prepared rows, so a data-quality gate can validate exactly
    what would be published; then ``commit()`` publishes it in one transaction,
    or ``discard()`` drops it and the table keeps its previous version.
    """

    def __init__(self, frame: DataFrame, commit: Callable[[], int], discard: Callable[[], None],
                 write_ahead: Callable[[], bool] | None = None):
        self.frame = frame
        self._commit, self._discard, self._write_ahead = commit, discard, write_ahead
        self.done = False

    def write_ahead(self) -> bool:
        """Write the table's data files now, still invisible to readers, so that ``commit()`` only records them;
        False when this write cannot (``commit()`` then writes them). Meant to run while a suite validates."""
        return self._write_ahead() if self._write_ahead is not None and not self.done else False

    def commit(self) -> int:
        self.done = True
        return self._commit()

    def discard(self) -> None:
        if not self.done:
            self.done = True
            self._discard()


class Lake(abc.ABC):
    """Delta tables under one root directory, one sub-directory per table."""

    name: str

    def __init__(self, spark: SparkSession, root: str | Path):
        self.spark = spark
        self.root = Path(root).resolve()

    def table_path(self, table: str) -> Path:
        return self.root / table

    @abc.abstractmethod
    def exists(self, table: str) -> bool:
        """Whether the table has a Delta log."""

    @abc.abstractmethod
    def read(
        self, table: str, version: int | None = None, partitions: PartitionValues | None = None
    ) -> DataFrame:
        """The table at its current (or an earlier) version, optionally pruned to partitions."""

    @abc.abstractmethod
    def prepare_partitions(
        self, table: str, df: DataFrame, partition_by: Sequence[str], replace: Replacement
    ) -> PreparedWrite:
        """Write ``df`` to replace the partitions matching ``replace``, without publishing it yet.

        Every row of ``df`` must fall inside ``replace``. Creates the table on commit if absent.
        """

    def overwrite_partitions(
        self, table: str, df: DataFrame, partition_by: Sequence[str], replace: Replacement
    ) -> int:
        """Atomically replace the partitions matching ``replace`` with ``df``; returns the new version."""
        prepared = self.prepare_partitions(table, df, partition_by, replace)
        try:
            return prepared.commit()
        finally:
            prepared.discard()

    @abc.abstractmethod
    def prepare_files(self, table: str, folder: Path, schema: StructType, partition: Mapping[str, str]) -> PreparedWrite:
        """Stage Parquet files written outside Spark's writer as the whole of one partition, replacing it on commit.

        For a producer whose Spark tasks write their own Parquet (score's
        Python workers), so that the rows are not passed through Spark once
        more only to be prepared again. ``partition`` gives each partition
        column's value; the files under ``folder`` hold ``schema``'s other
        columns, and are checked against them. The folder is taken over: it is
        gone after ``commit()`` or ``discard()``.
        """

    def partition_files(self, table: str, partitions: PartitionValues) -> list[str] | None:
        """The data files that hold exactly ``partitions``' rows, for a reader outside Spark (score's Python
        workers); None when this lake cannot promise that reading them raw gives those rows, and the caller
        reads through Spark instead."""
        return None

    @abc.abstractmethod
    def partition_row_counts(self, table: str, column: str, values: Sequence[str]) -> dict[str, int]:
        """Rows per value of partition ``column`` (absent values are left out; empty when the table is absent)."""

    @abc.abstractmethod
    def partition_values(self, table: str, column: str) -> list[str]:
        """The distinct values of partition ``column``, sorted (empty when the table is absent)."""

    @abc.abstractmethod
    def append(self, table: str, df: DataFrame, partition_by: Sequence[str] = ()) -> int:
        """Atomically add ``df``'s rows; returns the new version. Creates the table if absent."""

    @abc.abstractmethod
    def delete_partitions(self, table: str, partitions: PartitionValues) -> int:
        """Atomically remove the partitions matching ``partitions``; returns the new version."""

    @abc.abstractmethod
    def version(self, table: str) -> int:
        """The table's current version number."""

    @abc.abstractmethod
    def history(self, table: str) -> list[dict]:
        """Commit history, newest first: version, timestamp, operation."""

    def append_rows(self, table: str, rows: list[tuple], schema, partition_by: Sequence[str] = ()) -> int:
        """Append a handful of rows (audit records); implementations may skip Spark."""
        return self.append(table, self.spark.createDataFrame(rows, schema), partition_by)

    def read_or_empty(self, table: str, schema, partitions: PartitionValues | None = None) -> DataFrame:
        """``read`` for a table that may not exist yet (first run): empty with ``schema``."""
        if self.exists(table):
            return self.read(table, partitions=partitions)
        return self.spark.createDataFrame([], schema)


def data_columns(folder: Path, schema: StructType, partition: Mapping[str, str]) -> StructType:
    """``schema`` without the partition columns, after checking that every Parquet file under ``folder`` has
    exactly those columns and types (from the footers: no data is read)."""
    if not Path(folder).is_dir():
        raise LakeError(f"no folder of Parquet files at {folder}")
    missing = [c for c in partition if c not in schema.fieldNames()]
    if missing:
        raise LakeError(f"partition columns {missing} are not in the schema {schema.simpleString()}")
    columns = StructType([f for f in schema if f.name not in partition])
    expected = [(f.name, f.dataType.simpleString()) for f in columns]
    for file in sorted(Path(folder).rglob("*.parquet")):
        found = [(f.name, f.dataType.simpleString()) for f in from_arrow_schema(pq.read_schema(file))]
        if found != expected:
            raise LakeError(f"{file} has columns {found}, the table needs {expected}")
    return columns


def partition_predicate(partitions: PartitionValues) -> "F.Column | None":
    """A Spark filter keeping only rows inside ``partitions``."""
    condition = None
    for column, values in partitions.items():
        clause = F.col(column).cast("string").isin([str(v) for v in values])
        condition = clause if condition is None else condition & clause
    return condition

