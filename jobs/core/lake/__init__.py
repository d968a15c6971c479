"""Delta Lake I/O behind one small interface.

Spark jobs read and write Delta through the Delta Spark connector
(``delta-spark``; its jars are resolved by ``make install``), so every write is
one Delta transaction with Delta's own conflict detection: a reader sees the
previous version or the new one, never a half-written table. Readers outside
Spark (``python -m jobs sql``, Python tools) use delta-rs or DuckDB's delta
extension on the same tables. ``gated_write`` is how a stage publishes.
"""
from __future__ import annotations

from pyspark.sql import SparkSession

from jobs.core.lake.base import Lake, LakeError, PartitionValues, PreparedWrite
from jobs.core.lake.delta_spark import ConcurrentWriteError, DeltaSparkLake, delta_spark_available
from jobs.core.lake.gated import GatedWrite, gated_write

__all__ = ["ConcurrentWriteError", "GatedWrite", "Lake", "LakeError", "PartitionValues", "PreparedWrite",
           "gated_write", "open_lake"]


def open_lake(spark: SparkSession, root: str) -> Lake:
    """The lake at ``root``; fails with one line when the session lacks the Delta connector."""
    if not delta_spark_available(spark):
        raise LakeError("this Spark session has no Delta connector on its classpath: run `make install` (it puts "
                        "the jars in jars/), and start jobs with jobs.core.spark.build_spark or spark-submit "
                        "with jobs.core.classpath.spark_submit_arguments()")
    return DeltaSparkLake(spark, root)
