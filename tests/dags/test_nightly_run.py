"""The nightly DAG really run by Airflow (``airflow dags test``: SQLite), its stages on a real Spark cluster.

On a copy of the scored test lake (eight generated days, a trained champion,
predictions published by the standalone ``score`` for 2024-10-07 and -08, all
built in local mode by the suite's own session):

The run that publishes has its Spark tasks run as clients of the suite's Spark
Connect server (``IM_SPARK_REMOTE``, as ``make run`` runs them, though
``make run``'s server is in local mode), whose executors are on a standalone
cluster of two workers (``spark_cluster``); the outage run submits them with
spark-submit, the DAG's default.

- a two-date backfill: ``airflow backfill create`` plans the runs of logical
  dates 2024-10-07 and -08 02:00, which process event dates 2024-10-06 and
  -07. Executing planned runs takes a scheduler (``airflow standalone``, the
  compose deployment), which the suite does not start, so the newest planned
  date runs through ``airflow dags test``: the same DAG run, in process. It
  goes through every stage and publishes 2024-10-07 again through the held →
  validated → published path; the standalone score had published it, and the
  re-run leaves its three tables identical (only ``scored_at`` moves). Its
  data stages rewrite their partitions on the cluster, and every data table
  must come out equal to the local-mode lake's, row for row;
- the run for 2024-10-08, whose landing partition is cut to an outage's
  volume (a few percent of its steady trailing week), fails ingest's critical
  row-count expectation: nothing after it runs, the failure callback logs its
  paragraph, and the published predictions keep their version and rows.
"""
from __future__ import annotations

import datetime as dt
import gzip
import os
import re
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import json

import pytest
from aiosmtpd.controller import Controller
from deltalake import DeltaTable

from tests.conftest import SCORE_DATES, SCORE_OPTIONS, delta_rows, free_port
from tests.dags.test_alerts import Inbox, body_text, smtp_connection
from tests.dags.conftest import ROOT

DAG_ID = "interest_migration_nightly"
TABLES = ("user_interest_predictions", "category_demand_forecast", "marketing_segments")
DATA_TABLES = ("events_clean", "events_quarantine", "events", "sessions")
PUBLISHED_DATE, SPIKE_DATE = SCORE_DATES


@pytest.fixture(scope="module")
def airflow_env(cluster_services, scored_lake, connect_server, tmp_path_factory) -> dict:
    # cluster_services first: the cluster and its Connect server start while the trained lake is built.
    lake = tmp_path_factory.mktemp("dag") / "lake"
    shutil.copytree(scored_lake, lake)
    options = dict(zip(SCORE_OPTIONS[::2], SCORE_OPTIONS[1::2]))
    env = {**os.environ,
           "AIRFLOW_HOME": str(tmp_path_factory.mktemp("airflow_home")), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
           "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"), "PYTHONPATH": str(ROOT),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "IM_LAKE": str(lake), "IM_TASK_RETRIES": "0", "IM_DEADLINE_HOURS": "0", "IM_SHUFFLE_PARTITIONS": "2",
           "IM_TOP_K": options["--top-k"], "IM_SEGMENT_SIZE": options["--segment-size"],
           "IM_MIN_PROPENSITY": options["--min-propensity"], "TF_CPP_MIN_LOG_LEVEL": "2",
           "IM_SPARK_DRIVER_JAVA_OPTIONS": "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC", "IM_SPARK_REMOTE": connect_server}
    for command in (["db", "migrate"], ["dags", "reserialize"]):
        subprocess.run([sys.executable, "-m", "airflow", *command], env=env, check=True, capture_output=True)
    return env


def _airflow(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "airflow", *args], env=env, capture_output=True, text=True,
                          timeout=900, cwd=ROOT)


def _dags_test(env: dict, run_date: dt.date, conf: str = '{"retrain": "never"}') -> subprocess.CompletedProcess:
    return _airflow(env, "dags", "test", DAG_ID, f"{run_date + dt.timedelta(days=1)}T02:00:00+00:00", "-c", conf)


def _rows(lake: Path, table: str, date: dt.date) -> list[tuple]:
    rows = DeltaTable(str(lake / table)).to_pyarrow_table().to_pylist()
    return sorted(tuple(sorted((k, str(v)) for k, v in r.items() if k != "scored_at"))
                  for r in rows if r["score_date"] == date)


def _sequence_inputs(lake: Path, split: str, cutoff: dt.datetime) -> list[str]:
    """The model's inputs (user, history, window) of one split's sequences at ``cutoff``, without their labels."""
    rows = DeltaTable(str(lake / "user_sequences")).to_pyarrow_table().to_pylist()
    return sorted(repr(sorted((k, v) for k, v in row.items() if k == "user_id" or k.startswith(("history_", "window_"))))
                  for row in rows if row["split"] == split and row["cutoff_ts"] == cutoff)


