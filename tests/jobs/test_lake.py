"""The lake contract (delta-spark): overwrites, staging, time travel, faults and concurrent writers."""
from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable

from jobs.core.lake import LakeError, open_lake

SCHEMA = "id long, label string, event_date date"
D1, D2, D3 = dt.date(2024, 11, 1), dt.date(2024, 11, 2), dt.date(2024, 11, 3)
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def lake(spark, lake_root):
    return open_lake(spark, lake_root)


def _frame(spark, rows):
    return spark.createDataFrame(rows, SCHEMA)


def _rows(df):
    return sorted(tuple(r) for r in df.select("id", "label", "event_date").collect())


def test_overwrite_replaces_only_the_named_partition(spark, lake):
    lake.overwrite_partitions("t", _frame(spark, [(1, "a", D1), (2, "b", D2)]), ["event_date"], {"event_date": [D1, D2]})
    lake.overwrite_partitions("t", _frame(spark, [(3, "c", D2)]), ["event_date"], {"event_date": [D2]})
    assert _rows(lake.read("t")) == [(1, "a", D1), (3, "c", D2)]
    assert _rows(lake.read("t", partitions={"event_date": [D2.isoformat()]})) == [(3, "c", D2)]


def test_rerunning_an_overwrite_leaves_identical_contents(spark, lake):
    frame = _frame(spark, [(1, "a", D1), (2, "b", D1)])
    lake.overwrite_partitions("t", frame, ["event_date"], {"event_date": [D1]})
    lake.overwrite_partitions("t", frame, ["event_date"], {"event_date": [D1]})
    assert _rows(lake.read("t")) == [(1, "a", D1), (2, "b", D1)]


def test_replacing_an_empty_partition_with_no_rows_still_commits_a_version(spark, lake):
    """Delta would skip recording such a commit; the lake needs a version for every write it reports."""
    lake.overwrite_partitions("t", _frame(spark, [(1, "a", D1)]), ["event_date"], {"event_date": [D1]})
    before = lake.version("t")
    prepared = lake.prepare_partitions("t", _frame(spark, []), ["event_date"], {"event_date": [D2]})
    assert prepared.commit() == before + 1 == lake.version("t")
    assert lake.overwrite_partitions("t", _frame(spark, []), ["event_date"], {"event_date": [D2]}) == before + 2
    assert _rows(lake.read("t")) == [(1, "a", D1)]


def test_a_partition_replaced_with_a_new_column_adds_it_to_the_table(spark, lake):
    """A release that adds a column (the contracts allow it) writes into a table its predecessor made."""
    lake.overwrite_partitions("t", _frame(spark, [(1, "a", D1)]), ["event_date"], {"event_date": [D1]})
    wider = spark.createDataFrame([(2, "b", D2, "why")], SCHEMA + ", explanation string")
    lake.overwrite_partitions("t", wider, ["event_date"], {"event_date": [D2]})
    rows = sorted(tuple(r) for r in lake.read("t").select("id", "explanation").collect())
    assert rows == [(1, None), (2, "why")]


def test_append_and_time_travel(spark, lake):
    v0 = lake.append("t", _frame(spark, [(1, "a", D1)]), ["event_date"])
    v1 = lake.append("t", _frame(spark, [(2, "b", D3)]), ["event_date"])
    assert v1 == v0 + 1 == lake.version("t")
    assert _rows(lake.read("t", version=v0)) == [(1, "a", D1)]
    assert _rows(lake.read("t")) == [(1, "a", D1), (2, "b", D3)]
    assert [h["version"] for h in lake.history("t")][:2] == [v1, v0]


def test_overwrite_refuses_rows_outside_the_replaced_partitions(spark, lake):
    lake.overwrite_partitions("t", _frame(spark, [(1, "a", D1)]), ["event_date"], {"event_date": [D1]})
    with pytest.raises(Exception):
        lake.overwrite_partitions("t", _frame(spark, [(2, "b", D2)]), ["event_date"], {"event_date": [D1]})
    assert _rows(lake.read("t")) == [(1, "a", D1)]


