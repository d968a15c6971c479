"""Delta tables through Spark's native Delta connector (``format("delta")``).

Chosen where the connector's jars are on Spark's classpath (a cluster image
that could reach Maven at build time). Same interface and semantics as the
delta-rs implementation: ``replaceWhere`` for a partition overwrite, ``versionAsOf``
for time travel.
"""
from __future__ import annotations

from typing import Sequence

from pyspark.sql import DataFrame, SparkSession

from jobs.lake.base import Lake, LakeError, PartitionValues, StagedWrite, partition_predicate


def delta_spark_available(spark: SparkSession) -> bool:
    """Whether the Delta connector classes load in this Spark JVM."""
    try:
        spark._jvm.java.lang.Class.forName("org.apache.spark.sql.delta.sources.DeltaDataSource")
        return True
    except Exception:  # py4j wraps ClassNotFoundException; Spark Connect has no _jvm
        return False


def _replace_where(replace: PartitionValues) -> str:
    clauses = []
    for column, values in replace.items():
        quoted = ", ".join("'" + str(v).replace("'", "''") + "'" for v in values)
        clauses.append(f"CAST(`{column}` AS STRING) IN ({quoted})")
    return " AND ".join(clauses)


class DeltaSparkLake(Lake):
    name = "delta-spark"

    def exists(self, table: str) -> bool:
        return (self.table_path(table) / "_delta_log").is_dir()

    def _delta_table(self, table: str):
        from delta.tables import DeltaTable

        if not self.exists(table):
            raise LakeError(f"table {table!r} does not exist under {self.root}")
        return DeltaTable.forPath(self.spark, str(self.table_path(table)))

    def version(self, table: str) -> int:
        return int(self._delta_table(table).history(1).collect()[0]["version"])

    def history(self, table: str) -> list[dict]:
        rows = self._delta_table(table).history().select("version", "timestamp", "operation").collect()
        return [r.asDict() for r in rows]

    def read(self, table: str, version: int | None = None, partitions: PartitionValues | None = None) -> DataFrame:
        if not self.exists(table):
            raise LakeError(f"table {table!r} does not exist under {self.root}")
        reader = self.spark.read.format("delta")
        if version is not None:
            reader = reader.option("versionAsOf", version)
        df = reader.load(str(self.table_path(table)))
        predicate = partition_predicate(partitions or {})
        return df if predicate is None else df.where(predicate)

    def stage_partitions(
        self, table: str, df: DataFrame, partition_by: Sequence[str], replace: PartitionValues
    ) -> StagedWrite:
        """Nothing is written before the commit: the gate validates ``df`` itself."""
        if not replace:
            raise LakeError("overwrite_partitions needs at least one partition to replace")

        def commit() -> int:
            (
                df.write.format("delta")
                .mode("overwrite")
                .option("replaceWhere", _replace_where(replace))
                .partitionBy(*partition_by)
                .save(str(self.table_path(table)))
            )
            return self.version(table)

        return StagedWrite(df, commit, lambda: None)

    def append(self, table: str, df: DataFrame, partition_by: Sequence[str] = ()) -> int:
        writer = df.write.format("delta").mode("append")
        if partition_by:
            writer = writer.partitionBy(*partition_by)
        writer.save(str(self.table_path(table)))
        return self.version(table)
