"""``python -m jobs ingest``: landing files to ``events_clean`` and ``events_quarantine``.

Reads one landing partition (``--date``) or any file or folder (``--source``) in
one of the supported formats, enforces the schema, maps event-type synonyms,
converts times to UTC and names categories from the catalog where the source
only has ids. Every row ends in exactly one of the two tables: clean rows by
event date, bad rows with their raw text and a reason code. A re-run replaces
the batch's ingest dates in both tables.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from jobs.core.config import PipelineConfig
from jobs.core.stage import add_validation_argument

# The source layouts jobs/ingest/formats.py parses.
FORMATS = ("events-jsonl", "taobao-csv", "rees46-csv")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--source", type=Path, help="file or folder to ingest (default: the landing partition of --date)")
    parser.add_argument("--format", choices=FORMATS, default="events-jsonl", help="source layout (default events-jsonl)")
    parser.add_argument("--catalog", type=Path, help="categories CSV (category_id,category) for id-only sources")
    parser.add_argument("--max-lateness-days", type=int, help="quarantine events older than this before their ingest date; -1 disables")
    parser.add_argument("--bot-events-per-day", type=int, help="more events than this per user and day marks a bot")
    parser.add_argument("--replace-existing", action="store_true",
                        help="a historical file (no --date, no ingest_date= folders) may replace ingest dates the "
                             "lake already holds (default: refuse)")
    add_validation_argument(parser)


def run(args: argparse.Namespace, config: PipelineConfig) -> dict:
    """Spark and the parsers are imported here, when the stage runs, not for its ``--help``."""
    from jobs.ingest.main import run as ingest

    return ingest(args, config)
