"""Delta tables through the Delta Spark connector (``format("delta")``).

A partition overwrite goes in two steps, so that a data-quality gate can look
at exactly the rows that will be published:

1. ``prepare_partitions`` writes the rows once, into the table's own folder,
   inside a Delta transaction that has not committed (delta_transaction): the
   files are there but no version refers to them, so readers do not see them.
   Its ``frame`` reads those immutable files: validating it never recomputes the
   producing plan. Where that path cannot be taken (the table does not exist
   yet, the rows add a column, a Spark Connect client has no JVM to call), the
   rows are written as Parquet into a private folder, ``<lake>/_staging/<table>-<id>``.
2. ``commit()`` adds the written files to the log and removes the replaced
   partitions' files in one commit, or, for staged rows, writes them into the
   table with ``replaceWhere``: one Delta transaction either way, so readers
   see the previous version or the new one. Every row must lie inside the
   replaced partitions, and Delta's optimistic concurrency control refuses a
   commit that conflicts with one another writer made meanwhile
   (``ConcurrentWriteError``). A write prepared from files (``prepare_files``)
   may have its table files written ahead, while a suite validates the prepared
   rows (``PreparedWrite.write_ahead``): the commit then only adds them to the log.

A writer killed at any point leaves the table at its previous version: its
data files are either in the staging folder or unreferenced files in the table
folder, which the ``maintain`` stage removes (``VACUUM`` and the staging sweep).
Versions are found by the commit's ``userMetadata`` tag, not by "the latest",
so a concurrent writer's commit is never reported as ours (``append_rows``,
delta-rs' audit appends, reports the latest version: nothing reads it back).
"""
from __future__ import annotations

import itertools
import json
import shutil
import uuid
from pathlib import Path
from typing import Mapping, Sequence

from deltalake import DeltaTable as LogReader
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import DateType, StringType, StructType

from jobs.core.lake.base import (Lake, LakeError, PartitionValues, PreparedWrite, Replacement, data_columns,
                                 partition_predicate, replacement_parts)
from jobs.core.lake.delta_transaction import WrittenFiles, write_files

STAGING_DIR = "_staging"
# Delta's exception classes for a commit that lost a race to another writer's commit.
_CONFLICTS = ("ConcurrentAppendException", "ConcurrentDeleteReadException", "ConcurrentDeleteDeleteException",
              "ConcurrentTransactionException", "MetadataChangedException", "ProtocolChangedException",
              "ConcurrentWriteException")


class ConcurrentWriteError(LakeError):
    """Another writer committed a conflicting change first; nothing of this write was published."""


def delta_spark_available(spark: SparkSession) -> bool:
    """Whether the Delta connector classes load in this Spark JVM (for a Spark Connect client: whether its
    server's sessions have Delta's extension, which the server can only have with the connector's jars)."""
    from jobs.core.spark import is_remote

    if is_remote(spark):
        return "DeltaSparkSessionExtension" in (spark.conf.get("spark.sql.extensions", "") or "")
    try:
        jvm = spark._jvm  # spark.jars are on the context class loader, not the one Class.forName(name) uses
        jvm.java.lang.Class.forName("org.apache.spark.sql.delta.sources.DeltaDataSource", False,
                                    jvm.java.lang.Thread.currentThread().getContextClassLoader())
        return True
    except Exception:  # py4j wraps ClassNotFoundException; Spark Connect has no _jvm
        return False


def replace_where(replace: Replacement) -> str:
    """The ``replaceWhere`` predicate for a set of partition values (values quoted, names back-quoted), or for the
    union of several."""
    parts = replacement_parts(replace)
    if len(parts) > 1:
        return " OR ".join(f"({replace_where(part)})" for part in parts)
    clauses = []
    for column, values in parts[0].items():
        quoted = ", ".join("'" + str(v).replace("\\", "\\\\").replace("'", "\\'") + "'" for v in values)
        clauses.append(f"CAST(`{column.replace('`', '``')}` AS STRING) IN ({quoted})")
    return " AND ".join(clauses)