def test_prepared_rows_are_readable_but_unpublished_until_commit(spark, lake):
    lake.overwrite_partitions("t", _frame(spark, [(1, "a", D1)]), ["event_date"], {"event_date": [D1]})
    prepared = lake.prepare_partitions("t", _frame(spark, [(2, "b", D1)]), ["event_date"], {"event_date": [D1]})
    assert _rows(prepared.frame) == [(2, "b", D1)]
    assert _rows(lake.read("t")) == [(1, "a", D1)]
    prepared.commit()
    assert _rows(lake.read("t")) == [(2, "b", D1)]


def test_a_discarded_write_leaves_the_table_as_it_was(spark, lake):
    version = lake.overwrite_partitions("t", _frame(spark, [(1, "a", D1)]), ["event_date"], {"event_date": [D1]})
    before = _data_files(lake, "t")
    prepared = lake.prepare_partitions("t", _frame(spark, [(2, "b", D1)]), ["event_date"], {"event_date": [D1]})
    prepared.discard()
    assert lake.version("t") == version
    assert _rows(lake.read("t")) == [(1, "a", D1)]
    assert _data_files(lake, "t") == before


def test_a_prepared_range_is_written_once_into_the_table_folder_and_commits_as_a_replace_where(spark, lake):
    """An existing table's prepared rows go straight into its folder, unreferenced (no staging copy): readers
    see nothing until the commit, which replaces every partition of the range, one left without rows too,
    and reads in the history as the replaceWhere write it stands for."""
    first = lake.overwrite_partitions("t", _frame(spark, [(1, "a", D1), (2, "b", D2), (3, "c", D3)]),
                                      ["event_date"], {"event_date": [D1, D2, D3]})
    before = _data_files(lake, "t")
    prepared = lake.prepare_partitions("t", _frame(spark, [(4, "d", D1), (5, "e", D1)]), ["event_date"],
                                       {"event_date": [D1.isoformat(), D2.isoformat()]})
    written = _data_files(lake, "t") - before
    assert written and all(name.startswith("event_date=2024-11-01/") for name in written)
    assert not any((lake.root / "_staging").rglob("*.parquet"))
    assert _rows(prepared.frame) == [(4, "d", D1), (5, "e", D1)]
    assert lake.version("t") == first and _rows(lake.read("t")) == [(1, "a", D1), (2, "b", D2), (3, "c", D3)]
    assert prepared.commit() == first + 1
    assert _rows(lake.read("t")) == [(3, "c", D3), (4, "d", D1), (5, "e", D1)]
    entry = DeltaTable(str(lake.table_path("t"))).history(1)[0]
    assert entry["operation"] == "WRITE" and entry["operationParameters"]["mode"] == "Overwrite"
    assert entry["operationParameters"]["predicate"] == "CAST(`event_date` AS STRING) IN ('2024-11-01', '2024-11-02')"
    assert entry["operationMetrics"]["numOutputRows"] == "2"


def test_prepared_rows_outside_the_replaced_partitions_are_refused_and_leave_no_files(spark, lake):
    version = lake.overwrite_partitions("t", _frame(spark, [(1, "a", D1)]), ["event_date"], {"event_date": [D1]})
    before = _data_files(lake, "t")
    with pytest.raises(LakeError, match=r"outside the partitions this write replaces \(event_date=2024-11-02\)"):
        lake.prepare_partitions("t", _frame(spark, [(2, "b", D1), (3, "c", D2)]), ["event_date"], {"event_date": [D1]})
    assert lake.version("t") == version and _data_files(lake, "t") == before


def _parquet_folder(folder: Path, *files: list[tuple]) -> Path:
    """Parquet files of (id, label) rows, written by pyarrow as score's workers write theirs."""
    folder.mkdir(parents=True)
    for i, rows in enumerate(files):
        ids, labels = zip(*rows)
        pq.write_table(pa.table({"id": pa.array(ids, pa.int64()), "label": pa.array(labels, pa.string())}),
                       folder / f"part-{i}.parquet")
    return folder


