"""``python -m jobs validate --table NAME --date D``: check a published partition with its suite.

Runs the table's Great Expectations suite (``expectations/NAME.py``) on the
partition as a Spark DataFrame: ``events_clean`` by ingest date (with that
batch's quarantined rows, for the quarantine rate), ``events`` and
``sessions`` by event date. Results and Data Docs persist in ``<lake>/_gx``;
the Data Docs path is printed. Critical failures exit non-zero with one line
each; warnings are printed and recorded, and the exit code stays 0. Every
run appends its summary to ``pipeline_runs`` (stage ``validate``).

``user_interest_predictions`` is checked where the nightly DAG leaves it
before publishing: the held predictions ``score --hold`` wrote for the date. The
verdict is recorded next to them, and ``publish`` commits only held predictions that
passed (``jobs/core/held.py``).
"""
from __future__ import annotations

import argparse
from typing import Callable

from jobs.core.config import PipelineConfig
from jobs.core.input_size import tables_bytes
from jobs.core.stage import add_acknowledge_argument, open_stage_lake, require_date
from jobs.core.tables import EVENTS, EVENTS_CLEAN, EVENTS_QUARANTINE, SESSIONS, USER_INTEREST_PREDICTIONS

TABLES = (EVENTS_CLEAN, EVENTS, SESSIONS, USER_INTEREST_PREDICTIONS)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--table", required=True, choices=TABLES, action="append",
                        help="the table whose partition to validate; repeat for several (one Spark start)")
    add_acknowledge_argument(parser)


def run(args: argparse.Namespace, config: PipelineConfig) -> dict:
    require_date(args.date, "validate", "the partition to validate: ingest date for events_clean, else event date")
    tables = list(dict.fromkeys(args.table))
    day = args.date.isoformat()
    # The first table's run starts Spark for all of them: sized by every partition they read. Held predictions
    # are not sized (a night's can be millions of rows): with them, the full JIT.
    reads = {read: partitions for table in tables for read, partitions in _reads(table, day).items()}
    sized = None if USER_INTEREST_PREDICTIONS in tables else (lambda: tables_bytes(config.lake, reads))
    summaries = {}
    for table in tables:
        summaries[table] = _validate(config, table, args.date, input_bytes=sized)
    return summaries


def _reads(table: str, day: str) -> dict[str, dict[str, list[str]]]:
    """The partitions validating ``table`` on ``day`` reads."""
    if table == EVENTS_CLEAN:
        return {EVENTS_CLEAN: {"ingest_date": [day]}, EVENTS_QUARANTINE: {"ingest_date": [day]}}
    return {table: {"event_date": [day]}}


def _validate(config: PipelineConfig, table: str, date, input_bytes: Callable[[], int | None] | None = None) -> dict:
    from jobs.core.quality import check_partition
    from jobs.core.quality.gate import events_clean_batch
    from jobs.core.runs import record_run

    if table == USER_INTEREST_PREDICTIONS:
        return _validate_held(config, date)
    day = date.isoformat()
    lake = open_stage_lake(config, "validate", table, made_by=_made_by(table), validates=True,
                           input_bytes=input_bytes)
    with record_run(lake, "validate", date) as metrics:
        if table == EVENTS_CLEAN:
            clean = lake.read(EVENTS_CLEAN, partitions={"ingest_date": [day]})
            quarantine = lake.read_or_empty(EVENTS_QUARANTINE, "raw_record string, reason string, source string, "
                                            "source_file string, ingest_date date", partitions={"ingest_date": [day]})
            frame = events_clean_batch(clean, quarantine)
        else:
            frame = lake.read(table, partitions={"event_date": [day]})
        report = check_partition(lake, config, table, [date], frame)
        metrics.validations.append(report)
        metrics.details["table"] = table
        report.raise_if_critical()
    return report.summary()


def _validate_held(config: PipelineConfig, date) -> dict:
    """The held predictions of ``date``, with the row count score recorded; the verdict gates publish."""
    from jobs.core import held
    from jobs.core.runs import record_run

    lake = open_stage_lake(config, "validate", validates=True)
    held.read_manifest(lake.root, date)  # before the run is recorded: nothing held is a usage error
    with record_run(lake, "validate", date) as metrics:
        manifest, report = held.validate_held(lake, config, date)
        metrics.validations.append(report)
        metrics.details.update(table=USER_INTEREST_PREDICTIONS, candidate=True, model_version=manifest.model_version)
        report.raise_if_critical()
    return report.summary()


def _made_by(table: str) -> str:
    return {EVENTS_CLEAN: "ingest", EVENTS: "dedupe", SESSIONS: "sessionize"}[table]
