"""The nightly DAG loads, is wired as documented, and its params and decisions behave (no run needed)."""
from __future__ import annotations

import copy
import datetime as dt
import json
import subprocess
import sys

import pytest

from dags.nightly.alerts import failure_summary
from jobs.core.errors import PipelineError
from dags.nightly.decisions import landing_ready, resolve_run_date
from tests.dags.conftest import ROOT

DAG_ID = "interest_migration_nightly"
SPARK_STAGES = {"ingest": "ingest", "dedupe": "dedupe", "sessionize": "sessionize", "validate": "validate",
                "features_training": "features", "train": "train", "evaluate": "evaluate", "features": "features",
                "score": "score", "validate_predictions": "validate", "publish": "publish", "maintain": "maintain"}


@pytest.fixture(scope="module")
def dag():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags"))
    assert bag.import_errors == {}
    return bag.dags[DAG_ID]


def test_the_dag_has_the_documented_shape_and_no_cycles(dag):
    downstream = {t.task_id: set(t.downstream_task_ids) for t in dag.tasks}
    assert set(downstream) == set(SPARK_STAGES) | {"check_params", "wait_for_landing", "choose_training",
                                                   "champion_ready", "keep_champion", "no_model_yet",
                                                   "ready_to_score", "refresh_sql_catalog", "dashboard",
                                                   "maintenance_due"}

    def reaches(start, goal, seen=()):
        return any(n == goal or (n not in seen and reaches(n, goal, (*seen, n))) for n in downstream[start])

    assert not any(reaches(task, task) for task in downstream)
    chain = ["check_params", "wait_for_landing", "ingest", "dedupe", "sessionize", "validate", "choose_training"]
    assert all(b in downstream[a] for a, b in zip(chain, chain[1:]))
    assert downstream["choose_training"] == {"features_training", "keep_champion", "no_model_yet"}
    assert downstream["evaluate"] == {"champion_ready"} and downstream["champion_ready"] == {"ready_to_score"}
    assert downstream["keep_champion"] == {"ready_to_score"} and downstream["ready_to_score"] == {"features"}
    assert reaches("features_training", "score") and reaches("keep_champion", "score")
    assert downstream["score"] == {"validate_predictions"} and downstream["validate_predictions"] == {"publish"}
    assert not reaches("no_model_yet", "publish")
    # the SQL catalog and weekly maintenance after the night's writes, whether or not it published
    # side by side: a failed catalog or dashboard never stops maintenance
    assert downstream["publish"] == downstream["no_model_yet"] == {"refresh_sql_catalog", "dashboard",
                                                                   "maintenance_due"}
    assert downstream["refresh_sql_catalog"] == downstream["dashboard"] == set()
    assert downstream["maintenance_due"] == {"maintain"}
    assert dag.get_task("maintenance_due").trigger_rule == "none_failed"
    assert dag.get_task("refresh_sql_catalog").trigger_rule == dag.get_task("dashboard").trigger_rule == "none_failed"


def test_no_join_can_fire_on_a_task_that_succeeds_on_every_path(dag):
    """A trigger rule that needs one upstream success (a join after the branch) must see only the branch's
    outcomes. check_params is upstream of every task that takes the run date; had it been upstream of the
    scoring join, a night with no model would have scored (make run's first night did, before this test)."""
    counts_successes = {"none_failed_min_one_success", "one_success", "all_done_min_one_success"}
    branch = dag.get_task("choose_training")
    always_run = {t.task_id for t in branch.get_flat_relatives(upstream=True)} | {branch.task_id}
    joins = [t for t in dag.tasks if t.trigger_rule in counts_successes]
    for join in joins:
        assert not set(join.upstream_task_ids) & always_run, join.task_id
    assert [t.task_id for t in joins] == ["ready_to_score"]
    # Everything that scores hangs below the join with the default rule, so a skipped join skips it.
    for task_id in ("features", "score", "validate_predictions", "publish"):
        assert dag.get_task(task_id).trigger_rule == "all_success"
        assert "ready_to_score" in {t.task_id for t in dag.get_task(task_id).get_flat_relatives(upstream=True)}


def test_spark_stages_carry_the_delta_connector(dag):
    """spark-submit fixes the driver's classpath before Python starts: the jars must be on the command line."""
    from jobs.core.classpath import DELTA_CONF, delta_jars

    task = dag.get_task("ingest")
    assert task.jars == ",".join(delta_jars()) and any("delta-spark_" in j for j in task.jars.split(","))
    assert DELTA_CONF.items() <= task.conf.items()


