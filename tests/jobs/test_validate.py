"""Quality gates through the real command line on small generated data.

Critical failures exit non-zero with one line per failed expectation and
publish nothing; warnings are recorded and the run goes on; Data Docs are
written and their path printed; ``pipeline_runs`` carries the summary.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import NIGHTLY_DAYS, run_jobs as run
from jobs.core.lake import open_lake

D1, D2 = NIGHTLY_DAYS[:2]


@pytest.fixture(scope="module")
def lake_root(nightly_lake, tmp_path_factory) -> Path:
    """A copy of the end-to-end module's lake: the tests below add runs and partitions to theirs."""
    return Path(shutil.copytree(nightly_lake, tmp_path_factory.mktemp("quality") / "lake"))


def _runs(spark, root: Path, stage: str):
    return open_lake(spark, root).read("pipeline_runs").where(f"stage = '{stage}'").orderBy("started_at").collect()


@pytest.mark.parametrize("table", ["events_clean", "events", "sessions"])
def test_each_suite_passes_on_generated_data_and_writes_data_docs(spark, lake_root, table):
    code, out, err = run("validate", "--lake", str(lake_root), "--table", table, "--date", D1.isoformat())
    assert code == 0, err
    docs = Path(out.split("Data Docs: ")[1].split()[0])
    assert docs.name == "index.html" and docs.is_file() and docs.is_relative_to(lake_root / "_gx")
    last = _runs(spark, lake_root, "validate")[-1]
    assert last["status"] == "succeeded" and last["expectations_evaluated"] > 10 and last["dq_severity"] == "passed"


def test_critical_failure_exits_non_zero_and_publishes_nothing(spark, lake_root, monkeypatch):
    lake = open_lake(spark, lake_root)
    before = {t: lake.version(t) for t in ("events_clean", "events_quarantine")}
    monkeypatch.setenv("IM_MAX_QUARANTINE_RATE", "0.0001")
    code, out, err = run("ingest", "--lake", str(lake_root), "--date", D2.isoformat())
    assert code == 1
    assert "critical expectation(s) failed; nothing published" in err
    assert "critical: expect_column_values_to_be_null on reason: observed" in err
    assert {t: lake.version(t) for t in before} == before
    last = _runs(spark, lake_root, "ingest")[-1]
    assert (last["status"], last["dq_severity"]) == ("failed", "critical")


def test_validate_reports_a_bad_published_partition(spark, lake_root, tmp_path):
    """A partition that bypassed the gates (written straight to the lake) fails ``validate``."""
    lake = open_lake(spark, tmp_path / "lake")
    events = open_lake(spark, lake_root).read("events", partitions={"event_date": [D1.isoformat()]})
    duplicated = events.unionByName(events.limit(3))
    lake.overwrite_partitions("events", duplicated, ["event_date"], {"event_date": [D1.isoformat()]})
    code, out, err = run("validate", "--lake", str(tmp_path / "lake"), "--table", "events", "--date", D1.isoformat())
    assert code == 1
    assert "critical: expect_compound_columns_to_be_unique on event_id,event_date: observed 6 unexpected rows" in err


def test_a_warning_is_recorded_and_the_run_goes_on(spark, lake_root, monkeypatch):
    monkeypatch.setenv("IM_MAX_CATEGORY_DIVERGENCE", "0")  # any drift at all warns
    code, out, err = run("validate", "--lake", str(lake_root), "--table", "events", "--date", D2.isoformat())
    assert code == 0, err
    assert "warning: expect_column_kl_divergence_to_be_less_than on category" in out
    last = _runs(spark, lake_root, "validate")[-1]
    assert last["status"] == "succeeded" and last["dq_severity"] == "warning" and last["category_divergence"] > 0
