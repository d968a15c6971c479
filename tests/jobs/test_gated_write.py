"""The one gated write every producing stage publishes through: what is validated is what is committed."""
from __future__ import annotations

import datetime as dt

import pytest
from pyspark.sql import functions as F

from jobs.core.lake import gated_write, open_lake
from jobs.core.quality.report import DataQualityError, Failure, ValidationReport
from jobs.core.runs import RunMetrics

D1 = dt.date(2024, 11, 1)
REPLACE = {"event_date": [D1.isoformat()]}


def _frame(spark, rows):
    return spark.createDataFrame(rows, "id long, label string, event_date date")


def _nothing_left_staged(lake_root) -> bool:
    return not (lake_root / "_staging").exists() or not any((lake_root / "_staging").iterdir())


def _rows(df):
    return sorted(tuple(r) for r in df.select("id", "label", "event_date").collect())


def _report(critical: bool) -> ValidationReport:
    failures = [Failure("expect_something", "id", "critical", "bad", "good")] if critical else []
    return ValidationReport("t", D1, evaluated=1, failures=failures)


@pytest.mark.parametrize("table_exists", [False, True], ids=["staged", "in-place"])
def test_the_rows_validated_are_the_rows_committed_even_from_a_nondeterministic_plan(spark, lake_root, table_exists):
    """A plan that gives other rows each time it runs (the query's start time in every row): a gate that
    validated the plan, then wrote it again, would commit rows nobody checked. A new table's rows are
    staged; an existing one's are written into its folder (delta_spark): both commit what was validated."""
    lake = open_lake(spark, lake_root)
    if table_exists:
        lake.overwrite_partitions("t", _frame(spark, [(1, "old", D1)]), ["event_date"], REPLACE)
    plan = spark.range(200).select("id", F.current_timestamp().cast("string").alias("label"),
                                   F.lit(D1).alias("event_date"))
    seen = {}
    with gated_write(lake, RunMetrics()) as gate:
        prepared = gate.prepare("t", plan, REPLACE, ["event_date"])

        def validate():
            seen["rows"] = _rows(prepared)
            return _report(critical=False)

        gate.check(validate)
    assert _rows(lake.read("t")) == seen["rows"]
    assert _rows(plan) != seen["rows"]  # the plan itself does give other rows when run again


def test_a_critical_failure_commits_nothing_and_leaves_no_staging(spark, lake_root):
    lake = open_lake(spark, lake_root)
    lake.overwrite_partitions("t", _frame(spark, [(1, "old", D1)]), ["event_date"], REPLACE)
    files = set((lake_root / "t").rglob("*.parquet"))
    metrics = RunMetrics()
    with pytest.raises(DataQualityError, match="nothing published"):
        with gated_write(lake, metrics) as gate:
            gate.prepare("t", _frame(spark, [(2, "new", D1)]), REPLACE, ["event_date"])
            gate.prepare("u", _frame(spark, [(2, "new", D1)]), REPLACE, ["event_date"])
            gate.check(lambda: _report(critical=True))
    assert _rows(lake.read("t")) == [(1, "old", D1)] and lake.version("t") == 0
    assert set((lake_root / "t").rglob("*.parquet")) == files  # the rows written into its folder are gone
    assert not lake.exists("u")
    assert [r.severity for r in metrics.validations] == ["critical"]
    assert _nothing_left_staged(lake_root)


def test_with_validation_off_the_check_does_not_run_and_the_write_commits(spark, lake_root):
    lake = open_lake(spark, lake_root)
    with gated_write(lake, RunMetrics(), validate=False) as gate:
        gate.prepare("t", _frame(spark, [(1, "a", D1)]), REPLACE, ["event_date"])
        assert gate.check(lambda: pytest.fail("validation ran although it is off")) is None
    assert _rows(lake.read("t")) == [(1, "a", D1)]