def test_prepared_files_replace_their_partition_on_commit_and_time_travel_keeps_the_old_one(spark, lake, tmp_path):
    first = lake.overwrite_partitions("t", _frame(spark, [(1, "a", D1), (2, "b", D2)]), ["event_date"],
                                      {"event_date": [D1, D2]})
    folder = _parquet_folder(tmp_path / "files", [(3, "c"), (4, "d")], [(5, "e")])
    prepared = lake.prepare_files("t", folder, _frame(spark, []).schema, {"event_date": D2.isoformat()})
    assert _rows(prepared.frame) == [(3, "c", D2), (4, "d", D2), (5, "e", D2)]
    assert _rows(lake.read("t")) == [(1, "a", D1), (2, "b", D2)]
    prepared.commit()
    assert _rows(lake.read("t")) == [(1, "a", D1), (3, "c", D2), (4, "d", D2), (5, "e", D2)]
    assert _rows(lake.read("t", version=first)) == [(1, "a", D1), (2, "b", D2)]
    assert not folder.exists()
    # The same file names again: the earlier version's files are not replaced.
    again = lake.prepare_files("t", _parquet_folder(tmp_path / "again", [(6, "f")], [(7, "g")]),
                             _frame(spark, []).schema, {"event_date": D2.isoformat()})
    again.commit()
    assert _rows(lake.read("t", version=first + 1)) == [(1, "a", D1), (3, "c", D2), (4, "d", D2), (5, "e", D2)]
    assert _rows(lake.read("t")) == [(1, "a", D1), (6, "f", D2), (7, "g", D2)]


def test_prepared_files_with_other_columns_are_refused_and_discard_leaves_the_table(spark, lake, tmp_path):
    version = lake.overwrite_partitions("t", _frame(spark, [(1, "a", D1)]), ["event_date"], {"event_date": [D1]})
    wrong = tmp_path / "wrong"
    wrong.mkdir()
    pq.write_table(pa.table({"id": pa.array([2], pa.int64()), "label": pa.array([2], pa.int32())}), wrong / "x.parquet")
    with pytest.raises(LakeError, match="x.parquet has columns"):
        lake.prepare_files("t", wrong, _frame(spark, []).schema, {"event_date": D1.isoformat()})
    prepared = lake.prepare_files("t", _parquet_folder(tmp_path / "files", [(3, "c")]), _frame(spark, []).schema,
                              {"event_date": D1.isoformat()})
    prepared.discard()
    assert not (tmp_path / "files").exists()
    assert lake.version("t") == version
    assert _rows(lake.read("t")) == [(1, "a", D1)]


def _data_files(lake, table: str) -> set[str]:
    return {str(p.relative_to(lake.table_path(table))) for p in lake.table_path(table).rglob("*.parquet")}


def test_files_written_ahead_are_invisible_until_the_commit_which_replaces_only_their_partition(spark, lake, tmp_path):
    """score writes the predictions' table files while their suite runs (delta_transaction): readers must see
    nothing of them before the commit, and the commit must read in the history as the replaceWhere write."""
    first = lake.overwrite_partitions("t", _frame(spark, [(1, "a", D1), (2, "b", D2)]), ["event_date"],
                                      {"event_date": [D1, D2]})
    before = _data_files(lake, "t")
    prepared = lake.prepare_files("t", _parquet_folder(tmp_path / "files", [(3, "c")], [(4, "d")]),
                              _frame(spark, []).schema, {"event_date": D2.isoformat()})
    assert prepared.write_ahead() is True
    written = _data_files(lake, "t") - before
    assert written and all(name.startswith("event_date=2024-11-02/") for name in written)
    assert lake.version("t") == first and _rows(lake.read("t")) == [(1, "a", D1), (2, "b", D2)]
    version = prepared.commit()
    assert version == first + 1 == lake.version("t")
    assert _rows(lake.read("t")) == [(1, "a", D1), (3, "c", D2), (4, "d", D2)]
    assert _rows(lake.read("t", version=first)) == [(1, "a", D1), (2, "b", D2)]
    entry = DeltaTable(str(lake.table_path("t"))).history(1)[0]
    assert entry["operation"] == "WRITE" and entry["operationParameters"]["mode"] == "Overwrite"
    assert entry["operationParameters"]["predicate"] == "CAST(`event_date` AS STRING) IN ('2024-11-02')"
    assert entry["userMetadata"].startswith("interest-migration:")
    assert entry["operationMetrics"]["numOutputRows"] == "2"
    assert not (tmp_path / "files").exists()


