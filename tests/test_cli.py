"""The command line: help for every stage, and one clear line with a non-zero exit on bad input."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _jobs(*args: str):
    return subprocess.run([sys.executable, "-m", "jobs", *args], cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_help_lists_every_stage():
    result = _jobs("--help")
    assert result.returncode == 0
    for stage in ("generate", "ingest", "dedupe", "sessionize", "sql"):
        assert stage in result.stdout


def test_stage_help_explains_options():
    result = _jobs("ingest", "--help")
    assert result.returncode == 0 and "--format" in result.stdout and "taobao-csv" in result.stdout


def test_missing_landing_partition_is_one_line_and_exit_1(tmp_path):
    result = _jobs("ingest", "--lake", str(tmp_path), "--date", "2024-01-01")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [f"error: ingest: no input at {tmp_path}/raw/events/ingest_date=2024-01-01: nothing to ingest"]


def test_bad_date_is_rejected_by_the_parser(tmp_path):
    result = _jobs("dedupe", "--lake", str(tmp_path), "--date", "2024-13-01")
    assert result.returncode == 2 and "expected a date as YYYY-MM-DD" in result.stderr


def test_dedupe_without_a_date_says_so(tmp_path):
    result = _jobs("dedupe", "--lake", str(tmp_path))
    assert result.returncode == 1 and "dedupe needs --date" in result.stderr


def test_sql_refuses_writes(tmp_path):
    result = _jobs("sql", "--lake", str(tmp_path), "DELETE FROM events")
    assert result.returncode == 1
    assert "only one read-only query" in result.stderr


def test_the_command_line_leaves_great_expectations_to_the_stages_that_validate():
    """About 6 s of every stage's start: only a suite run (jobs.core.stage.open_stage_lake) imports it."""
    probe = ("import sys; from jobs.cli import STAGES, build_parser; [build_parser(s) for s in STAGES]; "
             "from jobs.core.stage import VALIDATION_MODULES, _import_on_a_thread; "
             "print('great_expectations' in sys.modules); _import_on_a_thread(VALIDATION_MODULES).join(); "
             "print('great_expectations' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.stdout.split() == ["False", "True"], result.stderr[-2000:]


def test_a_spark_connect_stage_goes_on_while_great_expectations_imports(connect_server, tmp_path):
    """A client's session is ready in about a second, Great Expectations' import takes about four: the stage's
    first queries run meanwhile, and the suite waits for the import (jobs.core.stage.open_stage_lake)."""
    probe = ("import sys; from jobs.core.config import PipelineConfig; from jobs.core import stage; "
             "lake = stage.open_stage_lake(PipelineConfig(), 'probe', validates=True); "
             "print(stage._pending_import is not None and stage._pending_import.is_alive()); "
             "print(lake.spark.range(3).count()); "
             "from jobs.core.quality import gate; stage.wait_for_validation_imports(); "
             "print('great_expectations.checkpoint' in sys.modules and 'expectations' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=180,
                            env={**os.environ, "IM_SPARK_REMOTE": connect_server, "IM_LAKE": str(tmp_path / "lake")})
    assert result.stdout.split() == ["True", "3", "True"], result.stdout + result.stderr[-2000:]


# What a stage's --help and argument parsing may not import: seconds of start-up each (bench/bench_cli.sh times
# them). The sql stage's own module is DuckDB's front end, so it may import DuckDB.
HEAVY_MODULES = ("pyspark", "tensorflow", "great_expectations", "deltalake", "pyarrow", "numpy", "duckdb", "airflow")


def test_each_stage_parses_its_arguments_without_importing_spark_tensorflow_or_arrow():
    probe = ("import sys, json; from jobs.cli import STAGES, build_parser; before = set(sys.modules); "
             "stage = sys.argv[1]; build_parser(stage).parse_args([stage] + (['--table', 'events'] if stage == 'validate' "
             "else [])); "
             "print(json.dumps(sorted({m.split('.')[0] for m in set(sys.modules) - before})))")
    from jobs.cli import STAGES

    for stage in STAGES:
        result = subprocess.run([sys.executable, "-c", probe, stage], cwd=ROOT, capture_output=True, text=True,
                                timeout=120)
        assert result.returncode == 0, result.stderr[-2000:]
        allowed = {"duckdb", "pyarrow", "numpy"} if stage == "sql" else {"numpy"} if stage == "generate" else set()
        heavy = set(json.loads(result.stdout)) & set(HEAVY_MODULES) - allowed
        assert not heavy, f"{stage}: {sorted(heavy)}"


def test_the_installed_command_runs_from_any_directory(tmp_path):
    """`make install` installs the project (pyproject.toml): the console script and `python -m jobs` work
    outside the repository too."""
    script = Path(sys.executable).parent / "interest-migration"
    for command in ([str(script), "--help"], [sys.executable, "-m", "jobs", "--help"]):
        result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        assert "sessionize" in result.stdout


def test_the_jobs_folder_lists_the_stages_the_command_line_offers_and_nothing_else():
    """The layout shows the architecture: one module or folder per stage, the shared code under jobs/core."""
    from jobs.cli import STAGES

    entries = {p.stem for p in (ROOT / "jobs").iterdir() if not p.name.startswith(("_", "."))
               and (p.suffix == ".py" or (p / "__init__.py").is_file())}
    modules = {stage: stage.replace("-", "_") for stage in STAGES}  # connect-server: jobs/connect_server.py
    assert entries == set(modules.values()) | {"cli", "core"}
    assert all(module == f"jobs.{modules[stage]}" for stage, (module, _, _) in STAGES.items())


def test_a_range_is_given_once_and_in_order():
    """--from-date/--to-date or --previous-days, never both; an end before the start is refused at once."""
    import argparse
    import datetime as dt

    import pytest

    from jobs.cli import _date_range
    from jobs.core.errors import PipelineError

    def dates(**given):
        args = argparse.Namespace(**{"date": None, "previous_days": 0, "from_date": None, "to_date": None, **given})
        return _date_range(args)

    day = dt.date(2024, 11, 3)
    assert dates(date=day, previous_days=2) == [dt.date(2024, 11, 1), dt.date(2024, 11, 2), day]
    assert dates(from_date=dt.date(2024, 11, 2), to_date=day) == [dt.date(2024, 11, 2), day]
    assert dates(from_date=dt.date(2024, 11, 2), date=day) == [dt.date(2024, 11, 2), day]
    assert dates() == []
    for bad in ({"from_date": day, "to_date": dt.date(2024, 11, 1)}, {"from_date": day, "date": day, "previous_days": 1},
                {"to_date": day}, {"from_date": day}, {"date": day, "previous_days": -1},
                {"from_date": dt.date(2024, 11, 1), "to_date": day, "date": dt.date(2024, 11, 2)}):
        with pytest.raises(PipelineError):
            dates(**bad)


def test_a_spark_connect_server_that_is_not_there_is_one_line_at_once(tmp_path):
    """IM_SPARK_REMOTE naming a port nothing listens on: the client would retry for minutes; the stage says so in one
    line instead, and a value that is not an sc:// address is refused as a bad setting."""
    import os
    import socket

    with socket.socket() as probe:  # a port that was free a moment ago, and nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    for remote, expected in ((f"sc://127.0.0.1:{port}", "cannot reach the Spark Connect server"),
                             ("http://127.0.0.1:15002", "bad setting IM_SPARK_REMOTE")):
        result = subprocess.run([sys.executable, "-m", "jobs", "dedupe", "--lake", str(tmp_path), "--date", "2024-10-08"],
                                cwd=ROOT, capture_output=True, text=True, timeout=60,
                                env={**os.environ, "IM_SPARK_REMOTE": remote})
        assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert expected in result.stderr


def test_the_connect_server_listens_on_the_loopback_with_the_delta_connector():
    result = _jobs("connect-server", "--port", "15999", "--dry-run")
    assert result.returncode == 0, result.stderr
    command = result.stdout
    assert "org.apache.spark.sql.connect.service.SparkConnectServer" in command
    assert "spark.connect.grpc.binding.address=127.0.0.1" in command and "binding.port=15999" in command
    assert "io.delta.sql.DeltaSparkSessionExtension" in command and "delta-spark_" in command
