"""The command line shared by every stage.

Each stage module exposes ``add_arguments(parser)`` and ``run(args, config)``;
this file only wires them up, applies the common options and turns errors into
one line on stderr with a non-zero exit code.
"""
from __future__ import annotations

import argparse
import datetime as dt
import importlib
import os
import sys
import traceback
from pathlib import Path

from jobs.core.config import PipelineConfig
from jobs.core.errors import PipelineError

# stage -> (module, one-line help, takes --date)
STAGES: dict[str, tuple[str, str, bool]] = {
    "generate": ("jobs.generate", "write synthetic landing files, catalog and ground truth", False),
    "ingest": ("jobs.ingest", "landing files -> events_clean + events_quarantine", True),
    "dedupe": ("jobs.dedupe", "events_clean -> events, one row per real event (one event date)", True),
    "sessionize": ("jobs.sessionize", "events -> sessions and events.session_id (one event date)", True),
    "validate": ("jobs.validate", "check one partition of a table with its Great Expectations suite", True),
    "features": ("jobs.features", "events -> user_sequences: histories as of cutoffs, with labels", True),
    "train": ("jobs.train", "user_sequences -> a new model version (TensorFlow, several workers)", True),
    "evaluate": ("jobs.evaluate", "a model version vs baselines and the champion on the test cutoff; promote", True),
    "score": ("jobs.score", "the champion's predictions -> user_interest_predictions, demand forecast, segments", True),
    "publish": ("jobs.publish", "commit the predictions score --hold wrote, once validate has passed them", True),
    "maintain": ("jobs.maintain", "OPTIMIZE and VACUUM every table; remove abandoned staging, old snapshots "
                 "and checkpoints", True),
    "connect-server": ("jobs.connect_server", "run a Spark Connect server with the Delta connector: stages become "
                       "its clients (IM_SPARK_REMOTE)", False),
    "sql": ("jobs.sql", "run a read-only SQL query over every lake table (DuckDB, delta-rs or Spark SQL)", False),
    "dashboard": ("jobs.dashboard", "write the night's dashboard page: models, drift, data quality, inventory and "
                  "marketing views", True),
    "catalog": ("jobs.catalog", "write the read-only DuckDB database of the lake's tables; register them in "
                "Spark's catalog", False),
}


# Stages that process a range of dates in one pass (--from-date/--to-date, or --previous-days: for dedupe and
# sessionize, late events for the dates before --date landed with its ingest; for features, as-of dates). The
# stage gets the dates as ``args.dates``.
RANGE_STAGES = ("dedupe", "sessionize", "features")


def build_parser(stage: str | None = None) -> argparse.ArgumentParser:
    """The parser; only ``stage``'s module is imported (for its arguments), so ``--help`` and a stage's start
    do not pay for every other stage's imports (Spark, Great Expectations, TensorFlow...)."""
    parser = argparse.ArgumentParser(prog="python -m jobs", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="stage", required=True, metavar="STAGE")
    for name, (module_name, help_text, dated) in STAGES.items():
        if name != stage:
            sub.add_parser(name, help=help_text, add_help=False)
            continue
        module = importlib.import_module(module_name)
        stage_parser = sub.add_parser(name, help=help_text, description=(module.__doc__ or help_text).strip(),
                                      formatter_class=argparse.RawDescriptionHelpFormatter)
        stage_parser.add_argument("--lake", type=Path, help="lake root directory (default: $IM_LAKE, else the repository's lake/)")
        if dated:
            stage_parser.add_argument("--date", type=_date, help="the date to process, YYYY-MM-DD")
        if name in RANGE_STAGES:
            stage_parser.add_argument(
                "--previous-days", type=int, default=0,
                help="also the N dates before --date, in the same pass (dedupe and sessionize: late events for "
                     "them landed with this ingest, and the nightly DAG uses 1; default 0)")
            stage_parser.add_argument("--from-date", type=_date,
                                      help="a backfill: every event date from this one through --to-date, in one "
                                           "pass (the same tables as one date at a time)")
            stage_parser.add_argument("--to-date", type=_date, help="the range's last date (default --date)")
        module.add_arguments(stage_parser)
        stage_parser.set_defaults(_module=module)
    return parser


def _chosen_stage(argv: list[str]) -> str | None:
    """The stage named on the command line (its first word that is one), before anything is imported."""
    return next((word for word in argv if word in STAGES), None)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(_chosen_stage(argv)).parse_args(argv)
    if not hasattr(args, "date"):
        args.date = None
    try:
        config = PipelineConfig().with_overrides(lake=args.lake.resolve() if args.lake else None,
                                                 volume_acknowledged=getattr(args, "acknowledge_volume", None))
        if args.stage in RANGE_STAGES:
            args.dates = _date_range(args)
            args.date = args.dates[-1] if args.dates else None
        args._module.run(args, config)
    except (PipelineError, ValueError, FileNotFoundError) as error:
        print(f"error: {args.stage}: {error}", file=sys.stderr)
        return 1
    except Exception as error:  # an unexpected failure: one line, traceback on request
        if os.environ.get("IM_DEBUG"):
            traceback.print_exc()
        first_line = (str(error).strip().splitlines() or [""])[0]
        print(f"error: {args.stage} failed: {type(error).__name__}: {first_line} (set IM_DEBUG=1 for the traceback)",
              file=sys.stderr)
        return 1
    return 0


def _date_range(args: argparse.Namespace) -> list[dt.date]:
    """The event dates a range stage processes, oldest first: ``--from-date``..``--to-date`` (or ``--date``),
    else ``--date`` preceded by ``--previous-days`` dates; empty when no date was given (the stage says so)."""
    previous = args.previous_days
    if previous < 0:
        raise PipelineError(f"--previous-days must be 0 or more, got {previous}")
    if args.from_date is None:
        if args.to_date is not None:
            raise PipelineError("--to-date needs --from-date")
        if args.date is None:
            return []
        return [args.date - dt.timedelta(days=n) for n in range(previous, -1, -1)]
    if previous:
        raise PipelineError("give either --from-date or --previous-days, not both")
    if args.to_date is not None and args.date is not None and args.to_date != args.date:
        raise PipelineError(f"--to-date {args.to_date} and --date {args.date} disagree: give one")
    last = args.to_date or args.date
    if last is None:
        raise PipelineError("--from-date needs --to-date (or --date)")
    if last < args.from_date:
        raise PipelineError(f"--from-date {args.from_date} is after the range's last date {last}")
    return [args.from_date + dt.timedelta(days=n) for n in range((last - args.from_date).days + 1)]


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date as YYYY-MM-DD, got {text!r}") from None