def test_files_written_ahead_are_deleted_when_the_write_is_discarded(spark, lake, tmp_path):
    version = lake.overwrite_partitions("t", _frame(spark, [(1, "a", D1)]), ["event_date"], {"event_date": [D1]})
    before = _data_files(lake, "t")
    prepared = lake.prepare_files("t", _parquet_folder(tmp_path / "files", [(3, "c")]), _frame(spark, []).schema,
                              {"event_date": D1.isoformat()})
    assert prepared.write_ahead() is True and _data_files(lake, "t") != before
    prepared.discard()
    assert _data_files(lake, "t") == before
    assert lake.version("t") == version and _rows(lake.read("t")) == [(1, "a", D1)]


def test_write_ahead_declines_a_new_table_or_a_new_column_and_the_commit_writes_them_as_before(spark, lake, tmp_path):
    """Creating the table or merging a column is df.write's business: write_ahead says no and commit does it."""
    prepared = lake.prepare_files("t", _parquet_folder(tmp_path / "first", [(1, "a")]), _frame(spark, []).schema,
                              {"event_date": D1.isoformat()})
    assert prepared.write_ahead() is False
    prepared.commit()
    wider = tmp_path / "wider"
    wider.mkdir()
    pq.write_table(pa.table({"id": pa.array([2], pa.int64()), "label": ["b"], "explanation": ["why"]}),
                   wider / "part-0.parquet")
    prepared = lake.prepare_files("t", wider, spark.createDataFrame([], SCHEMA + ", explanation string").schema,
                              {"event_date": D2.isoformat()})
    assert prepared.write_ahead() is False
    prepared.commit()
    assert sorted(tuple(r) for r in lake.read("t").select("id", "explanation").collect()) == [(1, None), (2, "why")]


def test_a_partition_another_writer_replaced_after_the_write_ahead_fails_the_commit(spark, lake, tmp_path):
    from jobs.core.lake import ConcurrentWriteError

    lake.overwrite_partitions("t", _frame(spark, [(1, "a", D1)]), ["event_date"], {"event_date": [D1]})
    prepared = lake.prepare_files("t", _parquet_folder(tmp_path / "files", [(3, "c")]), _frame(spark, []).schema,
                              {"event_date": D1.isoformat()})
    assert prepared.write_ahead() is True
    other = lake.overwrite_partitions("t", _frame(spark, [(9, "z", D1)]), ["event_date"], {"event_date": [D1]})
    with pytest.raises(ConcurrentWriteError, match="another writer changed table 't'"):
        prepared.commit()
    assert lake.version("t") == other and _rows(lake.read("t")) == [(9, "z", D1)]


def test_partition_row_counts(spark, lake):
    lake.overwrite_partitions("t", _frame(spark, [(1, "a", D1), (2, "b", D1), (3, "c", D2)]), ["event_date"],
                              {"event_date": [D1, D2]})
    assert lake.partition_row_counts("t", "event_date", [D1.isoformat(), D2.isoformat(), D3.isoformat()]) == {
        D1.isoformat(): 2, D2.isoformat(): 1}
    assert lake.partition_row_counts("missing", "event_date", [D1.isoformat()]) == {}


def test_partition_files_hold_exactly_the_partitions_rows_or_none_when_delta_hides_rows(spark, lake):
    """Score's workers read these files raw: a replaced partition's old file, still on disk, must not be
    listed, and once a deletion vector hides a row that a file still holds, no list is given at all."""
    lake.overwrite_partitions("t", _frame(spark, [(1, "a", D1), (2, "b", D2)]), ["event_date"], {"event_date": [D1, D2]})
    lake.overwrite_partitions("t", _frame(spark, [(3, "c", D2), (4, "d", D2)]), ["event_date"], {"event_date": [D2]})
    files = lake.partition_files("t", {"event_date": [D2.isoformat()]})
    assert sorted(pq.read_table(files, columns=["id"])["id"].to_pylist()) == [3, 4]
    assert lake.partition_files("t", {"event_date": [D3.isoformat()]}) == []
    path = lake.table_path("t")
    spark.sql(f"ALTER TABLE delta.`{path}` SET TBLPROPERTIES ('delta.enableDeletionVectors' = 'true')")
    spark.sql(f"DELETE FROM delta.`{path}` WHERE id = 3")
    assert _rows(lake.read("t", partitions={"event_date": [D2.isoformat()]})) == [(4, "d", D2)]
    assert lake.partition_files("t", {"event_date": [D2.isoformat()]}) is None


