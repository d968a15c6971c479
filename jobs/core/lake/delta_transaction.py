"""A partition replacement in two steps through delta-spark's transaction API: write the data files
now, commit them later.

Why: a gated write validates its prepared rows before it commits them. Had it staged them elsewhere, the
commit would write those rows a second time into the table's files (``df.write.format("delta")``): about
a fifth of each data stage's time (bench/bench_ingest_pipeline.py), and at 1M predictions the largest step
after the scoring itself (bench/bench_score.py). Delta's own writer works in two steps inside one
``OptimisticTransaction``: ``writeFiles`` writes the data files into the table folder, unreferenced, and
``commit`` adds them to the log. Calling those two steps ourselves lets the prepared rows be those files
(``DeltaSparkLake.prepare_partitions``), or lets them be written while a suite validates the prepared rows
(``prepare_files``' write-ahead), and only the log entry wait for the verdict.

The transaction is started before the files are written, so Delta's conflict detection covers the whole
span: a writer that changes the same partition meanwhile makes the commit fail (ConcurrentWriteError), as
a ``replaceWhere`` write would. ``writeFiles`` enforces the table's constraints and collects the same file
statistics as ``df.write``; the files are the same kind of files.

Only for what it is sure to do like ``df.write``, in a driver of its own (not a Spark Connect client): the
table exists, is partitioned by exactly the replaced columns, and has exactly the frame's columns and types
(no schema change to merge). Anything else returns None from ``write_files`` and the caller writes the usual
way. These are delta-spark's Scala classes reached
through py4j (``DeltaLog``, ``OptimisticTransaction``, ``DeltaOperations.Write``), pinned with the jar
(``jars/``); the write-ahead tests in tests/jobs/test_lake.py fail if a Delta upgrade changes them.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Mapping, Sequence
from urllib.parse import unquote

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.types import StructType


class WrittenFiles:
    """Data files written into a table folder by an open transaction, not yet in the table's log."""

    def __init__(self, spark: SparkSession, table_path: Path, transaction, added: list,
                 partition_columns: Sequence[str]):
        self.spark, self.table_path, self.partition_columns = spark, table_path, list(partition_columns)
        self._transaction, self._added = transaction, added

    def commit(self, partitions: Sequence[Mapping[str, str]], predicate: str, tag: str) -> int:
        """Replace ``partitions`` (every file now in each) with the written files, tagged ``tag``; returns the
        version. Each mapping names a value for every partition column of the table.

        ``predicate``: how the commit's history entry shows the replacement (the ``replaceWhere`` text)."""
        jvm = self.spark._jvm
        txn = self._transaction
        replaced = txn.filterFiles(_scala_set([_scala_map(jvm, part) for part in partitions], jvm))
        actions = [file.remove() for file in _python_list(replaced)] + self._added
        some, none = jvm.scala.Some, getattr(getattr(jvm.scala, "None$"), "MODULE$")
        operation = jvm.org.apache.spark.sql.delta.DeltaOperations.Write(
            jvm.org.apache.spark.sql.SaveMode.Overwrite, some(_scala_list(self.partition_columns, jvm)),
            some(predicate), some(tag), none, none, none)
        return int(txn.commit(_scala_list(actions, jvm), operation))

    def paths(self) -> list[str]:
        """The written files, absolute."""
        return [str(self.table_path / unquote(action.path())) for action in self._added]

    def partitions(self) -> list[dict[str, str]]:
        """Each written file's partition values (as Delta records them: strings, dates in ISO form)."""
        jvm = self.spark._jvm
        return [dict(_converters(jvm).asJava(action.partitionValues())) for action in self._added]

    def abandon(self) -> None:
        """Delete the written files: nothing refers to them (``VACUUM`` would remove them later anyway)."""
        for action in self._added:
            try:
                os.remove(self.table_path / unquote(action.path()))
            except OSError:
                pass


def write_files(spark: SparkSession, table_path: Path, frame: DataFrame,
                partition_columns: Sequence[str]) -> WrittenFiles | None:
    """Start a transaction on the table and write ``frame``'s files into it; None when this table is not one
    this path may write (see the module docstring): the caller then writes with ``df.write``."""
    from jobs.core.spark import is_remote

    if is_remote(spark) or not (table_path / "_delta_log").is_dir():  # a Spark Connect client has no JVM to call
        return None
    jvm = spark._jvm
    log = jvm.org.apache.spark.sql.delta.DeltaLog.forTable(spark._jsparkSession, str(table_path))
    transaction = log.startTransaction()
    metadata = transaction.metadata()
    if _python_list(metadata.partitionColumns()) != list(partition_columns):
        return None
    if _shape(StructType.fromJson(json.loads(metadata.schema().json()))) != _shape(frame.schema):
        return None
    return WrittenFiles(spark, table_path, transaction, _python_list(transaction.writeFiles(frame._jdf)),
                        partition_columns)


def _shape(schema: StructType) -> list[tuple[str, str]]:
    """Column names and types, nullability aside (Delta records what the first writer declared)."""
    def plain(data_type) -> str:
        return json.dumps(_without_nullability(data_type.jsonValue()), sort_keys=True)
    return [(field.name, plain(field.dataType)) for field in schema.fields]


def _without_nullability(value):
    if isinstance(value, dict):
        return {k: _without_nullability(v) for k, v in value.items()
                if k not in ("nullable", "containsNull", "valueContainsNull", "metadata")}
    if isinstance(value, list):
        return [_without_nullability(v) for v in value]
    return value


def _python_list(sequence) -> list:
    iterator, items = sequence.iterator(), []
    while iterator.hasNext():
        items.append(iterator.next())
    return items


def _converters(jvm):
    return jvm.scala.jdk.javaapi.CollectionConverters


def _java_list(items: list, jvm):
    java = jvm.java.util.ArrayList()
    for item in items:
        java.add(item)
    return java


def _scala_list(items: list, jvm):
    return _converters(jvm).asScala(_java_list(items, jvm)).toList()


def _companion(jvm, name: str):
    return getattr(getattr(jvm.scala.collection.immutable, name + "$"), "MODULE$")


def _scala_map(jvm, values: Mapping[str, str]):
    java = jvm.java.util.HashMap()
    for key, value in values.items():
        java.put(key, str(value))
    return getattr(_companion(jvm, "Map"), "from")(_converters(jvm).asScala(java))


def _scala_set(items: list, jvm):
    return getattr(_companion(jvm, "Set"), "from")(_converters(jvm).asScala(_java_list(items, jvm)))
