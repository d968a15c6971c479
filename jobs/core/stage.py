"""What every Spark stage does first: check its date, start Spark, open the lake."""
from __future__ import annotations

import argparse
import datetime as dt
import importlib
import threading
from typing import TYPE_CHECKING, Callable

from jobs.core.config import PipelineConfig
from jobs.core.errors import PipelineError

if TYPE_CHECKING:
    from jobs.core.lake import Lake


def require_date(date: dt.date | None, stage: str, meaning: str) -> dt.date:
    if date is None:
        raise PipelineError(f"{stage} needs --date YYYY-MM-DD ({meaning})")
    return date


# What a suite run imports: Great Expectations alone is seconds of Python, worth overlapping.
VALIDATION_MODULES = ("expectations", "jobs.core.quality.gx_run")
# The import still running for a Spark Connect client's stage (see open_stage_lake); joined before a suite runs.
_pending_import: threading.Thread | None = None


def open_stage_lake(config: PipelineConfig, stage: str, needs_table: str | None = None, made_by: str = "",
                    validates: bool = False, input_bytes: Callable[[], int | None] | None = None) -> Lake:
    """The lake for ``stage``; fails with a clear line if its input table is missing.

    ``input_bytes`` sizes what the stage will read (``jobs.core.input_size``), asked only when the stage
    starts a driver of its own: a small input gets a JVM that starts quicker (``jobs.core.spark``).

    A stage that will run an expectation suite (``validates``) imports Great
    Expectations (about 4 s of Python) on a thread while Spark works. With a
    driver of its own, that is while the JVM starts (mostly waiting here), and
    the stage waits for it before any stage code runs. A Spark Connect client
    has no JVM to start (its session is ready in about a second), so there the
    import goes on while the stage's first queries and staged write run on the
    server, and ``wait_for_validation_imports`` (called before a suite runs)
    joins it. Stages run with --no-validate never import it.
    """
    global _pending_import
    from jobs.core.lake import open_lake  # Spark and Arrow: imported when a stage runs, not for its --help
    from jobs.core.spark import build_spark, connects

    remote = connects(config)
    preload = _import_on_a_thread(VALIDATION_MODULES) if validates and not remote else None
    try:
        spark = build_spark(config, stage, input_bytes=input_bytes)
    finally:
        if preload is not None:
            preload.join()
    lake = open_lake(spark, config.lake)
    if needs_table and not lake.exists(needs_table):
        raise PipelineError(f"no {needs_table} table under {config.lake}: run {made_by} first")
    if validates and remote and _pending_import is None:
        # The modules both sides use (pyspark's, pandas, Arrow, the lake's) are loaded by now: the thread then
        # imports Great Expectations' own tree while the stage imports its own few (two threads importing the
        # same modules at once can hand one a partially initialised module).
        _pending_import = _import_on_a_thread(VALIDATION_MODULES)
    return lake


def wait_for_validation_imports() -> None:
    """Join the import ``open_stage_lake`` left running, if any: a suite runs only once it is complete."""
    global _pending_import
    if _pending_import is not None:
        _pending_import.join()
        _pending_import = None


def _import_on_a_thread(modules: tuple[str, ...]) -> threading.Thread:
    """Start importing ``modules``; an import error is left for the stage's own import to report."""
    def load() -> None:
        try:
            for name in modules:
                importlib.import_module(name)
        except Exception:  # noqa: BLE001 - re-raised, with its message, where the stage imports it
            pass

    thread = threading.Thread(target=load, name="import-validation", daemon=True)
    thread.start()
    return thread


def add_validation_argument(parser: argparse.ArgumentParser) -> None:
    """``--no-validate`` for the stages that gate their writes with an expectation suite."""
    parser.add_argument("--validate", action=argparse.BooleanOptionalAction, default=None,
                        help="validate the prepared partition with its expectation suite before publishing it "
                             "(default on; $IM_VALIDATE_WRITES=0 turns it off)")
    add_acknowledge_argument(parser)


def add_acknowledge_argument(parser: argparse.ArgumentParser) -> None:
    """``--acknowledge-volume`` for every stage that runs a volume check (the command line applies it)."""
    parser.add_argument("--acknowledge-volume", action=argparse.BooleanOptionalAction, default=None,
                        help="the date's row count is known to be off (an outage, a closed day, a backfill's "
                             "ramp-up): a volume anomaly is then a warning, never a stop ($IM_VOLUME_ACKNOWLEDGED)")
