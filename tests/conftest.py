"""Shared fixtures: one local Spark session for the whole run, a fresh lake per test, and one tiny trained lake."""
from __future__ import annotations

import datetime as dt
from contextlib import contextmanager
from pathlib import Path

import pytest

from jobs.core.config import PipelineConfig

UTC = dt.timezone.utc


@pytest.fixture(scope="session")
def spark():
    from jobs.core.spark import build_spark

    config = PipelineConfig(spark_master="local[2]", shuffle_partitions=2, spark_driver_memory="2g")
    session = build_spark(config, "tests")
    yield session
    session.stop()


@contextmanager
def running_connect_server(env: dict, log: Path, *settings: str):
    """``sc://127.0.0.1:PORT`` of a Spark Connect server started by ``python -m jobs connect-server [settings]``
    (as ``make run`` starts one) with ``env``'s IM_* settings, its output in ``log``; stopped on exit."""
    import subprocess
    import sys

    port = free_port()
    root = Path(__file__).resolve().parents[1]
    with open(log, "w") as out:
        server = subprocess.Popen([sys.executable, "-m", "jobs", "connect-server", "--port", str(port), *settings],
                                  env=env, cwd=root, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        # In a process of its own: the suite's process has its own (classic) Spark session.
        ready = subprocess.run([sys.executable, "-m", "jobs", "connect-server", "--port", str(port), "--ready-within",
                                "180"], env=env, cwd=root, capture_output=True, text=True, timeout=300)
        assert ready.returncode == 0, ready.stdout + ready.stderr + log.read_text()[-3000:]
        yield f"sc://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=60)


# The standalone cluster's JVMs compile with C1 only and collect with the serial collector: three JVMs (a driver
# and two executors) compiling with C2 on two cores made the cluster's stages slower (docs/performance.md).
QUICK_JVM = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _master_state(webui: int) -> dict | None:
    """The master's JSON status page, or None while it is not up."""
    import json
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{webui}/json/", timeout=5) as response:
            return json.load(response)
    except OSError:
        return None


@contextmanager
def running_cluster(folder: Path):
    """A real Spark standalone cluster on this machine, started from the project's own pyspark
    (``bin/spark-class``, as the README's cluster command does): a master and two workers. Yields its
    ``master`` URL and the ``env`` its daemons run with; stopped on exit."""
    import os
    import subprocess
    import sys
    import time

    import pyspark

    spark_home = Path(pyspark.__file__).parent
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "SPARK_HOME": str(spark_home), "SPARK_LOCAL_IP": "127.0.0.1", "PYTHONPATH": str(root),
           "SPARK_LOG_DIR": str(folder / "logs"), "PYSPARK_PYTHON": sys.executable}
    port, webui = free_port(), free_port()
    master = f"spark://127.0.0.1:{port}"
    commands = [["org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", str(port),
                 "--webui-port", str(webui)]]
    for i in range(2):
        # Two cores each (on a 2-core machine: over-subscribed, which only a benchmark would mind): one for the
        # Spark Connect server's executor, one for a submitted application's (training's barrier task).
        commands.append(["org.apache.spark.deploy.worker.Worker", "--cores", "2", "--memory", "3g",
                         "--host", "127.0.0.1", "--webui-port", str(free_port()),
                         "--work-dir", str(folder / f"worker-{i}"), master])
    processes = []
    try:
        for i, command in enumerate(commands):
            log = open(folder / f"daemon-{i}.log", "w")
            processes.append(subprocess.Popen([str(spark_home / "bin" / "spark-class"), *command], env=env,
                                              cwd=folder, stdout=log, stderr=subprocess.STDOUT,
                                              start_new_session=True))
            if i == 0:
                deadline = time.monotonic() + 60
                while _master_state(webui) is None:
                    assert time.monotonic() < deadline, (folder / "daemon-0.log").read_text()[-3000:]
                    time.sleep(0.5)
        deadline = time.monotonic() + 90
        while int((_master_state(webui) or {}).get("aliveworkers", 0)) < 2:
            assert time.monotonic() < deadline, "the two workers never registered with the master"
            time.sleep(0.5)
        yield {"master": master, "env": env, "spark_home": spark_home}
    finally:
        for process in processes:
            try:
                os.killpg(process.pid, 15)
            except ProcessLookupError:
                pass
        for process in processes:
            process.wait(timeout=30)


