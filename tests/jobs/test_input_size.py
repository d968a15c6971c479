"""What a stage will read, sized before its JVM starts, and the JIT that size chooses for a driver of its own."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from jobs.core.config import PipelineConfig
from jobs.core.input_size import files_bytes, table_bytes, tables_bytes
from jobs.core.lake import open_lake
from jobs.core.spark import QUICK_START_JIT, driver_jit_options

D1, D2 = dt.date(2024, 11, 1), dt.date(2024, 11, 2)


def _on_disk(folder: Path) -> int:
    """The Parquet files under ``folder``, measured by the file system, not by any log."""
    return sum(path.stat().st_size for path in folder.rglob("*.parquet"))


def test_a_tables_size_is_its_live_files_in_the_partitions_read(spark, lake_root):
    lake = open_lake(spark, lake_root)
    rows = [(i, f"label-{i}", D1 if i % 3 else D2) for i in range(300)]
    lake.overwrite_partitions("t", spark.createDataFrame(rows, "id long, label string, event_date date"),
                              ["event_date"], {"event_date": [D1, D2]})
    table = lake_root / "t"
    first = {day: _on_disk(table / f"event_date={day}") for day in (D1, D2)}
    assert all(first.values())
    assert table_bytes(table, {"event_date": [D1.isoformat()]}) == first[D1]
    assert table_bytes(table, {"event_date": [D1.isoformat(), D2.isoformat()]}) == table_bytes(table) == sum(first.values())
    assert table_bytes(table, {"event_date": ["2030-01-01"]}) == 0
    # A replaced partition's old file stays on disk until VACUUM; the stage reads only the log's live files.
    lake.overwrite_partitions("t", spark.createDataFrame([(1, "x", D2)], "id long, label string, event_date date"),
                              ["event_date"], {"event_date": [D2]})
    assert _on_disk(table / f"event_date={D2}") > table_bytes(table, {"event_date": [D2.isoformat()]}) > 0
    assert tables_bytes(lake_root, {"t": {"event_date": [D1.isoformat()]}, "missing": None}) == first[D1]
    # Unknown, never a failure: a partition column the table lacks, a log delta-rs cannot read.
    assert table_bytes(table, {"ingest_date": [D1.isoformat()]}) is None
    assert tables_bytes(lake_root, {"t": {"ingest_date": [D1.isoformat()]}}) is None
    broken = lake_root / "broken" / "_delta_log"
    broken.mkdir(parents=True)
    (broken / "00000000000000000000.json").write_text("not a delta log\n")
    assert table_bytes(broken.parent) is None


def test_landing_files_count_their_size_on_disk(tmp_path):
    a, b = tmp_path / "a.jsonl.gz", tmp_path / "b.jsonl"
    a.write_bytes(b"x" * 1000)
    b.write_bytes(b"y" * 24)
    assert files_bytes([a, str(b), tmp_path / "gone.jsonl"]) == 1024


@pytest.mark.parametrize("options, size, small, expected", [
    ("-XX:+UseParallelGC", 1_000, 4 << 20, f"-XX:+UseParallelGC {QUICK_START_JIT}"),
    ("-XX:+UseParallelGC", 4 << 20, 4 << 20, f"-XX:+UseParallelGC {QUICK_START_JIT}"),
    ("-XX:+UseParallelGC", (4 << 20) + 1, 4 << 20, "-XX:+UseParallelGC"),
    ("-XX:+UseParallelGC", None, 4 << 20, "-XX:+UseParallelGC"),  # unknown: the full JIT
    ("-XX:+UseParallelGC", 0, 0, "-XX:+UseParallelGC"),  # 0 turns it off
    ("", 10, 4 << 20, QUICK_START_JIT),
])
def test_a_small_input_starts_its_driver_with_c1_only(options, size, small, expected):
    config = PipelineConfig(spark_driver_java_options=options, small_input_bytes=small)
    assert driver_jit_options(config, lambda: size) == expected
    assert driver_jit_options(config, None) == options  # a stage that does not say what it reads


@pytest.mark.parametrize("options", ["-XX:TieredStopAtLevel=4", "-XX:-TieredCompilation -XX:+UseSerialGC"])
def test_options_that_choose_a_jit_are_kept_without_sizing_the_input(options):
    def never():
        raise AssertionError("the input was sized although the options already choose a JIT")

    assert driver_jit_options(PipelineConfig(spark_driver_java_options=options), never) == options
