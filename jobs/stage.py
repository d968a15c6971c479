"""What every Spark stage does first: check its date, start Spark, open the lake."""
from __future__ import annotations

import argparse
import datetime as dt

from jobs.config import PipelineConfig
from jobs.errors import PipelineError
from jobs.lake import Lake, open_lake
from jobs.spark import build_spark


def require_date(date: dt.date | None, stage: str, meaning: str) -> dt.date:
    if date is None:
        raise PipelineError(f"{stage} needs --date YYYY-MM-DD ({meaning})")
    return date


def open_stage_lake(config: PipelineConfig, stage: str, needs_table: str | None = None, made_by: str = "") -> Lake:
    """The lake for ``stage``; fails with a clear line if its input table is missing."""
    lake = open_lake(build_spark(config, stage), config.lake)
    if needs_table and not lake.exists(needs_table):
        raise PipelineError(f"no {needs_table} table under {config.lake}: run {made_by} first")
    return lake


def add_validation_argument(parser: argparse.ArgumentParser) -> None:
    """``--no-validate`` for the stages that gate their writes with an expectation suite."""
    parser.add_argument("--validate", action=argparse.BooleanOptionalAction, default=None,
                        help="validate the staged partition with its expectation suite before publishing it "
                             "(default on; $IM_VALIDATE_WRITES=0 turns it off)")