def test_reading_a_missing_table_says_so(lake):
    with pytest.raises(LakeError, match="does not exist"):
        lake.read("nope")



def test_delete_partitions_and_time_travel_before_it(spark, lake):
    first = lake.overwrite_partitions("t", _frame(spark, [(1, "a", D1), (2, "b", D2)]), ["event_date"],
                                      {"event_date": [D1, D2]})
    lake.delete_partitions("t", {"event_date": [D1.isoformat()]})
    assert _rows(lake.read("t")) == [(2, "b", D2)]
    assert _rows(lake.read("t", version=first)) == [(1, "a", D1), (2, "b", D2)]


def test_append_adds_new_columns_to_an_audit_table(spark, lake):
    lake.append("audit", spark.createDataFrame([(1, "a")], "id long, label string"))
    lake.append("audit", spark.createDataFrame([(2, "b", 0.5)], "id long, label string, score double"))
    assert sorted(tuple(r) for r in lake.read("audit").collect()) == [(1, "a", None), (2, "b", 0.5)]


@pytest.mark.parametrize("hostile", ["x' OR '1'='1", "x\\' OR true --", "back\\slash"])
def test_a_quote_or_backslash_in_a_partition_value_is_data_not_sql(spark, lake, hostile):
    schema = "id long, label string"
    lake.overwrite_partitions("q", spark.createDataFrame([(1, hostile), (2, "y")], schema), ["label"],
                              {"label": [hostile, "y"]})
    lake.overwrite_partitions("q", spark.createDataFrame([(3, hostile)], schema), ["label"], {"label": [hostile]})
    assert sorted(tuple(r) for r in lake.read("q").select("id", "label").collect()) == [(2, "y"), (3, hostile)]


# A writer in its own process, killed by the test at a chosen point: big enough that the data write spans
# several files and seconds, so that each point is reached well before the commit.
WRITER = textwrap.dedent("""
    import sys
    from jobs.core.config import PipelineConfig
    from jobs.core.lake import open_lake
    from jobs.core.spark import QUICK_START_JIT, build_spark
    from pyspark.sql import functions as F
    # C1 only: the writer is killed at its first file, long before C2 would pay off (about 5 s of the three tests).
    spark = build_spark(PipelineConfig(spark_master="local[2]", spark_driver_memory="1g", shuffle_partitions=2,
                                       spark_driver_java_options=QUICK_START_JIT), "crash-writer")
    lake = open_lake(spark, sys.argv[1])
    big = spark.range(0, 2_000_000, numPartitions=8).select(
        "id", F.sha2(F.col("id").cast("string"), 256).alias("label"), F.lit("2024-11-01").cast("date").alias("event_date"))
    if sys.argv[2] == "staged":  # a new column: staged, then written by the commit (DeltaSparkLake._prepare_in_place)
        big = big.withColumn("note", F.lit("wider"))
    if sys.argv[2] in ("staged", "in-place"):
        lake.prepare_partitions("t", big, ["event_date"], {"event_date": ["2024-11-01"]}).commit()
    else:
        lake.overwrite_partitions("t", big, ["event_date"], {"event_date": ["2024-11-01"]})
    print("finished", flush=True)
""")


def _new_parquet(folder: Path, known: set) -> bool:
    return folder.exists() and any(p not in known for p in folder.rglob("*.parquet"))


