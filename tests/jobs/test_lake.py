"""The lake contract, run against every Delta implementation available here."""
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

from jobs.lake import IMPLEMENTATIONS, LakeError, open_lake
from jobs.lake.delta_spark import delta_spark_available

SCHEMA = "id long, label string, event_date date"
D1, D2, D3 = dt.date(2024, 11, 1), dt.date(2024, 11, 2), dt.date(2024, 11, 3)
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(params=IMPLEMENTATIONS)
def lake(request, spark, lake_root):
    if request.param == "delta-spark" and not delta_spark_available(spark):
        pytest.skip("delta-spark: the Delta Spark connector jars are not on Spark's classpath "
                    "(they come from Maven, which this machine cannot reach)")
    return open_lake(spark, lake_root, request.param)


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


def test_staged_rows_are_readable_but_unpublished_until_commit(spark, lake):
    lake.overwrite_partitions("t", _frame(spark, [(1, "a", D1)]), ["event_date"], {"event_date": [D1]})
    staged = lake.stage_partitions("t", _frame(spark, [(2, "b", D1)]), ["event_date"], {"event_date": [D1]})
    assert _rows(staged.frame) == [(2, "b", D1)]
    assert _rows(lake.read("t")) == [(1, "a", D1)]
    staged.commit()
    assert _rows(lake.read("t")) == [(2, "b", D1)]


def test_discarded_stage_leaves_the_table_as_it_was(spark, lake):
    version = lake.overwrite_partitions("t", _frame(spark, [(1, "a", D1)]), ["event_date"], {"event_date": [D1]})
    staged = lake.stage_partitions("t", _frame(spark, [(2, "b", D1)]), ["event_date"], {"event_date": [D1]})
    staged.discard()
    assert lake.version("t") == version
    assert _rows(lake.read("t")) == [(1, "a", D1)]


def _parquet_folder(folder: Path, *files: list[tuple]) -> Path:
    """Parquet files of (id, label) rows, written by pyarrow as score's workers write theirs."""
    folder.mkdir(parents=True)
    for i, rows in enumerate(files):
        ids, labels = zip(*rows)
        pq.write_table(pa.table({"id": pa.array(ids, pa.int64()), "label": pa.array(labels, pa.string())}),
                       folder / f"part-{i}.parquet")
    return folder


def test_staged_files_replace_their_partition_on_commit_and_time_travel_keeps_the_old_one(spark, lake, tmp_path):
    first = lake.overwrite_partitions("t", _frame(spark, [(1, "a", D1), (2, "b", D2)]), ["event_date"],
                                      {"event_date": [D1, D2]})
    folder = _parquet_folder(tmp_path / "files", [(3, "c"), (4, "d")], [(5, "e")])
    staged = lake.stage_files("t", folder, _frame(spark, []).schema, {"event_date": D2.isoformat()})
    assert _rows(staged.frame) == [(3, "c", D2), (4, "d", D2), (5, "e", D2)]
    assert _rows(lake.read("t")) == [(1, "a", D1), (2, "b", D2)]
    staged.commit()
    assert _rows(lake.read("t")) == [(1, "a", D1), (3, "c", D2), (4, "d", D2), (5, "e", D2)]
    assert _rows(lake.read("t", version=first)) == [(1, "a", D1), (2, "b", D2)]
    assert not folder.exists()
    # The same file names again: the earlier version's files are not replaced.
    again = lake.stage_files("t", _parquet_folder(tmp_path / "again", [(6, "f")], [(7, "g")]),
                             _frame(spark, []).schema, {"event_date": D2.isoformat()})
    again.commit()
    assert _rows(lake.read("t", version=first + 1)) == [(1, "a", D1), (3, "c", D2), (4, "d", D2), (5, "e", D2)]
    assert _rows(lake.read("t")) == [(1, "a", D1), (6, "f", D2), (7, "g", D2)]


def test_staged_files_with_other_columns_are_refused_and_discard_leaves_the_table(spark, lake, tmp_path):
    version = lake.overwrite_partitions("t", _frame(spark, [(1, "a", D1)]), ["event_date"], {"event_date": [D1]})
    wrong = tmp_path / "wrong"
    wrong.mkdir()
    pq.write_table(pa.table({"id": pa.array([2], pa.int64()), "label": pa.array([2], pa.int32())}), wrong / "x.parquet")
    with pytest.raises(LakeError, match="x.parquet has columns"):
        lake.stage_files("t", wrong, _frame(spark, []).schema, {"event_date": D1.isoformat()})
    staged = lake.stage_files("t", _parquet_folder(tmp_path / "files", [(3, "c")]), _frame(spark, []).schema,
                              {"event_date": D1.isoformat()})
    staged.discard()
    assert not (tmp_path / "files").exists()
    assert lake.version("t") == version
    assert _rows(lake.read("t")) == [(1, "a", D1)]