@pytest.fixture(scope="session")
def cluster_services(tmp_path_factory):
    """Starts the standalone cluster, then the suite's Spark Connect server on it, on a thread of their own,
    and yields that start's future ``(cluster, address)``. The start is mostly waiting on JVMs that come up
    one core at a time: a test that asks for this fixture before its other expensive ones (the DAG's night:
    before the trained lake) overlaps the two. ``spark_cluster`` and ``connect_server`` wait for it."""
    import contextlib
    import importlib
    from concurrent.futures import ThreadPoolExecutor

    # Imported here, not on the thread: pyspark imported by two threads at once fails on its circular imports.
    for module in ("json", "subprocess", "urllib.request", "pyspark"):
        importlib.import_module(module)

    cluster_folder, connect_folder = tmp_path_factory.mktemp("cluster"), tmp_path_factory.mktemp("connect")
    stack = contextlib.ExitStack()

    def start():
        cluster = stack.enter_context(running_cluster(cluster_folder))
        env = {**cluster["env"], "IM_SPARK_MASTER": cluster["master"], "IM_SPARK_DRIVER_MEMORY": "1g",
               "IM_SHUFFLE_PARTITIONS": "2", "IM_SPARK_DRIVER_JAVA_OPTIONS": QUICK_JVM}
        # One core on each worker, no more: tests/test_cluster.py's training needs the other one on each for its
        # two barrier tasks, which would wait for free cores rather than fail.
        settings = ["--conf", "spark.executor.cores=1", "--conf", "spark.executor.memory=1g", "--conf",
                    "spark.cores.max=2", "--conf", f"spark.executor.extraJavaOptions={QUICK_JVM}"]
        return cluster, stack.enter_context(running_connect_server(env, connect_folder / "server.log", *settings))

    pool = ThreadPoolExecutor(1, thread_name_prefix="cluster-start")
    started = pool.submit(start)
    try:
        yield started
    finally:
        pool.shutdown()  # a start still under way ends before the stop
        stack.close()


@pytest.fixture(scope="session")
def spark_cluster(cluster_services):
    """The cluster of ``cluster_services``: its ``master`` URL, the ``env`` its daemons run with and
    ``spark_home``."""
    return cluster_services.result()[0]


@pytest.fixture(scope="session")
def connect_server(cluster_services):
    """The suite's Spark Connect server, started as `make run` starts one (``python -m jobs connect-server``) but
    with its executors on the cluster, one core on each worker: every test that runs stages as its clients
    (the DAG's publishing night, the CLI) runs them on a real cluster too, and the suite starts one long-lived
    driver for both, not two."""
    return cluster_services.result()[1]


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


def run_jobs_isolated(*args: str, remote: str | None = None) -> tuple[int, str, str]:
    """``python -m jobs ARGS`` in a fresh interpreter, for stages that run TensorFlow (see tests/isolated.py) or
    that must not share the suite's Spark session; with ``remote`` (an ``sc://`` address), as a client of that
    Spark Connect server with its two shuffle partitions, as `make run` runs its stages, instead of starting a
    driver of its own."""
    import os
    import subprocess
    import sys

    client = {"IM_SPARK_REMOTE": remote, "IM_SHUFFLE_PARTITIONS": "2"} if remote else {}
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **client}
    result = subprocess.run([sys.executable, "-m", "jobs", *args], cwd=Path(__file__).resolve().parents[1],
                            env=env, capture_output=True, text=True, timeout=900)
    return result.returncode, result.stdout, result.stderr


def delta_rows(lake: Path, table: str) -> list[str]:
    """Every row of a lake's table, read by delta-rs, comparable across lakes: maps sorted, ``source_file``
    relative to the landing folder (each lake's landing files sit at its own absolute path)."""
    import pyarrow as pa
    from deltalake import DeltaTable

    data = DeltaTable(str(lake / table)).to_pyarrow_table()
    maps = [field.name for field in data.schema if pa.types.is_map(field.type)]
    rows = []
    for row in data.to_pylist():
        if row.get("source_file"):
            row["source_file"] = row["source_file"].split("/raw/events/", 1)[-1]
        for name in maps:
            row[name] = sorted(row[name]) if row[name] is not None else None
        rows.append(repr(sorted(row.items())))
    return sorted(rows)


