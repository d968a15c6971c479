"""Every setting of the pipeline in one typed object, read from ``IM_*`` environment variables.

The command line, the nightly DAG and the local run script take their defaults from here, and
docs/settings.md is generated from it (``python -m jobs.core.config``), so a default is written once.
Every default works on a laptop; a deployment overrides them with environment variables (the
compose file's ``x-im-env``). A value that does not parse or is out of range fails with one line
naming the variable, never a traceback.

Transforms never see this object; a stage's ``main()`` unpacks the plain values they need.
"""
from __future__ import annotations

import datetime as dt

from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from jobs.core.errors import PipelineError

REPO = Path(__file__).resolve().parents[2]
ENV_PREFIX = "IM_"


class SettingsError(PipelineError):
    """A setting from the environment that does not parse or is out of range."""


class PipelineConfig(BaseSettings):
    """Where the lake is, which engines to use, the data rules' knobs, and what the nightly run does."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="ignore")

    # Where and with what.
    lake: Path = Field(REPO / "lake", description="lake root: every Delta table, the landing zone, the registry")
    spark_master: str = Field("local[*]", description="Spark master for stages run from the command line")
    spark_remote: str = Field(
        "", pattern=r"^(sc://[^/\s]+.*)?$", description="a Spark Connect server (sc://HOST:PORT, `python -m jobs connect-server` starts one): "
                        "stages run as its clients, on a driver that outlives them, instead of starting their own; "
                        "the DAG then runs them as plain commands, not spark-submits")
    spark_driver_memory: str = Field("3g", description="Spark driver memory (in local mode, all of Spark's heap)")
    spark_driver_java_options: str = Field(
        "-XX:+UseParallelGC",
        description="the driver JVM's options; the throughput collector, because G1's concurrent threads "
                    "compete with the Python workers for the cores where Spark runs locally")
    small_input_bytes: int = Field(
        4 << 20, ge=0,
        description="a stage on a driver of its own whose input on disk (landing files, or the Delta files of "
                    "the partitions it reads) is at most this starts its JVM with the C1 compiler only: on a "
                    "tiny partition 2-5 s quicker, 1.2 s slower at 8.3 MB (220k gzip'd lines), 35% slower at 58 MB "
                    "(docs/performance.md); 0: never. Ignored when IM_SPARK_DRIVER_JAVA_OPTIONS chooses a JIT")
    shuffle_partitions: int = Field(8, ge=1, description="spark.sql.shuffle.partitions")
    spark_jars_dir: Path = Field(REPO / "jars", description="the Delta connector's jars (make install puts them here)")
    spark_class_archive: Path = Field(
        REPO / "jars" / "spark-driver.jsa",
        description="the driver JVM's class-data-sharing archive (make install builds it: scripts/class_archive.py); "
                    "used when the file exists, a quicker start for every stage")
    spark_ui: bool = Field(False, description="start the Spark UI with each stage's driver (off: a short batch "
                                              "job needs neither its port nor its threads; Spark's event log is "
                                              "the record to keep)")
    # The data rules.
    session_gap_minutes: int = Field(30, ge=1, le=1440, description="inactivity that ends a session")
    max_lateness_days: int = Field(3, ge=-1, description="events older than this before their ingest date are "
                                                         "quarantined as stale (-1: no limit, for backfills)")
    max_future_minutes: int = Field(60, ge=0, description="events this far past their ingest date are quarantined")
    max_line_bytes: int = Field(1 << 20, ge=1024, description="a landing line longer than this is quarantined as "
                                                               "oversized_line, unparsed")
    bot_events_per_day: int = Field(1500, ge=1, description="more events for one user on one date: a bot")
    replay_lookback_days: int = Field(2, ge=0, description="days of events a replayed event is looked up in")
    max_session_hours: float = Field(24.0, gt=0, description="a session longer than this fails its suite")
    # Quality gates.
    validate_writes: bool = Field(True, description="validate every prepared partition before publishing it")
    max_quarantine_rate: float = Field(0.05, ge=0, le=1,
                                       description="critical when more of an ingest batch is malformed (bots aside)")
    volume_warning_fraction: float = Field(0.5, ge=0, description="row count off the trailing week's median: warning")
    volume_critical_fraction: float = Field(0.9, ge=0, le=1, description="row count this far below a steady trailing "
                                                                        "week's median (an outage): critical")
    volume_baseline_partitions: int = Field(7, ge=1, le=7, description="earlier partitions, each near their median, "
                                                                       "a critical volume check needs")
    volume_acknowledged: bool = Field(False, description="the run date's volume anomaly is known (an outage, a closed "
                                                         "day): report it as a warning, do not stop")
    max_category_divergence: float = Field(0.1, ge=0,
                                           description="category-mix KL divergence from the trailing week: warning")
    # Maintenance.
    vacuum_retention_hours: float = Field(168, ge=0, description="VACUUM retention: time travel reaches this far")
    abandoned_after_hours: float = Field(24.0, ge=0, description="staging and scratch folders older than this are removed")
    keep_sequence_days: int = Field(28, ge=0, description="user_sequences snapshots kept behind the newest")
    keep_checkpoints: int = Field(3, ge=0, description="model versions whose training checkpoints are kept")
    keep_validation_days: int = Field(
        90, ge=1, description="Great Expectations validation results (and their Data Docs pages) kept, in days of "
                              "run time; maintain removes older ones")
    # Features, training and scoring.
    horizon_days: int = Field(7, ge=1, description="label window H: predictions cover the H days after the cutoff")
    history_days: int = Field(28, ge=1, description="how far back a history reaches when training")
    training_workers: int = Field(2, ge=1, description="TensorFlow workers that train together")
    training_epochs: int = Field(12, ge=1, description="most epochs; validation NDCG@10 chooses how many")
    training_batch_size: int = Field(512, ge=1, description="sequences per training step, split across the workers")
    training_warm_start: Literal["auto", "never"] = Field(
        "auto", description="the nightly DAG's train --warm-start; auto: fine-tune the champion when it has the "
                            "same architecture, else from scratch (the command line's default is never)")
    training_launcher: Literal["local", "spark"] = Field(
        "local", description="local: workers as processes beside the train task; spark: one per barrier task")
    top_k: int = Field(10, ge=1, description="categories per user in top_categories")
    segment_size: int = Field(10_000, ge=1, description="most users per category in marketing_segments")
    min_propensity: float = Field(0.1, ge=0, le=1, description="least probability for a marketing segment")
    user_sample_fraction: float = Field(1.0, gt=0, le=1, description="share of users features and score keep, by a "
                                                                     "hash of user_id (the same users every date)")
    # The nightly DAG.
    nightly_schedule: str = Field("0 2 * * *", description="the DAG's cron schedule (UTC)")
    spark_conn_id: str = Field("spark_default", description="Airflow connection the Spark tasks submit to")
    retrain_every_days: int = Field(7, ge=1, description="retrain when the champion is this many days old")
    retrain_drift: float = Field(0.1, ge=0, description="retrain when the category-mix drift exceeds this")
    landing_timeout_minutes: int = Field(360, ge=1, description="how long to wait for the day's landing files")
    landing_poke_seconds: int = Field(300, ge=1, description="how often to look for them")
    task_retries: int = Field(2, ge=0, description="retries of a failed task (exponential backoff)")
    retry_delay_seconds: int = Field(120, ge=0, description="first retry delay")
    deadline_hours: float = Field(4, ge=0, description="alert when a run takes longer (0: no alert)")
    mlflow_tracking_uri: str = Field("", description="MLflow tracking server for training runs and the registered "
                                     "model (empty: a SQLite store in <lake>/mlflow)")
    mlflow_name: str = Field("interest_migration", min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.\- ]+$",
                             description="the MLflow experiment and registered model of this lake: on a shared "
                             "tracking server, each lake needs its own")
    alert_smtp_conn_id: str = Field("smtp_alerts", description="the Airflow SMTP connection alerts are sent through "
                                    "(failures, a missed deadline, a critical data-quality result); when it is not "
                                    "defined, alerts are only logged")
    alert_to: str = Field("", description="comma-separated addresses alerts go to (empty: the connection's extra "
                          "`to`; neither: only logged)")

    def __init__(self, _command_line: frozenset[str] = frozenset(), **values) -> None:
        """``_command_line``: the names among ``values`` that came from command-line options (with_overrides),
        so that an error names them as such rather than as their environment variable."""
        try:
            super().__init__(**values)
        except ValidationError as error:
            raise SettingsError(_one_line(error, _command_line)) from None

    @field_validator("lake", "spark_jars_dir", "spark_class_archive")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return Path(value).resolve()

    @property
    def landing(self) -> Path:
        """Raw landing zone: generated or delivered files, before ingest."""
        return self.lake / "raw"

    def landing_partition(self, ingest_date: dt.date) -> Path:
        """Where one ingest date's event files land (generate writes there, the DAG waits for it, ingest reads it)."""
        return landing_partition(self.landing, ingest_date)

    def with_overrides(self, **values) -> "PipelineConfig":
        """A copy with the non-None values replaced (command-line overrides), validated like the rest; a bad
        one is named as the command line's value, not as the environment variable."""
        overrides = {k: v for k, v in values.items() if v is not None}
        return type(self)(frozenset(overrides), **{**self.model_dump(), **overrides})


