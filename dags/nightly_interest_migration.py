"""
# Interest migration, nightly

For one event date **D** (by default the day before the run's logical date, so
the 02:00 UTC run of day D+1 processes the complete day D):

`check_params` → `wait_for_landing` → `ingest` → `dedupe` → `sessionize` →
`validate` (events and sessions) → `choose_training` → [`features_training`
→ `train` → `evaluate` → `champion_ready`, or `keep_champion`, or
`no_model_yet`] → `ready_to_score` → `features`
(score-mode sequences) → `score` (held) → `validate_predictions` → `publish`
→ three side by side: `refresh_sql_catalog` (the read-only DuckDB database of
the lake's tables, and Spark's catalog), `dashboard` (the night's page, under
Browse in the UI), and `maintenance_due` → `maintain` (weekly: OPTIMIZE,
VACUUM, leftovers).

**Lineage**: every table a task reads or writes is one of its inlets or
outlets (`dags/nightly/lineage.py`), so the Assets view shows the flow from
the landing zone to the published tables. **Alerts**: a failed task, a
critical data-quality result and a missed deadline are logged and, with the
SMTP connection `IM_ALERT_SMTP_CONN_ID` (default `smtp_alerts`) defined,
mailed to `IM_ALERT_TO` (`dags/nightly/alerts.py`).

Every Spark stage is `python -m jobs <stage>` through `SparkSubmitOperator`
(connection `IM_SPARK_CONN_ID`, default `spark_default`; when no such
connection is defined the DAG defines it as local Spark), or, when
`IM_SPARK_REMOTE` names a Spark Connect server, a plain command that is a
client of that server's long-lived driver (`StageCommandOperator`). Each stage
validates what it writes with its Great Expectations suite; a critical
failure fails the task and nothing downstream runs, so the published tables
keep their previous partitions. Predictions are published by `publish` only
after `validate_predictions` passed them.

**Retraining** is a branch of this DAG rather than a second DAG: on the days it
is due, train → evaluate (promote) must finish before scoring, and a branch
states that ordering in one run while the other days skip straight to
scoring. `choose_training` (see `dags/nightly/retraining.py`) retrains when the
`retrain` param is `always`, or, with `auto`, when there is no champion, the
champion is `IM_RETRAIN_EVERY_DAYS` (7) days old, or the category-mix drift
recorded by `validate` for D exceeds `IM_RETRAIN_DRIFT` (0.1). A lake too
young to train on scores with the existing champion, or skips scoring until
one exists.

**Params** (Trigger DAG w/ config): `run_date` (YYYY-MM-DD, default the day
before the logical date), `retrain` (`auto|always|never`),
`user_sample_fraction` (0–1], `session_gap_minutes` (1–1440), `maintain`
(`weekly|always|never`).

**Backfill**: `airflow backfill create --dag-id interest_migration_nightly
--from-date 2024-11-02 --to-date 2024-11-08` creates one run per logical
date; each processes the day before it, exactly as the nightly run would.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import os
import sys
from pathlib import Path

from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.providers.standard.sensors.python import PythonSensor
from airflow.sdk import (AsyncCallback, DeadlineAlert, DeadlineReference, Param, TriggerRule, chain, dag,
                         get_current_context, task)

from dags.nightly.alerts import FailureAlert
from dags.nightly.lineage import lineage
from dags.nightly.stage_command import StageCommandOperator
from jobs.core.classpath import DELTA_CONF, delta_jars, driver_java_options  # free of pyspark: safe to parse
from jobs.core.config import PipelineConfig, param_schema

REPO = Path(__file__).resolve().parents[1]
# Every IM_* setting, with its default and meaning, is in jobs/core/config.py (docs/settings.md). Only what shapes
# the DAG itself is read when the file is parsed (schedule, retries, timeouts, the Spark connection, the driver's
# JVM options, the lake the published assets name); a bad value fails the parse with one line naming the
# variable. Everything a stage does is read by the stage when its task runs (its command-line defaults are the
# settings), or by a task through the setting() macro below.
SETTINGS = PipelineConfig()
LAKE = SETTINGS.lake
SPARK_CONN_ID = SETTINGS.spark_conn_id
SPARK_CONF = {"spark.sql.session.timeZone": "UTC", "spark.ui.enabled": str(SETTINGS.spark_ui).lower(),
              "spark.driver.extraJavaOptions": driver_java_options(SETTINGS.spark_driver_java_options)}

# The local default: a spark_default connection to local Spark unless the environment defines one.
os.environ.setdefault(f"AIRFLOW_CONN_{SPARK_CONN_ID.upper()}", json.dumps({"conn_type": "spark", "host": "local[*]"}))

log = logging.getLogger(__name__)


def setting(name: str):
    """A setting's value when the task runs (the ``setting`` macro in templates, and the Python tasks)."""
    return getattr(PipelineConfig(), name)


