"""The lake interface every implementation provides, and its shared helpers."""
from __future__ import annotations

import abc
from pathlib import Path
from typing import Mapping, Sequence

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

# {"event_date": ["2024-01-01", ...]}: the partitions a write replaces or a read keeps.
PartitionValues = Mapping[str, Sequence[str]]


class LakeError(RuntimeError):
    """A lake operation that cannot be done; the message says why."""


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
    def overwrite_partitions(
        self, table: str, df: DataFrame, partition_by: Sequence[str], replace: PartitionValues
    ) -> int:
        """Atomically replace the partitions matching ``replace`` with ``df``; returns the new version.

        Every row of ``df`` must fall inside ``replace``. Creates the table if absent.
        """

    @abc.abstractmethod
    def append(self, table: str, df: DataFrame, partition_by: Sequence[str] = ()) -> int:
        """Atomically add ``df``'s rows; returns the new version. Creates the table if absent."""

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


def partition_predicate(partitions: PartitionValues) -> "F.Column | None":
    """A Spark filter keeping only rows inside ``partitions``."""
    condition = None
    for column, values in partitions.items():
        clause = F.col(column).cast("string").isin([str(v) for v in values])
        condition = clause if condition is None else condition & clause
    return condition