def test_partition_row_counts(spark, lake):
    lake.overwrite_partitions("t", _frame(spark, [(1, "a", D1), (2, "b", D1), (3, "c", D2)]), ["event_date"],
                              {"event_date": [D1, D2]})
    assert lake.partition_row_counts("t", "event_date", [D1.isoformat(), D2.isoformat(), D3.isoformat()]) == {
        D1.isoformat(): 2, D2.isoformat(): 1}
    assert lake.partition_row_counts("missing", "event_date", [D1.isoformat()]) == {}


def test_reading_a_missing_table_says_so(lake):
    with pytest.raises(LakeError, match="does not exist"):
        lake.read("nope")


def test_failed_commit_leaves_the_previous_version(spark, lake_root, monkeypatch):
    """Files already moved into the table, then the commit fails: readers see nothing new."""
    lake = open_lake(spark, lake_root, "delta-rs")
    lake.overwrite_partitions("t", _frame(spark, [(1, "a", D1)]), ["event_date"], {"event_date": [D1]})

    def crash(*args, **kwargs):
        raise OSError("disk vanished")

    monkeypatch.setattr(DeltaTable, "create_write_transaction", crash)
    with pytest.raises(OSError):
        lake.overwrite_partitions("t", _frame(spark, [(9, "z", D1)]), ["event_date"], {"event_date": [D1]})
    monkeypatch.undo()
    assert lake.version("t") == 0
    assert _rows(lake.read("t")) == [(1, "a", D1)]


WRITER = textwrap.dedent("""
    import sys
    from jobs.config import PipelineConfig
    from jobs.lake import open_lake
    from jobs.spark import build_spark
    from pyspark.sql import functions as F
    spark = build_spark(PipelineConfig(spark_master="local[2]", spark_driver_memory="1g"), "crash-writer")
    lake = open_lake(spark, sys.argv[1], "delta-rs")
    big = spark.range(0, 40_000_000, numPartitions=8).select(
        "id", F.sha2(F.col("id").cast("string"), 256).alias("label"), F.lit("2024-11-01").cast("date").alias("event_date"))
    print("writing", flush=True)
    lake.overwrite_partitions("t", big, ["event_date"], {"event_date": ["2024-11-01"]})
    print("finished", flush=True)
""")


def test_writer_killed_mid_write_leaves_the_table_readable_at_its_previous_version(spark, lake_root):
    lake = open_lake(spark, lake_root, "delta-rs")
    lake.overwrite_partitions("t", _frame(spark, [(1, "a", D1)]), ["event_date"], {"event_date": [D1]})
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(lake_root)], cwd=ROOT, start_new_session=True,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    staging = lake_root / "t" / "_staging"
    deadline = time.monotonic() + 120
    try:
        while not any(staging.rglob("*.parquet")) if staging.exists() else True:
            assert writer.poll() is None, "the writer finished before it could be killed"
            assert time.monotonic() < deadline, "the writer never started writing"
            time.sleep(0.05)
    finally:
        os.killpg(writer.pid, signal.SIGKILL)  # the JVM too
        writer.wait()
    assert lake.version("t") == 0
    assert _rows(lake.read("t")) == [(1, "a", D1)]
    # and the next write goes through as usual
    lake.overwrite_partitions("t", _frame(spark, [(2, "b", D1)]), ["event_date"], {"event_date": [D1]})
    assert _rows(lake.read("t")) == [(2, "b", D1)]


def test_the_generic_stage_files_reads_the_files_through_spark(spark, lake_root, tmp_path):
    """Lake.stage_files as delta-spark inherits it (its jars are not here), run on the delta-rs lake."""
    from jobs.lake.base import Lake

    lake = open_lake(spark, lake_root, "delta-rs")
    lake.overwrite_partitions("t", _frame(spark, [(1, "a", D1), (2, "b", D2)]), ["event_date"], {"event_date": [D1, D2]})
    folder = _parquet_folder(tmp_path / "files", [(3, "c")], [(4, "d")])
    staged = Lake.stage_files(lake, "t", folder, _frame(spark, []).schema, {"event_date": D2.isoformat()})
    assert _rows(staged.frame) == [(3, "c", D2), (4, "d", D2)]
    staged.commit()
    assert _rows(lake.read("t")) == [(1, "a", D1), (3, "c", D2), (4, "d", D2)]
    assert not folder.exists()