def _deadline_alert() -> DeadlineAlert | None:
    """Warn when a run has not finished IM_DEADLINE_HOURS after it was queued (the predictions are late)."""
    if SETTINGS.deadline_hours <= 0:
        return None
    interval = dt.timedelta(hours=SETTINGS.deadline_hours)
    return DeadlineAlert(reference=DeadlineReference.DAGRUN_QUEUED_AT, interval=interval,
                         callback=AsyncCallback("dags.nightly.alerts.deadline_missed",
                                                kwargs={"dag_id": "interest_migration_nightly",
                                                        "deadline": str(interval)}))


BACKFILL = "backfill"  # DagRunType.BACKFILL_JOB's value
# The volume gates' acknowledgement: the operator's param, or any backfill run (a day of a store's history with no
# events is a closed day, reported as a warning with its date, and the other dates go on).
ACKNOWLEDGE_VOLUME = ("{{ '--acknowledge-volume' if params.acknowledge_volume or dag_run.run_type == '" + BACKFILL
                      + "' else '--no-acknowledge-volume' }}")


def spark_job(task_id: str, run_date, *args: str, **kwargs) -> SparkSubmitOperator | StageCommandOperator:
    """``python -m jobs <stage> --date RUN_DATE ARGS`` under spark-submit; ``run_date`` is check_params' return
    value. The stage reads its settings (the lake among them) from the environment it inherits, when it runs.

    With a Spark Connect server (``IM_SPARK_REMOTE``) the stage is a plain command, a client of that server's
    warm driver, except training with the Spark launcher (barrier tasks need a driver of its own)."""
    stage = kwargs.pop("stage", task_id)
    kwargs = {**lineage(task_id, LAKE), **kwargs}
    if SETTINGS.spark_remote and not (stage == "train" and SETTINGS.training_launcher == "spark"):
        return StageCommandOperator(task_id=task_id, stage=stage, arguments=["--date", run_date, *args], **kwargs)
    return SparkSubmitOperator(
        task_id=task_id,
        conn_id=SPARK_CONN_ID,
        application=str(REPO / "jobs" / "__main__.py"),
        application_args=[stage, "--date", run_date, *args],
        name=f"interest-migration-{task_id}",
        # The Delta connector's jars and session settings (jobs/core/classpath.py), found when the file is parsed: a
        # host without them (no `make install`) submits none, and the stage fails with open_lake's one line.
        jars=",".join(delta_jars(required=False)) or None,
        conf={**SPARK_CONF, **DELTA_CONF},
        env_vars={"PYTHONPATH": str(REPO), "PYSPARK_PYTHON": os.environ.get("PYSPARK_PYTHON", sys.executable)},
        **kwargs,
    )


