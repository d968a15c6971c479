"""Shared fixtures: one local Spark session for the whole run, and a fresh lake per test."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from jobs.config import PipelineConfig

UTC = dt.timezone.utc


@pytest.fixture(scope="session")
def spark():
    from jobs.spark import build_spark

    config = PipelineConfig(spark_master="local[2]", shuffle_partitions=2, spark_driver_memory="2g")
    session = build_spark(config, "tests")
    yield session
    session.stop()


@pytest.fixture
def lake_root(tmp_path: Path) -> Path:
    return tmp_path / "lake"


def ts(text: str) -> dt.datetime:
    """A UTC timestamp from 'YYYY-MM-DD HH:MM:SS' (Spark returns naive UTC datetimes)."""
    return dt.datetime.fromisoformat(text)


def run_jobs(*args: str) -> tuple[int, str, str]:
    """``python -m jobs ARGS`` in this process (sharing the test Spark session): exit code, stdout, stderr."""
    import io
    from contextlib import redirect_stderr, redirect_stdout

    from jobs.cli import main

    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()
