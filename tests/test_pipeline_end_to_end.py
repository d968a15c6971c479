"""Generate -> ingest -> dedupe -> sessionize on small generated data with every fault type.

On the suite's ``nightly_lake`` (tests/conftest.py): the real stages run
through the real command line (in-process, sharing the test Spark session),
in nightly order: each night ingests its landing partition, re-runs the
previous date (its late events just arrived), then publishes its own date.
Checks reconciliation against ``pipeline_runs`` and that re-running a date
leaves every table identical.
"""
from __future__ import annotations

import datetime as dt
import gzip
import io
import json
import shutil
from contextlib import redirect_stdout

import pytest

from jobs.cli import main as jobs_main
from jobs.core.lake import open_lake
from tests.conftest import NIGHTLY_DAYS

DAYS = NIGHTLY_DAYS
FAULT_REASONS = {
    "malformed_json", "missing_user_id", "missing_item_id", "missing_event_type", "missing_event_time",
    "missing_category", "invalid_user_id", "invalid_item_id", "unknown_event_type", "unparseable_event_time",
    "future_event_time", "stale_event_time", "invalid_utf8", "bot_user",
}


def jobs(*args: str) -> str:
    out = io.StringIO()
    with redirect_stdout(out):
        assert jobs_main(list(args)) == 0, f"python -m jobs {' '.join(args)} failed"
    return out.getvalue()


def snapshot(lake, table: str) -> list[tuple]:
    def plain(value):
        return tuple(sorted(value.items())) if isinstance(value, dict) else value

    return sorted((tuple(plain(v) for v in row) for row in lake.read(table).collect()), key=repr)


@pytest.fixture(scope="module")
def pipeline(spark, nightly_lake):
    """The shared lake itself, not a copy: its quarantined rows name their landing files by path, and the re-runs
    below compare against them. (The other module on it, tests/jobs/test_validate.py, works on a copy.)"""
    return nightly_lake, open_lake(spark, nightly_lake)


def _runs(lake, stage: str) -> list:
    return [r for r in lake.read("pipeline_runs").orderBy("started_at").collect() if r.stage == stage]


def test_every_landing_line_is_clean_or_quarantined(pipeline):
    lake_root, lake = pipeline
    ingests = _runs(lake, "ingest")
    assert len(ingests) == len(DAYS) and all(r.status == "succeeded" for r in ingests)
    for run in ingests:
        partition = lake_root / "raw" / "events" / f"ingest_date={run.run_date.isoformat()}"
        lines = sum(len(gzip.decompress(p.read_bytes()).splitlines()) for p in partition.glob("*.jsonl.gz"))
        assert run.rows_in == lines == run.rows_out + run.rows_quarantined
        per_date = lake.read("events_clean", partitions={"ingest_date": [run.run_date.isoformat()]}).count()
        assert per_date == run.rows_out
    reasons = {r.reason for r in lake.read("events_quarantine").select("reason").distinct().collect()}
    assert FAULT_REASONS <= reasons, f"missing fault types: {FAULT_REASONS - reasons}"


def test_clean_rows_are_kept_or_counted_as_duplicates(pipeline):
    """Each night's dedupe covers its date and the one before (late events): one pass over both."""
    _, lake = pipeline
    runs = _runs(lake, "dedupe")
    assert all(r.rows_in == r.rows_out + r.rows_duplicate for r in runs)
    last = runs[-1]
    dates = json.loads(last.details)["event_dates"]
    assert dates == [d.isoformat() for d in DAYS[-2:]]
    assert last.rows_in == lake.read("events_clean", partitions={"event_date": dates}).count()
    assert last.rows_out == lake.read("events", partitions={"event_date": dates}).count()
    details = [json.loads(r.details) for r in runs]
    assert sum(d["duplicates_within_date"] for d in details) > 0
    assert sum(d["replays_of_earlier_dates"] for d in details) > 0


