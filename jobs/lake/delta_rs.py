"""Delta tables through delta-rs: Spark writes Parquet, delta-rs commits it.

A write goes in three steps:
1. Spark writes the DataFrame as Parquet into a private staging folder of the
   table (``_staging/<uuid>``), partitioned like the table. (``stage_files``
   instead renames a folder of Parquet files some other writer made there.)
2. The files are moved into the table's partition folders. They are invisible
   to readers: a Delta reader sees only the files named in the log.
3. One delta-rs transaction adds them (and, for an overwrite, removes the
   replaced partitions' files). This commit is the only moment readers can
   observe, and it is atomic.

Between steps 1 and 2 the staged rows can be read and validated (see
``StagedWrite``): a data-quality gate sees exactly what would be published.
A crash before step 3 leaves the table at its previous version; stray files are
unreferenced and `VACUUM` removes them. Reads ask delta-rs for the current (or
a past) version's file list and hand exactly those files to Spark.
"""
from __future__ import annotations

import shutil
import time
import uuid
from pathlib import Path
from typing import Mapping, Sequence
from urllib.parse import quote, unquote

import pyarrow as pa
import pyarrow.parquet as pq
from deltalake import DeltaTable, Schema, write_deltalake
from deltalake.transaction import AddAction, CommitProperties, create_table_with_add_actions
from pyspark.sql import DataFrame
from pyspark.sql.pandas.types import from_arrow_schema, to_arrow_schema
from pyspark.sql.types import StructType

from jobs.lake.base import Lake, LakeError, PartitionValues, StagedWrite, data_columns

STAGING_DIR = "_staging"


class DeltaRsLake(Lake):
    name = "delta-rs"

    def exists(self, table: str) -> bool:
        return DeltaTable.is_deltatable(str(self.table_path(table)))

    def _table(self, table: str, version: int | None = None) -> DeltaTable:
        if not self.exists(table):
            raise LakeError(f"table {table!r} does not exist under {self.root}")
        return DeltaTable(str(self.table_path(table)), version=version)

    def version(self, table: str) -> int:
        return self._table(table).version()

    def history(self, table: str) -> list[dict]:
        return [
            {"version": h.get("version"), "timestamp": h.get("timestamp"), "operation": h.get("operation")}
            for h in self._table(table).history()
        ]

    def read(self, table: str, version: int | None = None, partitions: PartitionValues | None = None) -> DataFrame:
        dt = self._table(table, version)
        schema = from_arrow_schema(pa.schema(dt.schema().to_arrow()))
        filters = [(col, "in", [str(v) for v in values]) for col, values in (partitions or {}).items()]
        files = dt.file_uris(partition_filters=filters or None)
        if not files:
            return self.spark.createDataFrame([], schema)
        return (
            self.spark.read.schema(schema)
            .option("basePath", str(self.table_path(table)))
            .parquet(*files)
        )

    def stage_partitions(
        self, table: str, df: DataFrame, partition_by: Sequence[str], replace: PartitionValues
    ) -> StagedWrite:
        if not replace:
            raise LakeError("overwrite_partitions needs at least one partition to replace")
        unknown = set(replace) - set(partition_by)
        if unknown:
            raise LakeError(f"cannot replace by {sorted(unknown)}: table {table!r} is partitioned by {list(partition_by)}")
        filters = [(col, "in", [str(v) for v in values]) for col, values in replace.items()]
        return self._stage(table, df, partition_by, mode="overwrite", replace=replace, filters=filters)

    def partition_row_counts(self, table: str, column: str, values: Sequence[str]) -> dict[str, int]:
        """From the Delta log's per-file ``numRecords``: no data file is opened."""
        if not self.exists(table):
            return {}
        wanted = {str(v) for v in values}
        actions = pa.table(self._table(table).get_add_actions(flatten=True))
        key, counts = f"partition.{column}", {}
        if key not in actions.column_names or "num_records" not in actions.column_names:
            return super().partition_row_counts(table, column, values)
        for value, rows in zip(actions[key].to_pylist(), actions["num_records"].to_pylist()):
            value = None if value is None else str(value)
            if value in wanted:
                counts[value] = counts.get(value, 0) + int(rows or 0)
        return counts

    def partition_values(self, table: str, column: str) -> list[str]:
        """From the Delta log's add actions: no data file is opened."""
        if not self.exists(table):
            return []
        actions = pa.table(self._table(table).get_add_actions(flatten=True))
        key = f"partition.{column}"
        if key not in actions.column_names:
            return super().partition_values(table, column)
        return sorted({str(v) for v in actions[key].to_pylist() if v is not None})

    def append(self, table: str, df: DataFrame, partition_by: Sequence[str] = ()) -> int:
        staged = self._stage(table, df, partition_by, mode="append", replace=None, filters=None)
        try:
            return staged.commit()
        finally:
            staged.discard()

    def append_rows(self, table: str, rows: list[tuple], schema, partition_by: Sequence[str] = ()) -> int:
        """A few rows straight from Arrow: no Spark job for an audit record."""
        arrow_schema = to_arrow_schema(schema)
        columns = list(zip(*rows)) if rows else [[] for _ in arrow_schema]
        data = pa.Table.from_arrays([pa.array(list(c), type=f.type) for c, f in zip(columns, arrow_schema)], schema=arrow_schema)
        # schema_mode="merge": audit tables gain columns over releases; old rows read as null.
        write_deltalake(str(self.table_path(table)), data, mode="append", partition_by=list(partition_by) or None,
                        schema_mode="merge")
        return self.version(table)

    def stage_files(self, table: str, folder: Path, schema: StructType, partition: Mapping[str, str]) -> StagedWrite:
        """The files are adopted as they are: the folder becomes the staged partition, by one rename, and
        each file's name gets the stage's id, so that it cannot meet an earlier version's file."""
        data_columns(folder, schema, partition)
        stage = uuid.uuid4().hex
        staging = self.table_path(table) / STAGING_DIR / stage
        target = staging.joinpath(*[f"{column}={quote(str(value), safe='')}" for column, value in partition.items()])
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(folder), str(target))  # a rename when the folder is on the lake's filesystem
        for file in list(target.rglob("*.parquet")):
            file.rename(file.with_name(f"{file.stem}-{stage}.parquet"))
        replace = {column: [str(value)] for column, value in partition.items()}
        return self._staged(table, staging, schema, list(partition), mode="overwrite", replace=replace,
                            filters=[(column, "in", values) for column, values in replace.items()])

    def _stage(self, table, df, partition_by, mode, replace, filters) -> StagedWrite:
        staging = self.table_path(table) / STAGING_DIR / uuid.uuid4().hex
        try:
            writer = df.write.mode("overwrite")
            if partition_by:
                writer = writer.partitionBy(*partition_by)
            writer.parquet(str(staging))
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return self._staged(table, staging, df.schema, partition_by, mode, replace, filters)

    def _staged(self, table, staging: Path, schema: StructType, partition_by, mode, replace, filters) -> StagedWrite:
        """Parquet files under ``staging``, partitioned like the table: readable now, published by commit."""
        root = self.table_path(table)
        arrow_schema = to_arrow_schema(schema)
        discard = lambda: shutil.rmtree(staging, ignore_errors=True)  # noqa: E731
        frame = self.spark.read.schema(schema).option("basePath", str(staging)).parquet(str(staging))

        def commit() -> int:
            try:
                actions = _move_into_table(staging, root, partition_by)
                if replace:
                    _check_inside(actions, replace, table)
                props = CommitProperties(custom_metadata={"writer": "interest-migration/delta-rs"})
                if self.exists(table):
                    DeltaTable(str(root)).create_write_transaction(
                        actions,
                        mode=mode,
                        schema=Schema.from_arrow(arrow_schema),
                        partition_by=list(partition_by) or None,
                        partition_filters=filters,
                        commit_properties=props,
                    )
                else:
                    create_table_with_add_actions(
                        str(root),
                        Schema.from_arrow(arrow_schema),
                        actions,
                        mode="append",
                        partition_by=list(partition_by) or None,
                        commit_properties=props,
                    )
            finally:
                discard()
            return self.version(table)

        return StagedWrite(frame, commit, discard)