# Three nights of 1,500 generated users with every fault type, run as the DAG runs them: the end-to-end tests
# work on it, the quality-gate tests on a copy.
NIGHTLY_DAYS = [dt.date(2024, 11, 1) + dt.timedelta(days=d) for d in range(3)]


@pytest.fixture(scope="session")
def nightly_lake(spark, tmp_path_factory) -> Path:
    """Each night ingests its landing partition, re-runs the previous date (its late events just arrived) and
    publishes its own, every stage validating before it publishes; the first night's previous date is empty."""
    root = tmp_path_factory.mktemp("nightly") / "lake"
    lake = ["--lake", str(root)]
    assert run_jobs("generate", *lake, "--users", "1500", "--days", str(len(NIGHTLY_DAYS)),
                    "--start-date", NIGHTLY_DAYS[0].isoformat(), "--seed", "11")[0] == 0
    for day in NIGHTLY_DAYS:
        for stage, extra in (("ingest", []), ("dedupe", ["--previous-days", "1"]),
                             ("sessionize", ["--previous-days", "1"])):
            code, out, err = run_jobs(stage, *lake, "--date", day.isoformat(), *extra)
            assert code == 0, err
            assert "validate " in out  # the producing stage ran its suite before publishing
    return root


# The tiny generated lake the model and scoring tests share: 300 users over 8 days, H = 1: three test origins,
# a validation and two train cutoffs with two days of history each (models/cutoffs.py).
MODEL_START, MODEL_DAYS = dt.date(2024, 10, 1), 8
MODEL_AS_OF = MODEL_START + dt.timedelta(days=MODEL_DAYS - 1)
TINY_TRAINING = ["--epochs", "2", "--batch-size", "64", "--d-model", "16", "--blocks", "1", "--checkpoint-every", "2"]


@pytest.fixture(scope="session")
def model_lake(spark, tmp_path_factory) -> Path:
    """Built by the pipeline's own stages: generate, ingest, dedupe, sessionize, features."""
    root = tmp_path_factory.mktemp("model") / "lake"
    lake = ["--lake", str(root)]
    assert run_jobs("generate", *lake, "--users", "300", "--days", str(MODEL_DAYS),
                    "--start-date", MODEL_START.isoformat())[0] == 0
    # The backfill path: the whole landing folder in one ingest, every date in one pass of each stage.
    code, _, err = run_jobs("ingest", *lake, "--source", str(root / "raw" / "events"), "--no-validate")
    assert code == 0, err
    for stage in ("dedupe", "sessionize"):
        code, _, err = run_jobs(stage, *lake, "--from-date", MODEL_START.isoformat(), "--to-date",
                                MODEL_AS_OF.isoformat(), "--no-validate")
        assert code == 0, err
    code, out, err = run_jobs("features", *lake, "--date", MODEL_AS_OF.isoformat(), "--horizon-days", "1",
                              "--train-cutoffs", "2")
    assert code == 0, err
    return root


@pytest.fixture(scope="session")
def trained_version(model_lake) -> str:
    """One version trained by two workers on ``model_lake``."""
    from models.registry import Registry

    code, out, err = run_jobs("train", "--lake", str(model_lake), "--date", MODEL_AS_OF.isoformat(), "--workers", "2",
                              *TINY_TRAINING)
    assert code == 0, err + out
    return Registry(model_lake).latest()


# Scored twice, so the later date's demand forecast has a previous date to compare with.
SCORE_DATES = (MODEL_AS_OF - dt.timedelta(days=1), MODEL_AS_OF)
# 50 > the categories; the tiny model's calibrated probabilities sit near the base rate of about 0.01.
SCORE_OPTIONS = ["--top-k", "50", "--min-propensity", "0.01", "--segment-size", "20"]
MIN_PROPENSITY = 0.01


@pytest.fixture(scope="session")
def scored_lake(model_lake, trained_version, tmp_path_factory) -> Path:
    """A copy of the trained lake (the training tests judge promotion on theirs) with a champion, scored for
    both ``SCORE_DATES``."""
    import shutil

    from models.registry import Registry

    root = tmp_path_factory.mktemp("scored") / "lake"
    shutil.copytree(model_lake, root)
    Registry(root).set_champion(trained_version, {"reason": "set by the scoring tests"})
    for date in SCORE_DATES:
        code, out, err = run_jobs("score", "--lake", str(root), "--date", date.isoformat(), *SCORE_OPTIONS)
        assert code == 0, err + out
    return root