def test_settings_are_read_when_a_task_runs_not_when_the_file_is_parsed(dag, monkeypatch):
    """The stages read their own settings as they run; the DAG passes only what differs (the nightly warm start,
    through the setting() macro, rendered at run time) and the run date check_params returned."""
    import argparse

    from airflow.sdk.definitions.xcom_arg import XComArg

    from jobs import train as train_stage
    from jobs.core.config import PipelineConfig, fill_from_settings

    def options(task_id: str) -> set[str]:
        return {a for a in dag.get_task(task_id).application_args if isinstance(a, str)}

    train = dag.get_task("train")
    assert not {"--launcher", "--workers", "--epochs", "--batch-size", "--lake"} & options("train")
    assert not {"--top-k", "--segment-size", "--min-propensity", "--lake"} & options("score")
    # The run date is check_params' return value (a TaskFlow XComArg), not a templated xcom_pull.
    date = train.application_args[train.application_args.index("--date") + 1]
    assert isinstance(date, XComArg) and date.operator.task_id == "check_params"
    monkeypatch.setenv("IM_TRAINING_WARM_START", "never")
    monkeypatch.setenv("IM_TRAINING_LAUNCHER", "spark")
    rendered = train.render_template(train.application_args[3:5], {}, jinja_env=dag.get_template_env())
    assert rendered == ["--warm-start", "never"]
    parser = argparse.ArgumentParser()
    train_stage.add_arguments(parser)
    args = parser.parse_args([])
    fill_from_settings(args, PipelineConfig(), {"launcher": "training_launcher"})
    assert args.launcher == "spark"


@pytest.mark.parametrize("day, mode, due", [
    (dt.date(2024, 11, 3), "weekly", True), (dt.date(2024, 11, 4), "weekly", False),
    (dt.date(2024, 11, 4), "always", True), (dt.date(2024, 11, 3), "never", False)])
def test_maintenance_runs_weekly_unless_told_otherwise(day, mode, due):
    from dags.nightly.decisions import maintenance_due

    assert maintenance_due(day, mode) is due


def test_spark_stages_submit_the_jobs_entry_point_with_the_run_date(dag):
    from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

    for task_id, stage in SPARK_STAGES.items():
        task = dag.get_task(task_id)
        assert isinstance(task, SparkSubmitOperator), task_id
        assert task.application == str(ROOT / "jobs" / "__main__.py")
        assert task.application_args[0] == stage and "--date" in task.application_args
        assert task.retries >= 1 and task.retry_exponential_backoff, task_id
        assert task.on_failure_callback


def test_every_table_the_dag_writes_is_an_asset_with_its_writers_and_readers(dag):
    """Lineage: each lake table is some task's outlet, each task's inlets are written by some task of the DAG (or
    are the landing zone), and every asset is a folder of the configured lake."""
    from jobs.core.config import PipelineConfig
    from jobs.core.tables import PARTITIONS

    outlets = {t.task_id: {a.name for a in t.outlets} for t in dag.tasks}
    inlets = {t.task_id: {a.name for a in t.inlets} for t in dag.tasks}
    written = set().union(*outlets.values())
    assert set(PARTITIONS) <= written, f"tables no task writes: {set(PARTITIONS) - written}"
    assert outlets["publish"] == {"user_interest_predictions", "category_demand_forecast", "marketing_segments",
                                  "pipeline_runs"}
    assert outlets["ingest"] == {"events_clean", "events_quarantine", "pipeline_runs"}
    assert "pipeline_runs" in outlets["maintain"] and len(outlets["maintain"]) == 1
    for task_id, names in inlets.items():
        assert names <= written | {"landing"}, (task_id, names - written)
    # the flow from landing to the published tables, through the DAG's own edges
    assert "landing" in inlets["wait_for_landing"] and "landing" in inlets["ingest"]
    assert inlets["publish"] == {"_candidates"} and "_candidates" in outlets["score"]
    assert outlets["refresh_sql_catalog"] == {"sql_catalog"} and outlets["dashboard"] == {"dashboard"}
    lake = PipelineConfig().lake.resolve()
    for task in dag.tasks:
        for item in [*task.inlets, *task.outlets]:
            assert item.uri.startswith(lake.as_uri() + "/") and item.group == "interest_migration", item


def test_production_hygiene(dag):
    assert dag.max_active_runs == 1 and dag.dagrun_timeout and dag.catchup is False
    sensor = dag.get_task("wait_for_landing")
    assert sensor.mode == "reschedule" and sensor.timeout > 0 and sensor.retries >= 1
    assert dag.get_task("check_params").retries == 0, "a bad param fails at once"
    assert {"interest-migration", "nightly"} <= set(dag.tags)
    assert dag.deadline, "a DeadlineAlert is configured by default"
    assert dag.doc_md and "Retraining" in dag.doc_md
    assert dag.timetable.expression == "0 2 * * *"


@pytest.mark.parametrize("name, value, accepted", [
    ("retrain", "always", True), ("retrain", "sometimes", False),
    ("user_sample_fraction", 0.25, True), ("user_sample_fraction", 0, False), ("user_sample_fraction", 1.5, False),
    ("session_gap_minutes", 45, True), ("session_gap_minutes", 0, False), ("session_gap_minutes", "30", False),
    ("run_date", "2024-11-03", True), ("run_date", None, True),
])
def test_params_are_typed_and_validated(dag, name, value, accepted):
    from airflow.sdk.exceptions import ParamValidationError

    params = copy.deepcopy(dag.params)
    if accepted:
        params[name] = value
        params.validate()
    else:
        with pytest.raises(ParamValidationError):
            params[name] = value
            params.validate()


