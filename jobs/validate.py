"""``python -m jobs validate --table NAME --date D``: check a published partition with its suite.

Runs the table's Great Expectations suite (``expectations/NAME.py``) on the
partition as a Spark DataFrame: ``events_clean`` by ingest date (with that
batch's quarantined rows, for the quarantine rate), ``events`` and
``sessions`` by event date. Results and Data Docs persist in ``<lake>/_gx``;
the Data Docs path is printed. Critical failures exit non-zero with one line
each; warnings are printed and recorded, and the exit code stays 0. Every
run appends its summary to ``pipeline_runs`` (stage ``validate``).
"""
from __future__ import annotations

import argparse

from jobs.config import PipelineConfig
from jobs.quality import check_partition
from jobs.quality.gate import events_clean_batch
from jobs.runs import record_run
from jobs.stage import open_stage_lake, require_date
from jobs.tables import EVENTS, EVENTS_CLEAN, EVENTS_QUARANTINE, SESSIONS

TABLES = (EVENTS_CLEAN, EVENTS, SESSIONS)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--table", required=True, choices=TABLES, help="the table whose partition to validate")


def run(args: argparse.Namespace, config: PipelineConfig) -> dict:
    require_date(args.date, "validate", "the partition to validate: ingest date for events_clean, else event date")
    lake = open_stage_lake(config, "validate", args.table, made_by=_made_by(args.table))
    day = args.date.isoformat()
    with record_run(lake, "validate", args.date) as metrics:
        if args.table == EVENTS_CLEAN:
            clean = lake.read(EVENTS_CLEAN, partitions={"ingest_date": [day]})
            quarantine = lake.read_or_empty(EVENTS_QUARANTINE, "raw_record string, reason string, source string, "
                                            "source_file string, ingest_date date", partitions={"ingest_date": [day]})
            frame = events_clean_batch(clean, quarantine)
        else:
            frame = lake.read(args.table, partitions={"event_date": [day]})
        report = check_partition(lake, config, args.table, [args.date], frame)
        metrics.validations.append(report)
        metrics.details["table"] = args.table
        report.raise_if_critical()
    return report.summary()


def _made_by(table: str) -> str:
    return {EVENTS_CLEAN: "ingest", EVENTS: "dedupe", SESSIONS: "sessionize"}[table]