@pytest.mark.parametrize("point", ["staging", "in-place", "commit"])
def test_writer_killed_mid_write_leaves_the_previous_version_and_maintain_removes_its_files(spark, lake_root, point):
    """Killed while writing its staging files, or its prepared files in the table's folder, or while the commit
    writes the table's new files (between files, before the log entry): the table stays at its previous
    version, and ``maintain`` removes the leftovers."""
    from jobs.maintain import remove_abandoned

    lake = open_lake(spark, lake_root)
    lake.overwrite_partitions("t", _frame(spark, [(1, "a", D1)]), ["event_date"], {"event_date": [D1]})
    table_files = set((lake_root / "t").rglob("*.parquet"))
    watched = lake_root / "_staging" if point == "staging" else lake_root / "t"
    mode = {"staging": "staged", "in-place": "in-place", "commit": "direct"}[point]
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(lake_root), mode],
                              cwd=ROOT, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              text=True)
    deadline = time.monotonic() + 180
    try:
        while not _new_parquet(watched, table_files):
            assert writer.poll() is None, "the writer finished before it could be killed"
            assert time.monotonic() < deadline, "the writer never started writing"
            time.sleep(0.02)
    finally:
        os.killpg(writer.pid, signal.SIGKILL)  # the JVM too
        writer.wait()
    assert lake.version("t") == 0
    assert _rows(lake.read("t")) == [(1, "a", D1)]
    assert _new_parquet(watched, table_files), "the killed writer left no files: the test killed nothing"
    # maintain: the staging sweep and VACUUM remove every file no version references
    remove_abandoned(lake_root, 0, time.time() + 1)
    from delta.tables import DeltaTable

    spark.conf.set("spark.databricks.delta.retentionDurationCheck.enabled", "false")
    DeltaTable.forPath(spark, str(lake_root / "t")).vacuum(0)
    assert set((lake_root / "t").rglob("*.parquet")) == table_files
    assert not any((lake_root / "_staging").rglob("*.parquet"))
    # and the next write goes through as usual
    lake.overwrite_partitions("t", _frame(spark, [(2, "b", D1)]), ["event_date"], {"event_date": [D1]})
    assert _rows(lake.read("t")) == [(2, "b", D1)]


def test_two_writers_on_one_partition_end_as_one_serial_order(spark, lake):
    """A long write starts; a short one to the same partition starts while it runs. Both transactions read
    version 0, so whichever commits second must be refused by Delta's conflict detection with a clear error, and
    the table must hold exactly the rows of the one that reported success (never both, never a mix)."""
    import threading

    from pyspark.sql import functions as F

    from jobs.core.lake import ConcurrentWriteError

    lake.overwrite_partitions("t", _frame(spark, [(0, "old", D1)]), ["event_date"], {"event_date": [D1]})
    long = spark.range(0, 2_000_000, numPartitions=4).select(
        "id", F.sha2(F.col("id").cast("string"), 256).alias("label"), F.lit(D1).alias("event_date"))
    outcome = {}

    def write(name, frame):
        try:
            outcome[name] = lake.overwrite_partitions("t", frame, ["event_date"], {"event_date": [D1]})
        except ConcurrentWriteError as error:
            outcome[name] = error

    known = set((lake.root / "t").rglob("*.parquet"))
    slow = threading.Thread(target=write, args=("long", long))
    slow.start()
    while not _new_parquet(lake.root / "t", known):
        assert slow.is_alive(), f"the long write ended before the short one could start: {outcome}"
        time.sleep(0.01)  # the long write is under way: its transaction has read version 0
    write("short", _frame(spark, [(1, "short", D1)]))
    slow.join()
    refused = [name for name, result in outcome.items() if isinstance(result, ConcurrentWriteError)]
    assert len(refused) == 1, outcome
    assert "another writer changed table 't'" in str(outcome[refused[0]])
    assert lake.version("t") == 1
    table = lake.read("t")
    if refused == ["short"]:
        assert table.count() == 2_000_000 and table.where("label IN ('short', 'old')").count() == 0
    else:
        assert _rows(table) == [(1, "short", D1)]


def test_a_table_whose_files_are_not_in_partition_folders_reads_its_partition_values_from_the_log(spark, lake):
    """Another Delta writer may put files under random prefixes (``delta.randomizeFilePrefixes``), not
    ``column=value`` folders: the quick read, which takes partition values from the folder names, must not
    be used for them, or the partition column reads back null and a partition filter keeps nothing."""
    path = lake.table_path("t")
    spark.sql(f"CREATE TABLE delta.`{path}` ({SCHEMA}) USING delta PARTITIONED BY (event_date) "
              "TBLPROPERTIES ('delta.randomizeFilePrefixes' = 'true')")
    lake.append("t", _frame(spark, [(1, "a", D1), (2, "b", D2)]), ["event_date"])
    assert not any(p.name.startswith("event_date=") for p in path.iterdir())
    assert _rows(lake.read("t")) == [(1, "a", D1), (2, "b", D2)]
    assert _rows(lake.read("t", partitions={"event_date": [D2.isoformat()]})) == [(2, "b", D2)]