def test_tables_commit_in_order_and_a_failure_between_them_is_levelled_by_a_rerun(spark, lake_root, monkeypatch):
    """Delta has no transaction across tables: the documented behaviour is that tables commit one by one in
    the stated order, a failure between two commits leaves the earlier one new and the later one old, and a
    re-run of the stage brings both to the new rows."""
    from jobs.core.lake.delta_spark import DeltaSparkLake

    lake = open_lake(spark, lake_root)
    for table in ("first", "second"):
        lake.overwrite_partitions(table, _frame(spark, [(0, "old", D1)]), ["event_date"], REPLACE)

    def publish(metrics):
        with gated_write(lake, metrics, commit_order=("first",)) as gate:
            gate.prepare("second", _frame(spark, [(2, "new", D1)]), REPLACE, ["event_date"])
            gate.prepare("first", _frame(spark, [(1, "new", D1)]), REPLACE, ["event_date"])

    real_write, commits = DeltaSparkLake._commit_written, []

    def failing_second(self, table, *args, **kwargs):
        commits.append(table)
        if table == "second":
            raise OSError("the disk went away between the two commits")
        return real_write(self, table, *args, **kwargs)

    monkeypatch.setattr(DeltaSparkLake, "_commit_written", failing_second)  # the tables exist: prepared in place
    with pytest.raises(OSError):
        publish(RunMetrics())
    monkeypatch.undo()
    assert commits == ["first", "second"]
    assert _rows(lake.read("first")) == [(1, "new", D1)]
    assert _rows(lake.read("second")) == [(0, "old", D1)]
    metrics = RunMetrics()
    publish(metrics)
    assert _rows(lake.read("first")) == [(1, "new", D1)] and _rows(lake.read("second")) == [(2, "new", D1)]
    assert metrics.details["versions"] == {"first": 2, "second": 1}
    assert _nothing_left_staged(lake_root)


def test_a_table_prepared_twice_in_one_gate_is_refused(spark, lake_root):
    lake = open_lake(spark, lake_root)
    with pytest.raises(ValueError, match="prepared twice"):
        with gated_write(lake) as gate:
            gate.prepare("t", _frame(spark, [(1, "a", D1)]), REPLACE, ["event_date"])
            gate.prepare("t", _frame(spark, [(2, "b", D1)]), REPLACE, ["event_date"])
    assert not lake.exists("t")


def test_a_group_commits_together_before_the_rest_and_a_failure_in_it_stops_what_follows(spark, lake_root,
                                                                                         monkeypatch):
    """``commit_order`` may name tables that do not point into each other as one group: they commit on their
    own threads, both before the tables after them; when one of the group fails, the other still commits,
    the error is raised, and no later table starts."""
    import threading

    from jobs.core.lake.delta_spark import DeltaSparkLake

    lake = open_lake(spark, lake_root)
    for table in ("small_a", "small_b", "big"):
        lake.overwrite_partitions(table, _frame(spark, [(0, "old", D1)]), ["event_date"], REPLACE)
    real_write, started, threads, both_in = DeltaSparkLake._commit_written, [], set(), threading.Barrier(2, timeout=60)

    def recorded(fail: str | None):
        def write(self, table, *args, **kwargs):
            started.append(table)
            threads.add((table, threading.current_thread().name))
            if table != "big":
                both_in.wait()  # would time out if the group's two commits ran one after the other
            if table == fail:
                raise OSError(f"{table} failed")
            return real_write(self, table, *args, **kwargs)
        return write

    def publish(metrics):
        with gated_write(lake, metrics, commit_order=(("small_a", "small_b"),)) as gate:
            gate.prepare("big", _frame(spark, [(3, "new", D1)]), REPLACE, ["event_date"])
            gate.prepare("small_a", _frame(spark, [(1, "new", D1)]), REPLACE, ["event_date"])
            gate.prepare("small_b", _frame(spark, [(2, "new", D1)]), REPLACE, ["event_date"])

    monkeypatch.setattr(DeltaSparkLake, "_commit_written", recorded(fail=None))
    metrics = RunMetrics()
    publish(metrics)
    assert sorted(started[:2]) == ["small_a", "small_b"] and started[2] == "big"
    assert len({name for table, name in threads if table != "big"}) == 2
    assert set(metrics.details["versions"]) == {"small_a", "small_b", "big"}
    assert _rows(lake.read("big")) == [(3, "new", D1)]

    monkeypatch.undo()
    for table in ("small_a", "small_b", "big"):
        lake.overwrite_partitions(table, _frame(spark, [(0, "old", D1)]), ["event_date"], REPLACE)
    started.clear()
    both_in.reset()
    monkeypatch.setattr(DeltaSparkLake, "_commit_written", recorded(fail="small_b"))
    with pytest.raises(OSError, match="small_b failed"):
        publish(RunMetrics())
    assert "big" not in started
    assert _rows(lake.read("small_a")) == [(1, "new", D1)]
    assert _rows(lake.read("small_b")) == [(0, "old", D1)] and _rows(lake.read("big")) == [(0, "old", D1)]
    assert _nothing_left_staged(lake_root)
