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
    # A table whose log lists no file (nothing quarantined yet) reads nothing.
    spark.createDataFrame([], "id long, label string, event_date date").write.format("delta") \
        .partitionBy("event_date").save(str(lake_root / "empty"))
    assert table_bytes(lake_root / "empty", {"event_date": [D1.isoformat()]}) == table_bytes(lake_root / "empty") == 0
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


@pytest.mark.parametrize("options, tool_options", [
    ("-XX:TieredStopAtLevel=4", ""), ("-XX:-TieredCompilation -XX:+UseSerialGC", ""), ("-Xint", ""),
    ("-XX:CompilationMode=high-only", ""), ("-XX:+UseParallelGC", "-XX:TieredStopAtLevel=4"),
])
def test_options_that_choose_a_jit_are_kept_without_sizing_the_input(monkeypatch, options, tool_options):
    def never():
        raise AssertionError("the input was sized although the options already choose a JIT")

    monkeypatch.setenv("JAVA_TOOL_OPTIONS", tool_options)
    assert driver_jit_options(PipelineConfig(spark_driver_java_options=options), never) == options


def test_an_input_that_cannot_be_sized_gets_the_full_jit_and_the_stage_goes_on():
    def broken():
        raise RuntimeError("a log nobody can read")

    config = PipelineConfig(spark_driver_java_options="-XX:+UseParallelGC")
    assert driver_jit_options(config, broken) == "-XX:+UseParallelGC"


class _Sized(BaseException):
    """Raised where a stage's JVM would start, with the size the stage gave; a BaseException, so that the command
    line does not turn it into an exit code and nothing after it (no run row, no write) happens."""


def _live_bytes(lake: Path, table: str, column: str | None = None, values: list[str] = ()) -> int:
    """The files the table's current version lists (a rewritten partition's old files stay on disk until
    VACUUM), each measured by the file system."""
    from deltalake import DeltaTable

    listed = DeltaTable(str(lake / table)).file_uris(
        file_pruning_predicate=[(column, "in", list(values))] if column else None)
    return sum(Path(uri).stat().st_size for uri in listed)


def test_each_stage_sizes_the_partitions_it_reads_before_its_driver_starts(model_lake, monkeypatch):
    """The size each data stage hands to the JIT choice, against the files of its inputs measured on disk."""
    import jobs.core.spark
    from tests.conftest import MODEL_AS_OF, run_jobs

    def stop_with_size(config, input_bytes):
        raise _Sized(input_bytes())

    monkeypatch.setattr(jobs.core.spark, "driver_jit_options", stop_with_size)
    day, previous, before_previous = [(MODEL_AS_OF - dt.timedelta(days=d)).isoformat() for d in range(3)]
    landing = model_lake / "raw" / "events" / f"ingest_date={day}"
    expected = {
        ("ingest", "--date", day): sum(path.stat().st_size for path in landing.iterdir()),
        # Its day's clean rows and the ids published on the two lookback dates before it.
        ("dedupe", "--date", day): _live_bytes(model_lake, "events_clean", "event_date", [day])
            + _live_bytes(model_lake, "events", "event_date", [previous, before_previous]),
        ("sessionize", "--date", day): _live_bytes(model_lake, "events", "event_date", [previous, day]),
        ("validate", "--date", day, "--table", "events", "--table", "sessions"):
            _live_bytes(model_lake, "events", "event_date", [day]) + _live_bytes(model_lake, "sessions", "event_date", [day]),
        # Score mode: the 2-day history window before the cutoff (the day after the date, not in the lake yet),
        # from the day before it.
        ("features", "--date", day, "--mode", "score", "--history-days", "2"):
            _live_bytes(model_lake, "events", "event_date", [before_previous, previous, day]),
        ("features", "--date", day, "--mode", "train"): _live_bytes(model_lake, "events"),
    }
    for args, size in expected.items():
        assert size > 0
        with pytest.raises(_Sized) as sized:
            run_jobs(args[0], "--lake", str(model_lake), *args[1:])
        assert sized.value.args == (size,), args


@pytest.mark.parametrize("as_ofs, history_days", [([D2], 28), ([D1, D2], 3), ([D2, D1], 1)])
def test_features_sizes_the_dates_its_score_windows_read(as_ofs, history_days):
    """What features sizes before Spark starts is what it then reads: the score cutoffs' windows."""
    import argparse

    from jobs.features import _date_cutoffs, _read_dates, _window_dates

    args = argparse.Namespace(mode="score")
    windows = sorted({(cutoff, days) for as_of in as_ofs
                      for cutoffs, days in [_date_cutoffs(args, PipelineConfig(), as_of, None, history_days)]
                      for _, cutoff in cutoffs})
    assert _read_dates(as_ofs, history_days) == {"event_date": _window_dates(windows, None)}
    assert _read_dates(as_ofs, None) is None  # train mode: the whole table