class DeltaSparkLake(Lake):
    name = "delta-spark"

    def __init__(self, spark: SparkSession, root: str | Path):
        super().__init__(spark, root)
        # Delta skips recording a commit that adds and removes nothing (an empty partition replaced by no
        # rows: a nightly re-run of a date without events). Every write here must leave a version to
        # report and to find by its tag (_version_tagged), so record those too.
        spark.conf.set("spark.databricks.delta.skipRecordingEmptyCommits", "false")

    def exists(self, table: str) -> bool:
        return (self.table_path(table) / "_delta_log").is_dir()

    def _require(self, table: str) -> str:
        if not self.exists(table):
            raise LakeError(f"table {table!r} does not exist under {self.root}")
        return str(self.table_path(table))

    def version(self, table: str) -> int:
        """From the Delta log itself (delta-rs reads it without starting a Spark job)."""
        return LogReader(self._require(table)).version()

    def history(self, table: str) -> list[dict]:
        return [{"version": h.get("version"), "timestamp": h.get("timestamp"), "operation": h.get("operation")}
                for h in LogReader(self._require(table)).history()]

    def read(self, table: str, version: int | None = None, partitions: PartitionValues | None = None) -> DataFrame:
        """The table's rows (of ``partitions``; at ``version``): the version's files, listed from the Delta log by
        delta-rs, scanned by Spark's Parquet reader with the table's schema.

        delta-spark's own reader plans each scan with Spark jobs over the log (its state, then the files a
        partition filter keeps): 1 to 3 s each in a stage's fresh driver, several per stage, for the same list
        of files. A table whose protocol needs a Delta reader (deletion vectors, column mapping) is read by
        delta-spark.
        """
        path = self._require(table)
        log = LogReader(path, version=version) if version is not None else LogReader(path)
        files = self._version_files(log, table, partitions or {})
        if files is None:
            reader = self.spark.read.format("delta")
            if version is not None:
                reader = reader.option("versionAsOf", version)
            predicate = partition_predicate(partitions or {})
            df = reader.load(path)
            return df if predicate is None else df.where(predicate)
        schema = StructType.fromJson(json.loads(log.schema().to_json()))
        if not files:
            return self.spark.createDataFrame([], schema)
        # Partition values come from the files' folders (Delta's writer names them column=value), typed by the
        # table's schema; the columns are then put back in the table's order.
        return (self.spark.read.schema(schema).option("basePath", path).parquet(*files)
                .select(*schema.fieldNames()))

    def _version_files(self, log, table: str, partitions: PartitionValues) -> list[str] | None:
        """The data files of ``log``'s version in ``partitions``; None when only a Delta reader reads them right."""
        import pyarrow as pa
        from urllib.parse import unquote, urlparse

        if log.protocol().min_reader_version > 1:
            return None
        actions = pa.table(log.get_add_actions(flatten=True))
        kept = [True] * actions.num_rows
        for column, values in partitions.items():
            wanted = {str(v) for v in values}
            values_here = _partition_values(actions, table, column)
            kept = [k and v is not None and v in wanted for k, v in zip(kept, values_here)]
        folder = self.table_path(table)
        columns = list(log.metadata().partition_columns)
        values = list(zip(*(_partition_values(actions, table, column) for column in columns))) or None
        files = []
        for index, (path, keep) in enumerate(zip(actions["path"].to_pylist(), kept)):
            if not keep:
                continue
            # Relative and URL-encoded by the protocol; absolute ones (shallow clones) as URIs.
            file = unquote(urlparse(path).path) if "://" in path else str(folder / unquote(path))
            # Spark's reader takes partition values from column=value folders: a file elsewhere (another writer's
            # random prefixes) would read back nulls, so such a table is read by delta-spark, from the log.
            if values is not None and not _in_partition_folders(file, dict(zip(columns, values[index]))):
                return None
            files.append(file)
        return files

    def partition_row_counts(self, table: str, column: str, values: Sequence[str]) -> dict[str, int]:
        """From the Delta log's per-file ``numRecords``: no data file is opened."""
        if not self.exists(table):
            return {}
        wanted, counts = {str(v) for v in values}, {}
        for value, rows in self._file_stats(table, column):
            if value in wanted:
                counts[value] = counts.get(value, 0) + rows
        return counts

    def partition_values(self, table: str, column: str) -> list[str]:
        """From the Delta log's add actions: no data file is opened."""
        if not self.exists(table):
            return []
        return sorted({value for value, _ in self._file_stats(table, column) if value is not None})

    def partition_files(self, table: str, partitions: PartitionValues) -> list[str] | None:
        """From the Delta log's add actions (delta-rs reads it; no data file is opened). None when the table's
        protocol needs a Delta reader (reader version above 1: deletion vectors, which hide rows a file
        still holds, or column mapping, which renames its columns): then only Delta reads it right."""
        return self._version_files(LogReader(self._require(table)), table, partitions)

    def _file_stats(self, table: str, column: str) -> list[tuple[str | None, int]]:
        import pyarrow as pa

        actions = pa.table(LogReader(str(self.table_path(table))).get_add_actions(flatten=True))
        rows = [int(n or 0) for n in actions["num_records"].to_pylist()]
        return list(zip(_partition_values(actions, table, column), rows))

    def prepare_partitions(
        self, table: str, df: DataFrame, partition_by: Sequence[str], replace: Replacement
    ) -> PreparedWrite:
        parts = replacement_parts(replace) if replace else []
        if not parts or not all(parts):
            raise LakeError("overwrite_partitions needs at least one partition to replace")
        unknown = {column for part in parts for column in part} - set(partition_by)
        if unknown:
            raise LakeError(f"cannot replace by {sorted(unknown)}: table {table!r} is partitioned by {list(partition_by)}")
        in_place = self._prepare_in_place(table, df, partition_by, replace)
        if in_place is not None:
            return in_place
        staging = self._staging_folder(table)
        try:
            writer = df.write.mode("overwrite")
            if partition_by:
                writer = writer.partitionBy(*partition_by)
            writer.parquet(str(staging))
            # Read back in the producer's column order (Spark puts partition folders' columns last).
            frame = (self.spark.read.schema(df.schema).option("basePath", str(staging)).parquet(str(staging))
                     .select(*df.columns))
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return self._prepared(table, frame, partition_by, replace, staging)

    def _prepare_in_place(self, table: str, df: DataFrame, partition_by: Sequence[str],
                          replace: Replacement) -> PreparedWrite | None:
        """The rows written once, straight into the table's folder by a Delta transaction (delta_transaction),
        unreferenced until the commit adds them to the log; ``frame`` reads those files. None when this write
        cannot go that way (a new table, a new column, a Spark Connect client, a replacement that leaves a
        partition column open, a partition column neither string nor date): it is then staged.

        Why: staging wrote every row twice, once into the staging folder and once more by the commit's
        ``df.write``; for the data stages that second write was about a fifth of their time
        (bench/bench_ingest_pipeline.py). Readers see nothing until the commit, as with staging, and Delta's
        conflict detection covers the transaction from before the files were written.
        """
        replaced = _partition_maps(replace, partition_by, df.schema)
        if replaced is None:
            return None
        path = self.table_path(table)
        written = write_files(self.spark, path, df, partition_by)
        if written is None:
            return None
        try:
            wanted = {tuple(sorted(part.items())) for part in replaced}
            outside = sorted({tuple(sorted(part.items())) for part in written.partitions()} - wanted)
            if outside:
                shown = ", ".join("/".join(f"{k}={v}" for k, v in part) for part in outside[:3])
                raise LakeError(f"the rows for {table!r} fall outside the partitions this write replaces ({shown}"
                                f"{'...' if len(outside) > 3 else ''}); nothing was published")
            files = written.paths()
            frame = (self.spark.read.schema(df.schema).option("basePath", str(path)).parquet(*files)
                     .select(*df.columns) if files else self.spark.createDataFrame([], df.schema))
        except BaseException:
            written.abandon()
            raise

        def commit() -> int:
            return self._commit_written(table, written, replaced, replace)

        return PreparedWrite(frame, commit, written.abandon)

    def prepare_files(self, table: str, folder: Path, schema: StructType, partition: Mapping[str, str]) -> PreparedWrite:
        """The files are already immutable Parquet: they are the prepared rows as they are (no staging copy; the
        commit reads them and Delta writes the table's files)."""
        columns = data_columns(folder, schema, partition)
        frame = self.spark.read.schema(columns).parquet(str(folder)).select(*[
            F.lit(partition[f.name]).cast(f.dataType).alias(f.name) if f.name in partition else F.col(f.name)
            for f in schema])
        replace = {column: [str(value)] for column, value in partition.items()}
        return self._prepared(table, frame, list(partition), replace, Path(folder), ahead=partition)

    def _staging_folder(self, table: str) -> Path:
        folder = self.root / STAGING_DIR / f"{table}-{uuid.uuid4().hex}"
        folder.parent.mkdir(parents=True, exist_ok=True)
        return folder

    def _prepared(self, table: str, frame: DataFrame, partition_by: Sequence[str], replace: Replacement,
                folder: Path, ahead: Mapping[str, str] | None = None) -> PreparedWrite:
        """``ahead``: the one partition the frame fills, when its files may be written ahead of the commit
        (delta_transaction: a replacement of exactly that partition)."""
        written: list[WrittenFiles] = []

        def write_ahead() -> bool:
            files = write_files(self.spark, self.table_path(table), frame, list(ahead)) if ahead else None
            if files is not None:
                written.append(files)
            return files is not None

        def commit() -> int:
            try:
                if written:
                    return self._commit_written(table, written[0], [dict(ahead)], replace)
                return self._write(table, frame, partition_by, mode="overwrite", replace=replace)
            finally:
                shutil.rmtree(folder, ignore_errors=True)

        def discard() -> None:
            for files in written:
                files.abandon()
            shutil.rmtree(folder, ignore_errors=True)

        return PreparedWrite(frame, commit, discard, write_ahead)

    def _commit_written(self, table: str, written: WrittenFiles, partitions: list[dict[str, str]],
                        replace: Replacement) -> int:
        """The files written ahead, committed as ``_write``'s ``replaceWhere`` would (same history entry).

        A failed commit leaves them unreferenced in the table folder, for ``VACUUM``: whether a commit that
        raised was recorded cannot be known here for certain, and deleting a recorded file breaks the table."""
        try:
            return written.commit(partitions, replace_where(replace), f"interest-migration:{uuid.uuid4().hex}")
        except Exception as error:
            conflict = _conflict_error(table, error)
            if conflict:
                raise conflict from None
            raise

    def overwrite_partitions(self, table: str, df: DataFrame, partition_by: Sequence[str],
                             replace: Replacement) -> int:
        """Straight into Delta: with nothing to validate in between, staging would only copy the rows once more."""
        if not replace:
            raise LakeError("overwrite_partitions needs at least one partition to replace")
        return self._write(table, df, partition_by, mode="overwrite", replace=replace)

    def delete_partitions(self, table: str, partitions: PartitionValues) -> int:
        """A Delta ``DELETE`` of whole partitions (a metadata-only commit); returns the version it made.

        In SQL rather than delta-spark's Python ``DeltaTable``, which over Spark Connect needs a Delta plugin on
        the server; the statement is the same either way."""
        tag = f"interest-migration:{uuid.uuid4().hex}"
        key = "spark.databricks.delta.commitInfo.userMetadata"
        path = self._require(table).replace("`", "``")
        self.spark.conf.set(key, tag)
        try:
            self.spark.sql(f"DELETE FROM delta.`{path}` WHERE {replace_where(partitions)}")
        finally:
            self.spark.conf.unset(key)
        return self._version_tagged(table, tag)

    def append(self, table: str, df: DataFrame, partition_by: Sequence[str] = ()) -> int:
        """Appends may add columns (the audit tables grow over releases; old rows read them as null)."""
        return self._write(table, df, partition_by, mode="append", replace=None)

    def append_rows(self, table: str, rows: list[tuple], schema, partition_by: Sequence[str] = ()) -> int:
        """Audit rows (``pipeline_runs``) through delta-rs' own writer, straight from Arrow: the record of a
        failed run must be written even when the failure was Spark's. Appends only, so no conflict with Spark's
        commits to other tables; ``schema_mode="merge"`` lets the audit table gain columns over releases."""
        import pyarrow as pa
        from deltalake import write_deltalake
        from pyspark.sql.pandas.types import to_arrow_schema

        arrow_schema = to_arrow_schema(schema)
        columns = list(zip(*rows)) if rows else [[] for _ in arrow_schema]
        data = pa.Table.from_arrays([pa.array(list(c), type=f.type) for c, f in zip(columns, arrow_schema)],
                                    schema=arrow_schema)
        write_deltalake(str(self.table_path(table)), data, mode="append", partition_by=list(partition_by) or None,
                        schema_mode="merge")
        return self.version(table)

    def _write(self, table: str, df: DataFrame, partition_by: Sequence[str], mode: str,
               replace: Replacement | None) -> int:
        """One Delta commit, tagged so that its version can be found whatever other writers do."""
        tag = f"interest-migration:{uuid.uuid4().hex}"
        writer = df.write.format("delta").mode(mode).option("userMetadata", tag)
        if replace:
            writer = writer.option("replaceWhere", replace_where(replace))
        # Tables gain columns over releases (a contract's "add columns freely"): a new column is added to the
        # table's schema by the write that first has it, whether it appends or replaces partitions.
        writer = writer.option("mergeSchema", "true")
        if partition_by:
            writer = writer.partitionBy(*partition_by)
        try:
            writer.save(str(self.table_path(table)))
        except Exception as error:
            conflict = _conflict_error(table, error)
            if conflict:
                raise conflict from None
            raise
        return self._version_tagged(table, tag)

    def _version_tagged(self, table: str, tag: str) -> int:
        for entry in LogReader(str(self.table_path(table))).history(limit=50):
            if entry.get("userMetadata") == tag:
                return int(entry["version"])
        raise LakeError(f"the commit tagged {tag} is not in the last 50 versions of {table!r}")


