"""``maintain``: compaction and VACUUM keep what the retention promises, and leftovers go."""
from __future__ import annotations

import datetime as dt
import os
import time
from pathlib import Path

import pytest

from jobs.core.lake import open_lake
from jobs.maintain import VALIDATION_RESULTS, prune_checkpoints, prune_validation_results, remove_abandoned
from tests.conftest import run_jobs

D1, D2 = dt.date(2024, 11, 1), dt.date(2024, 11, 2)


def _frame(spark, rows):
    return spark.createDataFrame(rows, "id long, label string, event_date date")


def _rows(df):
    return sorted(tuple(r) for r in df.select("id", "label", "event_date").collect())


def _lake_with_history(spark, root):
    """Table t at versions 0..3 (D1 rewritten three times), and user_sequences snapshots of three as-of dates."""
    lake = open_lake(spark, root)
    for i in range(3):
        lake.overwrite_partitions("t", _frame(spark, [(i, f"v{i}", D1)]), ["event_date"], {"event_date": [D1]})
    lake.overwrite_partitions("t", _frame(spark, [(9, "d2", D2)]), ["event_date"], {"event_date": [D2]})
    sequences = spark.createDataFrame(
        [("u1", dt.date(2024, 10, d), dt.date(2024, 10, d + 1)) for d in (1, 20, 30)],
        "user_id string, as_of_date date, cutoff_date date")
    lake.overwrite_partitions("user_sequences", sequences, ["as_of_date", "cutoff_date"],
                              {"as_of_date": ["2024-10-01", "2024-10-20", "2024-10-30"]})
    return lake


def test_time_travel_works_inside_the_retention_and_old_versions_go_past_it(spark, lake_root):
    lake = _lake_with_history(spark, lake_root)
    # The default retention (168 hours): every version is younger, so all stay readable.
    code, out, err = run_jobs("maintain", "--lake", str(lake_root), "--date", D2.isoformat())
    assert code == 0, err
    assert "maintain:" in out
    assert _rows(lake.read("t", version=0)) == [(0, "v0", D1)]
    assert _rows(lake.read("t")) == [(2, "v2", D1), (9, "d2", D2)]
    # the default keeps 28 days of snapshots before the newest (2024-10-30): 10-01 goes, 10-20 stays
    assert lake.partition_values("user_sequences", "as_of_date") == ["2024-10-20", "2024-10-30"]

    # A retention of zero hours: only the current version's files stay.
    files_before = sum(1 for _ in (lake_root / "t").rglob("*.parquet"))
    code, out, err = run_jobs("maintain", "--lake", str(lake_root), "--date", D2.isoformat(),
                              "--retention-hours", "0", "--keep-sequence-days", "0")
    spark.conf.set("spark.databricks.delta.retentionDurationCheck.enabled", "true")
    assert code == 0, err
    assert _rows(lake.read("t")) == [(2, "v2", D1), (9, "d2", D2)]
    assert sum(1 for _ in (lake_root / "t").rglob("*.parquet")) < files_before
    with pytest.raises(Exception):
        lake.read("t", version=0).collect()  # its files are vacuumed
    assert lake.partition_values("user_sequences", "as_of_date") == ["2024-10-30"]


def test_only_abandoned_leftovers_are_removed(tmp_path):
    now = time.time()
    old, young = tmp_path / "_staging" / "events-old", tmp_path / "_scratch" / "score-young"
    for folder in (old, young, tmp_path / "_candidates" / "score_date=2024-11-01"):
        folder.mkdir(parents=True)
        (folder / "part-0.parquet").write_bytes(b"x")
    for path in (old, old / "part-0.parquet", tmp_path / "_candidates" / "score_date=2024-11-01",
                 tmp_path / "_candidates" / "score_date=2024-11-01" / "part-0.parquet"):
        os.utime(path, (now - 3 * 86400, now - 3 * 86400))
    removed = remove_abandoned(tmp_path, 86400, now)
    assert sorted(removed) == ["_candidates/score_date=2024-11-01", "_staging/events-old"]
    assert young.is_dir() and not old.exists()


def test_checkpoints_are_pruned_in_numeric_version_order(tmp_path):
    versions = tmp_path / "versions"
    for name in ("2024-11-01.9", "2024-11-01.10", "2024-10-31.2"):
        (versions / name / "run" / "backup").mkdir(parents=True)
        (versions / name / "saved_model").mkdir()
    assert prune_checkpoints(versions, keep=1) == ["2024-10-31.2", "2024-11-01.9"]
    assert (versions / "2024-11-01.10" / "run").is_dir()
    assert not (versions / "2024-11-01.9" / "run").exists() and (versions / "2024-11-01.9" / "saved_model").is_dir()


def test_validation_results_past_the_retention_go_and_the_data_docs_index_drops_their_pages(spark, tmp_path):
    """A year of nights would leave thousands of results, every one read by each validation's index build."""
    import great_expectations as gx

    from jobs.core.quality.gx_run import INDEX_RESULTS_LIMIT, run_suite

    root = tmp_path / "lake" / "_gx"
    frame = spark.createDataFrame([(1,), (2,)], "id long")
    suite = gx.ExpectationSuite(name="t", expectations=[gx.expectations.ExpectColumnValuesToNotBeNull(column="id")])
    run_suite(root, "t", D1, frame, suite)
    config = (root / "gx" / "great_expectations.yml").read_text()
    assert f"validation_results_limit: {INDEX_RESULTS_LIMIT}" in config and "class_name: CachedJinjaPageView" in config
    results = tmp_path / "lake" / VALIDATION_RESULTS
    pages = root / "gx" / "uncommitted" / "data_docs" / "local_site" / "validations"
    (first,) = list(results.rglob("*.json"))
    suite_folder = first.relative_to(results).parts[0]
    (first_page,) = list(pages.rglob("*.html"))
    now = time.time()

    def stored(run_name: str, days_ago: float) -> Path:
        """An earlier night's result and its page, as its own validation would have left them."""
        stamp = dt.datetime.fromtimestamp(now - days_ago * 86400, dt.timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
        folder = results / suite_folder / run_name / stamp
        folder.mkdir(parents=True)
        (folder / first.name).write_bytes(first.read_bytes())
        page = pages / folder.relative_to(results) / first_page.name
        page.parent.mkdir(parents=True)
        page.write_bytes(first_page.read_bytes())
        return folder

    old, recent = stored("t_old", 120), stored("t_recent", 10)
    run_suite(root, "t", D2, frame, suite)
    assert all(name in (pages.parent / "index.html").read_text() for name in ("t_old", "t_recent"))
    # A folder GX did not name (GX itself cannot index it): judged by its files' age.
    odd = results / suite_folder / "t_odd" / "not-a-run-time"
    odd.mkdir(parents=True)
    (odd / first.name).write_bytes(first.read_bytes())
    for path in (odd / first.name, odd):
        os.utime(path, (now - 200 * 86400, now - 200 * 86400))

    assert prune_validation_results(results, 90 * 86400, now) == 2
    assert not old.exists() and not old.parent.exists() and not odd.exists()
    assert recent.exists() and first.exists()
    run_suite(root, "t", D2, frame, suite)
    linked = (pages.parent / "index.html").read_text()
    assert "t_old" not in linked and "t_odd" not in linked and "t_recent" in linked
    assert not any("t_old" in str(p) or "t_odd" in str(p) for p in pages.rglob("*.html"))
