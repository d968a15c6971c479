"""Delta Lake I/O behind one small interface, with two implementations.

Why two: the Delta Spark connector's jars come from Maven, which many machines
(ours included) cannot reach. So the default commits through delta-rs
(`deltalake`, a PyPI wheel): Spark writes the Parquet files, delta-rs writes the
Delta log entry that makes them visible, atomically. Where the connector's jars
are on Spark's classpath, `delta-spark` uses Spark's native ``format("delta")``.
Both give the same tables; the contract tests run against each one available.

Every write is one Delta transaction: a reader sees the previous version or the
new one, never a half-written table.
"""
from __future__ import annotations

from pyspark.sql import SparkSession

from jobs.lake.base import Lake, LakeError, PartitionValues, StagedWrite
from jobs.lake.delta_rs import DeltaRsLake
from jobs.lake.delta_spark import DeltaSparkLake, delta_spark_available

IMPLEMENTATIONS = ("delta-rs", "delta-spark")

__all__ = ["Lake", "LakeError", "PartitionValues", "StagedWrite", "open_lake", "IMPLEMENTATIONS"]


def open_lake(spark: SparkSession, root: str, impl: str = "auto") -> Lake:
    """The lake at ``root`` through ``impl`` ("auto", "delta-rs" or "delta-spark")."""
    if impl == "auto":
        impl = "delta-spark" if delta_spark_available(spark) else "delta-rs"
    if impl == "delta-rs":
        return DeltaRsLake(spark, root)
    if impl == "delta-spark":
        if not delta_spark_available(spark):
            raise LakeError(
                "lake implementation 'delta-spark' needs the Delta Spark connector "
                "jars on Spark's classpath (spark.jars / spark.jars.packages); "
                "use 'delta-rs' or 'auto' on machines without them"
            )
        return DeltaSparkLake(spark, root)
    raise LakeError(f"unknown lake implementation {impl!r}; expected one of auto, {', '.join(IMPLEMENTATIONS)}")