@dag(
    dag_id="interest_migration_nightly",
    schedule=SETTINGS.nightly_schedule,
    start_date=dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=dt.timedelta(hours=8),
    doc_md=__doc__,
    tags=["interest-migration", "nightly", "spark", "tensorflow"],
    default_args={
        "owner": "data-platform",
        "retries": SETTINGS.task_retries,
        "retry_delay": dt.timedelta(seconds=SETTINGS.retry_delay_seconds),
        "retry_exponential_backoff": True,
        "max_retry_delay": dt.timedelta(minutes=30),
        "execution_timeout": dt.timedelta(hours=2),
        # Logged, and mailed when an SMTP connection is configured (dags/nightly/alerts.py).
        "on_failure_callback": [FailureAlert()],
    },
    deadline=_deadline_alert(),
    user_defined_macros={"setting": setting},
    params={
        "run_date": Param(None, type=["null", "string"], format="date",
                          description="event date to process, YYYY-MM-DD (default: the day before the logical date)"),
        "retrain": Param("auto", type="string", enum=["auto", "always", "never"],
                         description="auto: when due (weekly, drift, no champion); always; never"),
        "user_sample_fraction": Param(SETTINGS.user_sample_fraction, type="number",
                                      **param_schema("user_sample_fraction"),
                                      description="share of users (hash of user_id) to train on and score"),
        "session_gap_minutes": Param(SETTINGS.session_gap_minutes, type="integer", **param_schema("session_gap_minutes"),
                                     description="inactivity that ends a session"),
        "acknowledge_volume": Param(False, type="boolean",
                                    description="the run date's row count is known to be off (an outage, a closed "
                                                "day): report its volume anomaly as a warning instead of stopping. "
                                                "Backfill runs always do (a history has closed days)"),
        "maintain": Param("weekly", type="string", enum=["weekly", "always", "never"],
                          description="OPTIMIZE/VACUUM the lake after the run: on Sundays' dates, always, or never"),
    },
)
def interest_migration_nightly():
    @task(retries=0)
    def check_params() -> str:
        """Resolve the event date and refuse nonsense at once (the schema already checked the types). Its return
        value is the run date every later task gets."""
        from dags.nightly.decisions import resolve_run_date

        context = get_current_context()
        return resolve_run_date(context["params"], context.get("logical_date")).isoformat()

    run_date = check_params()
    # Retries like every task: a timeout (no landing) still fails at once, since Airflow never retries
    # AirflowSensorTimeout, but a reschedule poke the scheduler fails by a race (apache/airflow#71172,
    # open in 3.3: the previous poke's executor event arrives after the next poke was queued) is retried.
    wait_for_landing = PythonSensor(
        task_id="wait_for_landing",
        python_callable=_landing_ready,
        # Compared inside Jinja: run_type is an enum whose rendered text is "DagRunType.BACKFILL", not its value.
        op_kwargs={"run_date": run_date, "run_type": "{{ '" + BACKFILL + "' if dag_run.run_type == '" + BACKFILL
                   + "' else 'other' }}"},
        mode="reschedule",
        **lineage("wait_for_landing", LAKE),
        poke_interval=SETTINGS.landing_poke_seconds,
        timeout=dt.timedelta(minutes=SETTINGS.landing_timeout_minutes).total_seconds(),
    )
    ingest = spark_job("ingest", run_date, ACKNOWLEDGE_VOLUME)
    # D - 1 again first: its late events landed with D's ingest.
    dedupe = spark_job("dedupe", run_date, "--previous-days", "1", ACKNOWLEDGE_VOLUME)
    sessionize = spark_job("sessionize", run_date, "--previous-days", "1",
                           "--gap-minutes", "{{ params.session_gap_minutes }}", ACKNOWLEDGE_VOLUME)
    validate = spark_job("validate", run_date, "--table", "events", "--table", "sessions", ACKNOWLEDGE_VOLUME)
    sample = ["--user-sample-fraction", "{{ params.user_sample_fraction }}"]

    @task.branch
    def choose_training(run_date: str) -> str:
        from dags.nightly.retraining import decide_retraining

        context, settings = get_current_context(), PipelineConfig()
        day = dt.date.fromisoformat(run_date)
        decision = decide_retraining(settings.lake, day, context["params"]["retrain"], settings.horizon_days,
                                     settings.retrain_every_days, settings.retrain_drift)
        log.info("retraining for %s: %s (%s)", day, decision.retrain, decision.reason)
        if decision.retrain:
            return "features_training"
        return "keep_champion" if decision.score else "no_model_yet"

    # Horizon, history window, workers, epochs, batch size, launcher: the stages' own settings, read as they run.
    features_training = spark_job("features_training", run_date, "--mode", "train", *sample, stage="features")
    # The nightly default differs from the command line's (never): fine-tune the champion when it can.
    train = spark_job("train", run_date, "--warm-start", "{{ setting('training_warm_start') }}",
                      "--run-id", "{{ run_id }}")
    # Exactly the version this run's train task produced (not the newest in the registry).
    evaluate = spark_job("evaluate", run_date, "--run-id", "{{ run_id }}")

    @task.short_circuit(ignore_downstream_trigger_rules=False)
    def champion_ready() -> bool:
        """After training: score only if there is a champion (a candidate that lost to the baselines is not
        promoted; evaluate then makes the shallow baseline the fallback champion, jobs/evaluate/fallback.py,
        so there is none only when evaluate did not decide)."""
        from models.registry import Registry

        champion = Registry(setting("lake")).champion()
        log.info("champion after evaluate: %s", champion or "none (the candidate did not beat the baselines)")
        return champion is not None
    keep_champion = EmptyOperator(task_id="keep_champion")
    no_model_yet = EmptyOperator(task_id="no_model_yet", doc_md="Too little history to train, and no champion.")
    # The join after the branch: runs after whichever of champion_ready or keep_champion ran, skipped with
    # no_model_yet. A task of its own because every Spark task also has check_params upstream (the run date is
    # its return value), whose success alone would satisfy "min one success" on a night with no model.
    ready_to_score = EmptyOperator(task_id="ready_to_score", trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS)
    # Score sequences reach back as far as the champion's training sequences did (its metadata says).
    features = spark_job("features", run_date, "--mode", "score", *sample)
    # Top-k, segment size and propensity threshold: score's own settings.
    score = spark_job("score", run_date, "--hold", "--from-features", *sample)
    validate_predictions = spark_job("validate_predictions", run_date, "--table", "user_interest_predictions",
                                     stage="validate")
    publish = spark_job("publish", run_date)
    # The read-only DuckDB database of the lake's tables, and (with a Spark Connect server) Spark's catalog: what
    # analysts' own tools open (jobs/catalog.py). After whatever the night wrote, published or not.
    refresh_sql_catalog = StageCommandOperator(task_id="refresh_sql_catalog", stage="catalog", arguments=[],
                                               trigger_rule=TriggerRule.NONE_FAILED,
                                               **lineage("refresh_sql_catalog", LAKE))

    @task.short_circuit(trigger_rule=TriggerRule.NONE_FAILED)
    def maintenance_due(run_date: str) -> bool:
        """Once a week (run dates that are Sundays), or when the ``maintain`` param says always/never."""
        from dags.nightly.decisions import maintenance_due as due

        return due(dt.date.fromisoformat(run_date), get_current_context()["params"]["maintain"])

    # OPTIMIZE, VACUUM and the staging/snapshot/checkpoint sweep, once nothing else of the night writes.
    maintain = spark_job("maintain", run_date)

    branch = choose_training(run_date)
    chain(run_date, wait_for_landing, ingest, dedupe, sessionize, validate, branch)
    chain(branch, features_training, train, evaluate, champion_ready(), ready_to_score)
    chain(branch, keep_champion, ready_to_score, features, score, validate_predictions, publish)
    branch >> no_model_yet
    due = maintenance_due(run_date)
    # The night's dashboard page (jobs/dashboard.py), linked from the UI by plugins/interest_migration.py.
    dashboard = StageCommandOperator(task_id="dashboard", stage="dashboard", arguments=["--date", run_date],
                                     trigger_rule=TriggerRule.NONE_FAILED, **lineage("dashboard", LAKE))
    # Side outputs, each after the night's writes: neither waits on the other, and a failure of either never
    # stops the weekly maintenance.
    [publish, no_model_yet] >> refresh_sql_catalog
    [publish, no_model_yet] >> dashboard
    [publish, no_model_yet] >> due >> maintain


def _landing_ready(run_date: str, run_type: str) -> bool:
    from dags.nightly.decisions import landing_ready

    return landing_ready(setting("lake"), dt.date.fromisoformat(run_date), backfill=run_type == BACKFILL)


interest_migration_nightly()