def landing_partition(landing: Path, ingest_date: dt.date) -> Path:
    """One ingest date's folder of event files under a landing zone."""
    return Path(landing) / "events" / f"ingest_date={ingest_date.isoformat()}"


def fill_from_settings(args, config: PipelineConfig, options: dict[str, str]) -> None:
    """Each command-line option left unset (None) takes its setting's value: ``options`` maps the option's
    attribute on ``args`` to the setting's name."""
    for option, setting in options.items():
        if getattr(args, option) is None:
            setattr(args, option, getattr(config, setting))


def default_help(setting: str) -> str:
    """How an option's help names its default: the setting's variable and declared default."""
    return f"default ${ENV_PREFIX}{setting.upper()}, {default(setting)}"


def default(name: str):
    """A setting's default as declared (not as the environment sets it): for argparse help and dataclasses."""
    return PipelineConfig.model_fields[name].default


def param_schema(name: str) -> dict:
    """A setting's range as JSON-schema keywords, for the DAG's Param of the same name."""
    keywords = {"gt": "exclusiveMinimum", "ge": "minimum", "lt": "exclusiveMaximum", "le": "maximum"}
    return {keywords[key]: value for key, value in _bounds(name).items()}


def check_range(name: str, value, label: str):
    """``value`` when it is within the setting's range, else one line: ``<label> must be in (0, 1], got 0``.

    Written as membership, so NaN (which compares false with everything) is outside every range, as pydantic
    has it for the same setting from the environment."""
    bounds = _bounds(name)
    low = next(((key, bounds[key]) for key in ("gt", "ge") if key in bounds), None)
    high = next(((key, bounds[key]) for key in ("lt", "le") if key in bounds), None)
    interval = (f"{'(' if not low or low[0] == 'gt' else '['}{low[1] if low else '-inf'}, "
                f"{high[1] if high else 'inf'}{')' if not high or high[0] == 'lt' else ']'}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise PipelineError(f"{label} must be a number in {interval}, got {value!r}") from None
    above = not low or (number > low[1] if low[0] == "gt" else number >= low[1])
    below = not high or (number < high[1] if high[0] == "lt" else number <= high[1])
    if not (above and below and number == number):
        raise PipelineError(f"{label} must be in {interval}, got {value}")
    return value


def _bounds(name: str) -> dict:
    bounds = {}
    for constraint in PipelineConfig.model_fields[name].metadata:
        for key in ("gt", "ge", "lt", "le"):
            if getattr(constraint, key, None) is not None:
                bounds[key] = getattr(constraint, key)
    return bounds


def _one_line(error: ValidationError, command_line: frozenset[str] = frozenset()) -> str:
    problems = []
    for item in error.errors():
        name = str(item["loc"][0]) if item["loc"] else "?"
        shown = f"{name}=" if name in command_line else f"{ENV_PREFIX}{name.upper()}="
        source = " (from the command line)" if name in command_line else ""
        problems.append(f"{shown}{item.get('input')!r}{source}: {item['msg']}")
    return "bad setting " + "; ".join(problems)


def markdown_table() -> str:
    """docs/settings.md's table: every setting, its environment variable, default and meaning."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for name, field in PipelineConfig.model_fields.items():
        shown = field.default
        if isinstance(shown, Path):
            shown = f"<repository>/{shown.relative_to(REPO)}" if shown.is_relative_to(REPO) else shown
        rows.append(f"| `{ENV_PREFIX}{name.upper()}` | `{shown}` | {field.description} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    print("# Settings\n\nEvery setting is an environment variable; the command line's options override them for "
          "one run. Generated from `jobs/core/config.py` by `python -m jobs.core.config > docs/settings.md`; "
          "tests/test_settings.py fails when this file is out of date. `IM_DEBUG=1` (not a setting) adds "
          "the traceback to a command's one-line error.\n")
    print(markdown_table(), end="")