def test_a_range_in_one_pass_gives_the_tables_of_its_dates_one_at_a_time(pipeline, tmp_path):
    """The backfill path: dedupe and sessionize of every date in one pass each, against each date on its own in
    order, both from the same events_clean, and both against the nightly order's tables. (The suites' range
    runs are the nightly's: each night's dedupe and sessionize cover its date and the one before.)"""
    lake_root, lake = pipeline
    tables = ("events", "sessions")
    results = {}
    for mode in ("one_at_a_time", "range"):
        copy = tmp_path / mode / "lake"
        shutil.copytree(lake_root, copy, ignore=shutil.ignore_patterns(*tables))
        if mode == "range":
            for stage in ("dedupe", "sessionize"):
                jobs(stage, "--lake", str(copy), "--from-date", DAYS[0].isoformat(), "--to-date",
                     DAYS[-1].isoformat(), "--no-validate")
        else:
            for day in DAYS:
                for stage in ("dedupe", "sessionize"):
                    jobs(stage, "--lake", str(copy), "--date", day.isoformat(), "--no-validate")
        results[mode] = {t: snapshot(open_lake(lake.spark, copy), t) for t in tables}
    assert results["range"] == results["one_at_a_time"] == {t: snapshot(lake, t) for t in tables}
    assert all(results["range"][t] for t in tables)


def test_events_hold_one_row_per_event_id_all_sessionized(pipeline):
    _, lake = pipeline
    events = lake.read("events")
    assert events.count() == events.select("event_id").distinct().count()
    assert events.where("session_id IS NULL").count() == 0
    sessions = lake.read("sessions")
    assert sessions.where("is_continuation").count() > 0  # some sessions cross midnight
    by_session = events.groupBy("event_date", "session_id").count()
    joined = sessions.join(by_session, ["event_date", "session_id"])
    assert joined.where("count != n_events").count() == 0 and joined.count() == sessions.count()


def test_rerunning_a_date_leaves_identical_tables(pipeline):
    lake_root, lake = pipeline
    tables = ["events_clean", "events_quarantine", "events", "sessions"]
    before = {t: snapshot(lake, t) for t in tables}
    day = DAYS[1].isoformat()
    for stage in ("ingest", "dedupe", "sessionize"):
        jobs(stage, "--lake", str(lake_root), "--date", day)
    assert {t: snapshot(lake, t) for t in tables} == before


def test_a_date_without_events_reruns_and_records_a_version(pipeline):
    """make run's first night failed here once: Delta skips a commit that adds and removes nothing, so the
    re-run of an empty date found no version of its own write."""
    lake_root, lake = pipeline
    empty = (DAYS[0] - dt.timedelta(days=1)).isoformat()
    assert lake.read("events", partitions={"event_date": [empty]}).count() == 0
    versions = {t: lake.version(t) for t in ("events", "sessions")}
    for stage in ("dedupe", "sessionize"):
        jobs(stage, "--lake", str(lake_root), "--date", empty)
    assert lake.version("events") == versions["events"] + 2  # dedupe's commit, then sessionize's
    assert lake.version("sessions") == versions["sessions"] + 1
    assert lake.read("sessions", partitions={"event_date": [empty]}).count() == 0


def test_sql_sees_every_table(pipeline):
    lake_root, _ = pipeline
    out = jobs("sql", "--lake", str(lake_root), "--format", "json",
               "SELECT (SELECT count(*) FROM events) AS events, (SELECT count(*) FROM sessions) AS sessions, "
               "(SELECT count(*) FROM pipeline_runs) AS runs")
    result = json.loads(out)[0]
    assert result["events"] > 10_000 and result["sessions"] > 1000 and result["runs"] >= 13


def test_ingesting_the_whole_landing_folder_at_once_matches_the_nightly_runs(pipeline):
    lake_root, lake = pipeline
    before = {t: snapshot(lake, t) for t in ("events_clean", "events_quarantine")}
    out = jobs("ingest", "--lake", str(lake_root), "--source", str(lake_root / "raw" / "events"))
    assert ", ".join(d.isoformat() for d in DAYS) in out
    assert {t: snapshot(lake, t) for t in before} == before