def test_run_date_defaults_to_the_day_before_the_logical_date_and_refuses_nonsense():
    logical = dt.datetime(2024, 11, 2, 2, 0, tzinfo=dt.timezone.utc)
    assert resolve_run_date({"run_date": None}, logical) == dt.date(2024, 11, 1)
    assert resolve_run_date({"run_date": "2024-10-30"}, logical) == dt.date(2024, 10, 30)
    for params, message in [({"run_date": "2024-13-01"}, "YYYY-MM-DD"), ({"run_date": "2999-01-01"}, "not ended"),
                            ({"user_sample_fraction": 0}, "(0, 1]"), ({"retrain": "maybe"}, "auto, always")]:
        with pytest.raises(PipelineError, match=message.replace("(", r"\(").replace("]", r"\]")):
            resolve_run_date(params, logical)
    with pytest.raises(PipelineError, match="run_date param"):
        resolve_run_date({}, None)


def test_landing_sensor_waits_for_a_file_in_the_partition(tmp_path):
    day = dt.date(2024, 11, 1)
    partition = tmp_path / "raw" / "events" / f"ingest_date={day}"
    assert not landing_ready(tmp_path, day)
    partition.mkdir(parents=True)
    (partition / "_SUCCESS.tmp").write_text("")
    assert not landing_ready(tmp_path, day)
    (partition / "part-0.jsonl.gz").write_bytes(b"")
    assert landing_ready(tmp_path, day)


def test_failure_summary_names_the_task_the_date_and_the_stage_reason():
    error = ("Cannot execute: spark-submit ...\nvalidate events_clean: 23 expectations\n"
             "error: ingest: events_clean 2024-10-06: 1 critical expectation(s) failed; nothing published\n"
             "Data Docs: /lake/_gx/index.html")
    text = failure_summary(DAG_ID, "scheduled__x", "2024-10-06", "ingest", 3, 3, error, "/lake")
    assert "failed at task ingest (attempt 3 of 3)" in text and "event date 2024-10-06" in text
    assert "1 critical expectation(s) failed" in text and "\n" not in text


def test_the_dag_module_imports_neither_spark_nor_tensorflow():
    code = ("import sys, runpy; runpy.run_path(sys.argv[1]); "
            "print(sorted(m for m in ('pyspark', 'tensorflow', 'great_expectations') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code, str(ROOT / "dags" / "nightly_interest_migration.py")],
                         capture_output=True, text=True, cwd=ROOT, check=True).stdout
    assert json.loads(out.strip().splitlines()[-1].replace("'", '"')) == []


@pytest.mark.parametrize("task_id", ["ingest", "dedupe", "sessionize", "validate"])
def test_volume_is_acknowledged_by_the_param_and_in_every_backfill_run(dag, task_id):
    from types import SimpleNamespace

    from jobs.cli import build_parser

    from airflow.sdk.api.datamodels._generated import DagRunType  # what a task's context holds, an enum

    task = dag.get_task(task_id)
    template = next(a for a in task.application_args if isinstance(a, str) and "acknowledge" in a)
    rendered = {}
    for run_type, acknowledged in (("scheduled", False), ("manual", True), ("backfill", False)):
        context = {"params": {"acknowledge_volume": acknowledged},
                   "dag_run": SimpleNamespace(run_type=DagRunType(run_type))}
        rendered[(run_type, acknowledged)] = task.render_template(template, context, jinja_env=dag.get_template_env())
    assert rendered == {("scheduled", False): "--no-acknowledge-volume", ("manual", True): "--acknowledge-volume",
                        ("backfill", False): "--acknowledge-volume"}
    stage = task.application_args[0]
    extra = ["--table", "events"] if stage == "validate" else []
    args = build_parser(stage).parse_args([stage, "--date", "2024-11-02", *extra, rendered[("backfill", False)]])
    assert args.acknowledge_volume is True


def test_the_landing_sensor_is_told_a_backfill_as_its_value(dag):
    from types import SimpleNamespace

    from airflow.sdk.api.datamodels._generated import DagRunType

    sensor = dag.get_task("wait_for_landing")
    for run_type, expected in (("backfill", "backfill"), ("scheduled", "other"), ("manual", "other")):
        context = {"dag_run": SimpleNamespace(run_type=DagRunType(run_type))}
        rendered = sensor.render_template(sensor.op_kwargs["run_type"], context, jinja_env=dag.get_template_env())
        assert rendered == expected


def test_in_a_backfill_a_date_without_delivery_passes_once_a_later_date_landed(tmp_path):
    closed, later = dt.date(2024, 12, 25), dt.date(2024, 12, 26)
    assert not landing_ready(tmp_path, closed, backfill=True)  # nothing later either: still waiting
    partition = tmp_path / "raw" / "events" / f"ingest_date={later}"
    partition.mkdir(parents=True)
    (partition / "part-0.jsonl").write_text("{}\n")
    assert landing_ready(tmp_path, closed, backfill=True)
    assert not landing_ready(tmp_path, closed)  # the nightly run waits (and times out: an outage stops the night)