def _move_into_table(staging: Path, root: Path, partition_by: Sequence[str]) -> list[AddAction]:
    """Move Spark's output files into the table's partition folders; one AddAction each."""
    actions = []
    for file in sorted(staging.rglob("*.parquet")):
        relative = file.relative_to(staging)
        values = _partition_values(relative, partition_by)
        target = root / relative
        if target.exists():  # an earlier version's file, which time travel still reads
            raise LakeError(f"refusing to replace {target}: staged files must have names new to the table")
        target.parent.mkdir(parents=True, exist_ok=True)
        file.replace(target)
        stat = target.stat()
        rows = pq.read_metadata(target).num_rows
        actions.append(
            AddAction(
                path=relative.as_posix(),
                size=stat.st_size,
                partition_values=values,
                modification_time=int(time.time() * 1000),
                data_change=True,
                stats=f'{{"numRecords":{rows}}}',
            )
        )
    return actions


def _partition_values(relative: Path, partition_by: Sequence[str]) -> dict[str, str | None]:
    """Partition values from Spark's ``col=value`` folder names (Hive-style, %-escaped)."""
    found = {}
    for part in relative.parts[:-1]:
        key, _, value = part.partition("=")
        found[key] = None if value == "__HIVE_DEFAULT_PARTITION__" else unquote(value)
    missing = [c for c in partition_by if c not in found]
    if missing:
        raise LakeError(f"Spark wrote {relative} without partition folders {missing}")
    return {c: found[c] for c in partition_by}


def _check_inside(actions: list[AddAction], replace: PartitionValues, table: str) -> None:
    """Refuse an overwrite whose new files lie outside the partitions it replaces."""
    allowed = {col: {str(v) for v in values} for col, values in replace.items()}
    for action in actions:
        for col, values in allowed.items():
            if action.partition_values.get(col) not in values:
                raise LakeError(
                    f"refusing to overwrite {table!r} partitions {dict(replace)}: new rows have "
                    f"{col}={action.partition_values.get(col)}, outside the replaced partitions"
                )
