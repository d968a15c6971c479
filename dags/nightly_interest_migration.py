"""
# Interest migration, nightly

For one event date **D** (by default the day before the run's logical date, so
the 02:00 UTC run of day D+1 processes the complete day D):

`check_params` → `wait_for_landing` → `ingest` → `dedupe` → `sessionize` →
`validate` (events and sessions) → `choose_training` → [`features_training`
→ `train` → `evaluate` → `champion_ready`, or `keep_champion`, or
`no_model_yet`] → `features`
(score-mode sequences) → `score` (held) → `validate_predictions` → `publish`
→ `maintenance_due` → `maintain` (weekly: OPTIMIZE, VACUUM, leftovers).

Every Spark stage is `python -m jobs <stage>` through `SparkSubmitOperator`
(connection `IM_SPARK_CONN_ID`, default `spark_default`; when no such
connection is defined the DAG defines it as local Spark). Each stage
validates what it writes with its Great Expectations suite; a critical
failure fails the task and nothing downstream runs, so the published tables
keep their previous partitions. Predictions are published by `publish` only
after `validate_predictions` passed them.

**Retraining** is a branch of this DAG rather than a second DAG: on the days it
is due, train → evaluate (promote) must finish before scoring, and a branch
states that ordering in one run while the other days skip straight to
scoring. `choose_training` (see `jobs/retraining.py`) retrains when the
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
from airflow.sdk import (Asset, AsyncCallback, DeadlineAlert, DeadlineReference, Param, TriggerRule, chain, dag,
                         get_current_context, task)

from jobs.classpath import DELTA_CONF, delta_jars  # free of pyspark: safe when the file is parsed
from jobs.config import PipelineConfig

REPO = Path(__file__).resolve().parents[1]
# Every IM_* setting, with its default and meaning, is in jobs/config.py (docs/settings.md): read once when the
# file is parsed; a bad value fails the parse with one line naming the variable.
SETTINGS = PipelineConfig()
LAKE = SETTINGS.lake
SPARK_CONN_ID = SETTINGS.spark_conn_id
SCHEDULE = SETTINGS.nightly_schedule
HORIZON_DAYS, HISTORY_DAYS = SETTINGS.horizon_days, SETTINGS.history_days
# Of the four variants (Transformer or LSTM, from scratch or warm-started) the warm-started Transformer had the
# best validation NDCG@10 on the 20k-user evaluation (docs/model.md, bench/bench_model_variants.py), hence auto.
TRAINING_ARGS = ["--workers", str(SETTINGS.training_workers), "--epochs", str(SETTINGS.training_epochs),
                 "--batch-size", str(SETTINGS.training_batch_size), "--launcher", SETTINGS.training_launcher,
                 "--warm-start", SETTINGS.training_warm_start]
# What score publishes: top categories per user, and the marketing segments' size and threshold.
SCORE_OPTIONS = ["--top-k", str(SETTINGS.top_k), "--segment-size", str(SETTINGS.segment_size),
                 "--min-propensity", str(SETTINGS.min_propensity)]
LANDING_TIMEOUT = dt.timedelta(minutes=SETTINGS.landing_timeout_minutes)
RETRY_DELAY = dt.timedelta(seconds=SETTINGS.retry_delay_seconds)
# 0 turns the alert off: `airflow dags test` in 3.3.2 cannot run a DAG that has one (it looks the alert up by id).
DEADLINE_HOURS = SETTINGS.deadline_hours
SPARK_CONF = {"spark.sql.session.timeZone": "UTC", "spark.driver.extraJavaOptions": SETTINGS.spark_driver_java_options}

# The local default: a spark_default connection to local Spark unless the environment defines one.
os.environ.setdefault(f"AIRFLOW_CONN_{SPARK_CONN_ID.upper()}", json.dumps({"conn_type": "spark", "host": "local[*]"}))

RUN_DATE = "{{ ti.xcom_pull(task_ids='check_params') }}"
PUBLISHED = [Asset(name=table, uri=f"file://{LAKE}/{table}", group="interest_migration")
             for table in ("user_interest_predictions", "category_demand_forecast", "marketing_segments")]
log = logging.getLogger(__name__)


def _on_task_failure(context) -> None:
    from jobs.alerts import failure_summary

    ti = context["ti"]
    log.error(failure_summary(ti.dag_id, ti.run_id, ti.xcom_pull(task_ids="check_params"), ti.task_id,
                              ti.try_number, ti.max_tries + 1 if ti.max_tries is not None else None,
                              context.get("exception"), str(LAKE)))


def _deadline_alert() -> DeadlineAlert | None:
    """Warn when a run has not finished IM_DEADLINE_HOURS after it was queued (the predictions are late)."""
    if DEADLINE_HOURS <= 0:
        return None
    interval = dt.timedelta(hours=DEADLINE_HOURS)
    return DeadlineAlert(reference=DeadlineReference.DAGRUN_QUEUED_AT, interval=interval,
                         callback=AsyncCallback("jobs.alerts.deadline_missed",
                                                kwargs={"dag_id": "interest_migration_nightly",
                                                        "deadline": str(interval)}))


def spark_job(task_id: str, *args: str, **kwargs) -> SparkSubmitOperator:
    """``python -m jobs <stage> --lake LAKE --date RUN_DATE ARGS`` under spark-submit."""
    stage = kwargs.pop("stage", task_id)
    return SparkSubmitOperator(
        task_id=task_id,
        conn_id=SPARK_CONN_ID,
        application=str(REPO / "jobs" / "__main__.py"),
        application_args=[stage, "--lake", str(LAKE), "--date", RUN_DATE, *args],
        name=f"interest-migration-{task_id}",
        # The Delta connector's jars and session settings (jobs/classpath.py), found when the file is parsed: a
        # host without them (no `make install`) submits none, and the stage fails with open_lake's one line.
        jars=",".join(delta_jars(required=False)) or None,
        conf={**SPARK_CONF, **DELTA_CONF},
        env_vars={"PYTHONPATH": str(REPO), "PYSPARK_PYTHON": os.environ.get("PYSPARK_PYTHON", sys.executable),
                  "IM_LAKE": str(LAKE)},
        **kwargs,
    )


@dag(
    dag_id="interest_migration_nightly",
    schedule=SCHEDULE,
    start_date=dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=dt.timedelta(hours=8),
    doc_md=__doc__,
    tags=["interest-migration", "nightly", "spark", "tensorflow"],
    default_args={
        "owner": "data-platform",
        "retries": SETTINGS.task_retries,
        "retry_delay": RETRY_DELAY,
        "retry_exponential_backoff": True,
        "max_retry_delay": dt.timedelta(minutes=30),
        "execution_timeout": dt.timedelta(hours=2),
        "on_failure_callback": _on_task_failure,
    },
    deadline=_deadline_alert(),
    params={
        "run_date": Param(None, type=["null", "string"], format="date",
                          description="event date to process, YYYY-MM-DD (default: the day before the logical date)"),
        "retrain": Param("auto", type="string", enum=["auto", "always", "never"],
                         description="auto: when due (weekly, drift, no champion); always; never"),
        "user_sample_fraction": Param(1.0, type="number", exclusiveMinimum=0, maximum=1,
                                      description="share of users (hash of user_id) to train on and score"),
        "session_gap_minutes": Param(30, type="integer", minimum=1, maximum=1440,
                                     description="inactivity that ends a session"),
        "maintain": Param("weekly", type="string", enum=["weekly", "always", "never"],
                          description="OPTIMIZE/VACUUM the lake after the run: on Sundays' dates, always, or never"),
    },
)
def interest_migration_nightly():
    @task(retries=0)
    def check_params() -> str:
        """Resolve the event date and refuse nonsense at once (the schema already checked the types)."""
        from jobs.orchestration import resolve_run_date

        context = get_current_context()
        return resolve_run_date(context["params"], context.get("logical_date")).isoformat()

    # Retries like every task: a timeout (no landing) still fails at once, since Airflow never retries
    # AirflowSensorTimeout, but a reschedule poke the scheduler fails by a race (apache/airflow#71172,
    # open in 3.3: the previous poke's executor event arrives after the next poke was queued) is retried.
    wait_for_landing = PythonSensor(
        task_id="wait_for_landing",
        python_callable=_landing_ready,
        op_kwargs={"run_date": RUN_DATE},
        mode="reschedule",
        poke_interval=SETTINGS.landing_poke_seconds,
        timeout=LANDING_TIMEOUT.total_seconds(),
    )
    ingest = spark_job("ingest")
    # D - 1 again first: its late events landed with D's ingest.
    dedupe = spark_job("dedupe", "--previous-days", "1")
    sessionize = spark_job("sessionize", "--previous-days", "1", "--gap-minutes", "{{ params.session_gap_minutes }}")
    validate = spark_job("validate", "--table", "events", "--table", "sessions")
    sample = ["--user-sample-fraction", "{{ params.user_sample_fraction }}"]

    @task.branch
    def choose_training() -> str:
        from jobs.retraining import decide_retraining

        context = get_current_context()
        run_date = dt.date.fromisoformat(context["ti"].xcom_pull(task_ids="check_params"))
        decision = decide_retraining(LAKE, run_date, context["params"]["retrain"], HORIZON_DAYS,
                                     SETTINGS.retrain_every_days, SETTINGS.retrain_drift)
        log.info("retraining for %s: %s (%s)", run_date, decision.retrain, decision.reason)
        if decision.retrain:
            return "features_training"
        return "keep_champion" if decision.score else "no_model_yet"

    features_training = spark_job("features_training", "--mode", "train", "--horizon-days", str(HORIZON_DAYS),
                                  "--history-days", str(HISTORY_DAYS), *sample, stage="features")
    train = spark_job("train", *TRAINING_ARGS, "--run-id", "{{ run_id }}")
    # Exactly the version this run's train task produced (not the newest in the registry).
    evaluate = spark_job("evaluate", "--run-id", "{{ run_id }}")

    @task.short_circuit(ignore_downstream_trigger_rules=False)
    def champion_ready() -> bool:
        """After training: score only if there is a champion (a first candidate that lost to the baselines is
        not promoted, and predictions worse than the baselines are not published)."""
        from models.registry import Registry

        champion = Registry(LAKE).champion()
        log.info("champion after evaluate: %s", champion or "none (the candidate did not beat the baselines)")
        return champion is not None
    keep_champion = EmptyOperator(task_id="keep_champion")
    no_model_yet = EmptyOperator(task_id="no_model_yet", doc_md="Too little history to train, and no champion.")
    # Runs after whichever of train/evaluate or keep_champion ran; skipped with no_model_yet.
    # Score sequences reach back as far as the champion's training sequences did (its metadata says).
    features = spark_job("features", "--mode", "score", *sample,
                         trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS)
    score = spark_job("score", "--hold", "--from-features", *SCORE_OPTIONS, *sample)
    validate_predictions = spark_job("validate_predictions", "--table", "user_interest_predictions",
                                     stage="validate")
    publish = spark_job("publish", outlets=PUBLISHED)

    @task.short_circuit(trigger_rule=TriggerRule.NONE_FAILED)
    def maintenance_due() -> bool:
        """Once a week (run dates that are Sundays), or when the ``maintain`` param says always/never."""
        from jobs.orchestration import maintenance_due as due

        context = get_current_context()
        return due(dt.date.fromisoformat(context["ti"].xcom_pull(task_ids="check_params")),
                   context["params"]["maintain"])

    # OPTIMIZE, VACUUM and the staging/snapshot/checkpoint sweep, once nothing else of the night writes.
    maintain = spark_job("maintain")

    branch = choose_training()
    chain(check_params(), wait_for_landing, ingest, dedupe, sessionize, validate, branch)
    chain(branch, features_training, train, evaluate, champion_ready(), features)
    chain(branch, keep_champion, features, score, validate_predictions, publish)
    branch >> no_model_yet
    due = maintenance_due()
    [publish, no_model_yet] >> due >> maintain


def _landing_ready(run_date: str) -> bool:
    from jobs.orchestration import landing_ready

    return landing_ready(LAKE, dt.date.fromisoformat(run_date))


interest_migration_nightly()