def _conflict_error(table: str, error: Exception) -> ConcurrentWriteError | None:
    """The one-line error for a commit Delta refused because another writer committed first, else None."""
    conflict = next((name for name in _CONFLICTS if name in str(error)), None)
    if conflict is None:
        return None
    return ConcurrentWriteError(f"another writer changed table {table!r} while this write ran ({conflict}); "
                                f"nothing of this write was published: run the stage again")


def _in_partition_folders(file: str, values: dict[str, str | None]) -> bool:
    """Whether ``file`` lies in the Hive-style folders (``column=value``, escaped) of its partition ``values``."""
    from urllib.parse import unquote

    found = {}
    for part in Path(file).parent.parts[-len(values):]:
        name, equals, value = part.partition("=")
        if not equals:
            return False
        found[name] = None if value == "__HIVE_DEFAULT_PARTITION__" else unquote(value)
    return found == values


def _partition_values(actions, table: str, column: str) -> list[str | None]:
    """Each add action's value of partition ``column``, as text (delta-rs' flattened add actions)."""
    key = f"partition.{column}"
    if key not in actions.column_names:
        raise LakeError(f"table {table!r} is not partitioned by {column!r}")
    return [None if v is None else str(v) for v in actions[key].to_pylist()]


def _partition_maps(replace: Replacement, partition_by: Sequence[str], schema: StructType) -> list[dict[str, str]] | None:
    """Every partition ``replace`` names, as Delta records a file's partition values ({column: string}), or None
    when the replacement leaves a partition column open or a column is neither a string nor a date (whose
    recorded string is what ``replace_where`` compares: ``CAST(column AS STRING)``)."""
    types = {field.name: field.dataType for field in schema.fields}
    if not partition_by or not all(isinstance(types.get(column), (DateType, StringType)) for column in partition_by):
        return None
    maps = []
    for part in replacement_parts(replace):
        if set(part) != set(partition_by):
            return None
        values = [[str(value) for value in part[column]] for column in partition_by]
        maps += [dict(zip(partition_by, combination)) for combination in itertools.product(*values)]
    return maps
