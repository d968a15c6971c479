"""The nightly stages on a real Spark standalone cluster: a master and two workers on this machine.

The cluster is started from the project's own pyspark (``bin/spark-class``,
as ``docs``/the README's cluster command does). The data stages and scoring
run as clients of a Spark Connect server whose executors are on the cluster
(``python -m jobs connect-server`` with ``IM_SPARK_MASTER``); training is
submitted with ``spark-submit --master spark://...``, the Delta jars passed as
the DAG passes them (one spark-submit: each costs a driver and two executors
of their own). On the data of the suite's local-mode lake (``model_lake``:
300 generated users, eight days: few enough to be quick, enough for training
at a one-day horizon to have train cutoffs, a validation cutoff and three
test origins, and free, since the suite builds that lake anyway), ingest,
dedupe, sessionize and features must give the same tables as the local run;
training runs with ``--launcher spark``, one TensorFlow worker per barrier
task, and the two tasks must run on two different executors (one core each);
scoring must publish a prediction for every active user.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pyspark
import pytest

from jobs.core.classpath import driver_java_options, spark_submit_arguments
from jobs.core.lake import open_lake
from tests.conftest import MODEL_AS_OF, MODEL_DAYS, SCORE_OPTIONS, TINY_TRAINING, running_connect_server

ROOT = Path(__file__).resolve().parents[1]
SPARK_HOME = Path(pyspark.__file__).parent
QUICK_JVM = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"
DATA_TABLES = ("events_clean", "events_quarantine", "events", "sessions", "user_sequences")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _alive_workers(webui: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{webui}/json/", timeout=5) as response:
            return int(json.load(response).get("aliveworkers", 0))
    except OSError:
        return 0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """``spark://127.0.0.1:PORT`` of a running master with two registered workers; stopped after."""
    folder = tmp_path_factory.mktemp("cluster")
    env = {**os.environ, "SPARK_HOME": str(SPARK_HOME), "SPARK_LOCAL_IP": "127.0.0.1", "PYTHONPATH": str(ROOT),
           "SPARK_LOG_DIR": str(folder / "logs"), "PYSPARK_PYTHON": sys.executable}
    port, webui = _free_port(), _free_port()
    master = f"spark://127.0.0.1:{port}"
    commands = [["org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", str(port),
                 "--webui-port", str(webui)]]
    for i in range(2):
        # Two cores each (on a 2-core machine: over-subscribed, which only a benchmark would mind): one for the
        # Spark Connect server's executor, one for the training application's barrier task.
        commands.append(["org.apache.spark.deploy.worker.Worker", "--cores", "2", "--memory", "3g",
                         "--host", "127.0.0.1", "--webui-port", str(_free_port()),
                         "--work-dir", str(folder / f"worker-{i}"), master])
    processes = []
    try:
        for i, command in enumerate(commands):
            log = open(folder / f"daemon-{i}.log", "w")
            processes.append(subprocess.Popen([str(SPARK_HOME / "bin" / "spark-class"), *command], env=env, cwd=folder,
                                              stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
            if i == 0:
                deadline = time.monotonic() + 60
                while _alive_workers(webui) == 0 and not _master_up(webui):
                    assert time.monotonic() < deadline, (folder / "daemon-0.log").read_text()[-3000:]
                    time.sleep(0.5)
        deadline = time.monotonic() + 90
        while _alive_workers(webui) < 2:
            assert time.monotonic() < deadline, "the two workers never registered with the master"
            time.sleep(0.5)
        yield {"master": master, "env": env}
    finally:
        for process in processes:
            try:
                os.killpg(process.pid, 15)
            except ProcessLookupError:
                pass
        for process in processes:
            process.wait(timeout=30)


def _master_up(webui: int) -> bool:
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{webui}/json/", timeout=5).close()
        return True
    except OSError:
        return False


def _submit(cluster: dict, *args: str) -> str:
    command = [str(SPARK_HOME / "bin" / "spark-submit"), "--master", cluster["master"],
               "--conf", "spark.executor.cores=1", "--conf", "spark.executor.memory=1g",
               "--conf", "spark.cores.max=2", "--driver-memory", "1g",
               # Each submit is a new driver and two new executors, each JIT-compiling the same classes on two
               # cores: compiling with C1 only took 20 s off each of these short applications (measured here).
               "--conf", f"spark.driver.extraJavaOptions={driver_java_options(QUICK_JVM)}",
               "--conf", f"spark.executor.extraJavaOptions={QUICK_JVM}",
               *spark_submit_arguments(), str(ROOT / "jobs" / "__main__.py"), *args]
    result = subprocess.run(command, env={**cluster["env"], "IM_SHUFFLE_PARTITIONS": "2", "TF_CPP_MIN_LOG_LEVEL": "2"},
                            cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, f"{args[0]} failed on the cluster:\n{(result.stdout + result.stderr)[-5000:]}"
    return result.stdout


@pytest.fixture(scope="module")
def connect_on_cluster(cluster, tmp_path_factory):
    """A Spark Connect server (``python -m jobs connect-server``) whose executors run on the cluster, one core on
    each worker; its ``sc://`` address."""
    env = {**cluster["env"], "IM_SPARK_MASTER": cluster["master"], "IM_SPARK_DRIVER_MEMORY": "1g",
           "IM_SHUFFLE_PARTITIONS": "2", "IM_SPARK_DRIVER_JAVA_OPTIONS": QUICK_JVM}
    settings = ["--conf", "spark.executor.cores=1", "--conf", "spark.executor.memory=1g", "--conf",
                "spark.cores.max=2", "--conf", f"spark.executor.extraJavaOptions={QUICK_JVM}"]
    with running_connect_server(env, tmp_path_factory.mktemp("connect") / "server.log", *settings) as address:
        yield address


def _client(remote: str, *args: str) -> str:
    """A stage as a client of the Spark Connect server on the cluster (no driver of its own)."""
    result = subprocess.run([sys.executable, "-m", "jobs", *args], cwd=ROOT, capture_output=True, text=True,
                            timeout=900, env={**os.environ, "IM_SPARK_REMOTE": remote, "IM_SHUFFLE_PARTITIONS": "2",
                                              "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert result.returncode == 0, f"{args[0]} failed over Spark Connect:\n{(result.stdout + result.stderr)[-5000:]}"
    return result.stdout


def _canonical(value):
    """Rows as comparable values: maps (props) sorted, nested rows as dicts."""
    if isinstance(value, dict):
        return tuple(sorted((k, _canonical(v)) for k, v in value.items()))
    if isinstance(value, list):
        return tuple(_canonical(v) for v in value)
    return value


def _table(lake, table: str) -> list:
    return sorted((_canonical(r.asDict(recursive=True)) for r in lake.read(table).collect()), key=repr)


def test_the_nightly_stages_on_a_standalone_cluster_match_local_mode_and_train_on_both_workers(
        spark, cluster, connect_on_cluster, model_lake, tmp_path):
    lake_root = tmp_path / "lake"
    lake_root.mkdir()
    landing = model_lake / "raw" / "events"
    common = ["--lake", str(lake_root)]
    last = MODEL_AS_OF.isoformat()
    # The data stages as clients of the Spark Connect server, whose executors are on the workers (as `make run`
    # runs them); training below is submitted with spark-submit, its driver on this machine, as the DAG submits.
    remote = connect_on_cluster
    _client(remote, "ingest", *common, "--source", str(landing), "--no-validate")
    _client(remote, "dedupe", *common, "--date", last, "--previous-days", str(MODEL_DAYS - 1), "--no-validate")
    _client(remote, "sessionize", *common, "--date", last, "--previous-days", str(MODEL_DAYS - 1), "--no-validate")
    _client(remote, "features", *common, "--date", last, "--horizon-days", "1", "--train-cutoffs", "2")

    local, on_cluster = open_lake(spark, model_lake), open_lake(spark, lake_root)
    for table in DATA_TABLES:
        assert _table(on_cluster, table) == _table(local, table), f"{table} differs between cluster and local mode"

    _submit(cluster, "train", *common, "--date", last, "--workers", "2", "--launcher", "spark", *TINY_TRAINING)
    from models.registry import Registry

    registry = Registry(lake_root)
    version = registry.latest()
    workers = json.loads((registry.version_dir(version) / "run" / "workers.json").read_text())
    assert workers["launcher"] == "spark" and len(set(workers["executors"])) == 2, workers
    assert registry.metadata(version)["training"]["launcher"] == "spark"
    assert (registry.version_dir(version) / "saved_model" / "saved_model.pb").is_file()
    registry.set_champion(version, {"reason": "set by the cluster test"})
    out = _client(remote, "score", *common, "--date", last, *SCORE_OPTIONS)
    predictions = on_cluster.read("user_interest_predictions").where(f"score_date = '{last}'")
    assert predictions.count() > 0 and f"score {last}" in out
    assert predictions.select("user_id").distinct().count() == predictions.count()
    assert not any((lake_root / "_staging").iterdir()) if (lake_root / "_staging").exists() else True
    shutil.rmtree(lake_root, ignore_errors=True)