def _landing_lines(lake: Path, date: dt.date) -> int:
    folder = lake / "raw" / "events" / f"ingest_date={date}"
    return sum(sum(1 for _ in gzip.open(path)) for path in folder.iterdir() if path.is_file())


def _runs(lake: Path, date: dt.date) -> list[dict]:
    runs = DeltaTable(str(lake / "pipeline_runs")).to_pyarrow_table().to_pylist()
    return [r for r in runs if r["run_date"] == date]


def test_a_planned_backfill_date_runs_every_stage_on_the_cluster_and_republishing_it_changes_nothing(
        airflow_env, model_lake):
    lake = Path(airflow_env["IM_LAKE"])
    first = PUBLISHED_DATE - dt.timedelta(days=1)
    plan = _airflow(airflow_env, "backfill", "create", "--dag-id", DAG_ID, "--dry-run", "--run-backwards",
                    "--dag-run-conf",
                    '{"retrain": "never"}', "--from-date", str(first + dt.timedelta(days=1)),
                    "--to-date", f"{PUBLISHED_DATE + dt.timedelta(days=1)}T02:00:00+00:00")
    assert plan.returncode == 0, plan.stderr[-3000:]
    planned = [dt.date.fromisoformat(d) - dt.timedelta(days=1)
               for d in re.findall(r"\|\s*(\d{4}-\d\d-\d\d) 02:00:00\+00:00", plan.stdout + plan.stderr)]
    assert sorted(planned) == [first, PUBLISHED_DATE], (plan.stdout + plan.stderr)[-2000:]
    # The newest planned date (--run-backwards runs it first) is one the standalone score already published: the
    # DAG's held -> validated -> published path publishes it again, and the tables must come out identical. Each
    # night costs minutes of spark-submits, so the suite runs this one; the older date runs the same code.
    already_published = {table: _rows(lake, table, PUBLISHED_DATE) for table in TABLES}
    every_version = _table_versions(lake)
    versions = {table: DeltaTable(str(lake / table)).version() for table in TABLES + DATA_TABLES + ("user_sequences",)}
    assert already_published["user_interest_predictions"]
    started = dt.datetime.now(dt.timezone.utc)
    result = _dags_test(airflow_env, PUBLISHED_DATE)
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
    runs = [r for r in _runs(lake, PUBLISHED_DATE) if r["started_at"] >= started]
    assert {"ingest", "dedupe", "sessionize", "validate", "features", "score", "publish"} <= {r["stage"] for r in runs}
    assert all(r["status"] == "succeeded" for r in runs)
    assert not (lake / "_candidates" / f"score_date={PUBLISHED_DATE}").exists()
    staging = lake / "_staging"  # every staged write was committed or removed
    assert not staging.exists() or not any(staging.iterdir()), sorted(p.name for p in staging.iterdir())
    assert all(DeltaTable(str(lake / table)).version() > versions[table] for table in versions)
    assert {table: _rows(lake, table, PUBLISHED_DATE) for table in TABLES} == already_published
    # The data stages rewrote their partitions on the cluster's executors: the same rows as local mode wrote.
    for table in DATA_TABLES:
        assert delta_rows(lake, table) == delta_rows(model_lake, table), f"{table}: the cluster and local mode differ"
    # Features wrote the night's score sequences, cut off at the end of the date; the local-mode lake holds a test
    # origin at that same cutoff: the same users with the same history and window.
    cutoff = dt.datetime.combine(PUBLISHED_DATE + dt.timedelta(days=1), dt.time(), dt.timezone.utc)
    scored = _sequence_inputs(lake, "score", cutoff)
    assert scored and scored == _sequence_inputs(model_lake, "test", cutoff)
    _lineage_matches_what_the_run_wrote(airflow_env, lake, every_version)
    _the_sql_catalogs_answer_the_documented_queries(airflow_env, lake)
    page = lake / "dashboard" / str(PUBLISHED_DATE) / "index.html"
    assert page.is_file() and (lake / "dashboard" / "index.html").is_file()
    assert len(re.findall(r'<img class="plot"', page.read_text())) >= 4


def _table_versions(lake: Path) -> dict[str, int]:
    from jobs.sql.guard import lake_tables

    return {name: DeltaTable(str(path)).version() for name, path in lake_tables(lake).items()}


def _lineage_matches_what_the_run_wrote(env: dict, lake: Path, before: dict[str, int]) -> None:
    """Every table whose Delta version moved is an outlet of a task that ran, and Airflow recorded an asset event
    for each outlet of each task that succeeded (what the Assets view draws the flow from)."""
    import sqlite3

    from dags.nightly.lineage import lineage

    with sqlite3.connect(Path(env["AIRFLOW_HOME"]) / "airflow.db") as db:
        run_id = db.execute("SELECT run_id FROM dag_run WHERE dag_id = ? ORDER BY id DESC LIMIT 1", (DAG_ID,)).fetchone()[0]
        succeeded = {task for (task,) in db.execute(
            "SELECT task_id FROM task_instance WHERE dag_id = ? AND run_id = ? AND state = 'success'", (DAG_ID, run_id))}
        events = {name for (name,) in db.execute(
            "SELECT a.name FROM asset_event AS e JOIN asset AS a ON a.id = e.asset_id "
            "WHERE e.source_dag_id = ? AND e.source_run_id = ?", (DAG_ID, run_id))}
    declared = {a.name for task in succeeded for a in lineage(task, lake)["outlets"]}
    moved = {name for name, version in _table_versions(lake).items() if version != before.get(name)}
    assert {"publish", "refresh_sql_catalog", "ingest"} <= succeeded
    assert moved and moved <= declared, f"written but not declared: {moved - declared}"
    assert events == declared


def _the_sql_catalogs_answer_the_documented_queries(env: dict, lake: Path) -> None:
    """The run's refresh_sql_catalog wrote the read-only DuckDB database and registered the tables in the Spark
    Connect server's catalog; the sql/ files run unchanged on both, and agree."""
    import stat

    import duckdb

    from jobs.sql import delta_extension_path

    database = lake / "interest_migration.duckdb"
    assert stat.S_IMODE(database.stat().st_mode) == 0o444
    files = sorted((ROOT / "sql").glob("*.sql"))
    with duckdb.connect(str(database), read_only=True) as connection:
        connection.execute(f"LOAD '{delta_extension_path()}'")
        duck = {path.name: len(connection.execute(path.read_text()).fetchall()) for path in files}
    assert all(duck.values()), duck
    code = ("import json, pathlib, sys; from pyspark.sql import SparkSession; "
            "spark = SparkSession.builder.remote(sys.argv[1]).getOrCreate(); spark.sql('USE interest_migration'); "
            "print(json.dumps({p.name: spark.sql(p.read_text()).count() for p in map(pathlib.Path, sys.argv[2:])}))")
    spark = subprocess.run([sys.executable, "-c", code, env["IM_SPARK_REMOTE"], *map(str, files)], env=env,
                           capture_output=True, text=True, timeout=300)
    assert spark.returncode == 0, spark.stderr[-3000:]
    assert json.loads(spark.stdout.strip().splitlines()[-1]) == duck


def test_an_outage_stops_the_run_before_publish_and_mails_its_critical_data_quality_result(airflow_env):
    lake = Path(airflow_env["IM_LAKE"])
    landing = lake / "raw" / "events" / f"ingest_date={SPIKE_DATE}"
    # An outage: the date's delivery cut to 3 % of the median of its trailing week, counted from the landing
    # files themselves (the generator's bots make some days two or three times the others: still steady).
    trailing = [_landing_lines(lake, SPIKE_DATE - dt.timedelta(days=d)) for d in range(1, 8)]
    keep = max(1, int(0.03 * statistics.median(trailing)))
    originals = sorted(p for p in landing.iterdir() if p.is_file())
    lines = [line for path in originals for line in gzip.open(path).read().splitlines(keepends=True)]
    for path in originals:
        path.unlink()
    with gzip.open(originals[0], "wb") as out:
        out.writelines(lines[:keep])
    assert _landing_lines(lake, SPIKE_DATE) == keep < 0.1 * statistics.median(trailing)
    before = {table: (DeltaTable(str(lake / table)).version(), _rows(lake, table, SPIKE_DATE)) for table in TABLES}
    started = dt.datetime.now(dt.timezone.utc)
    # Without the Spark Connect server: the DAG's other way of running a stage, a spark-submit. Alerts go to a
    # real SMTP server on the loopback interface, through the SMTP connection the DAG's notifier reads.
    inbox = Inbox()
    mail = Controller(inbox, hostname="127.0.0.1", port=free_port())
    mail.start()
    try:
        env = {**{k: v for k, v in airflow_env.items() if k != "IM_SPARK_REMOTE"},
               "AIRFLOW_CONN_SMTP_ALERTS": smtp_connection(mail.port), "IM_ALERT_TO": "oncall@example.com"}
        result = _dags_test(env, SPIKE_DATE)
        messages = inbox.wait(1)
    finally:
        mail.stop()
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "critical expectation(s) failed" in output
    assert "failed at task ingest" in output and "still hold the previous good partitions" in output
    assert {table: (DeltaTable(str(lake / table)).version(), _rows(lake, table, SPIKE_DATE))
            for table in TABLES} == before
    later = [r for r in _runs(lake, SPIKE_DATE) if r["started_at"] >= started]
    assert [(r["stage"], r["status"]) for r in later] == [("ingest", "failed")]
    [(recipients, message)] = messages
    assert recipients == ["oncall@example.com"]
    assert message["Subject"].startswith(f"[interest-migration] critical data-quality result: events_clean {SPIKE_DATE}")
    assert "expect_table_row_count" in body_text(message) and "failed at task ingest" in body_text(message)
