"""Training features and training on a real Spark standalone cluster.

The cluster (``spark_cluster`` in ``tests/conftest.py``: a master and two
workers started from the project's own pyspark) also runs the nightly data
stages and scoring: the suite's Spark Connect server has its executors there,
and the DAG's publishing night (``tests/dags/test_nightly_run.py``) runs every
stage on it and compares what they rewrote with local mode's tables. That
night builds score sequences only; here, on a copy of the suite's local-mode
lake (``model_lake``: 300 generated users, eight days) without its sequences,
``features`` builds the training splits with their labels as a client of that
server, and they must equal local mode's row for row. Then the one stage that
cannot be a Connect client: ``train --launcher spark``, submitted with
``spark-submit --master spark://...`` and the Delta jars as the DAG submits it.
Its two barrier tasks must run on two different executors (one core each: the
Connect server holds the workers' other core, ``connect_server``), and the
version it registers must say so and hold a saved model.
"""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from jobs.core.classpath import driver_java_options, spark_submit_arguments
from tests.conftest import MODEL_AS_OF, QUICK_JVM, TINY_TRAINING, delta_rows, run_jobs_isolated

ROOT = Path(__file__).resolve().parents[1]


def _submit(cluster: dict, *args: str) -> str:
    command = [str(cluster["spark_home"] / "bin" / "spark-submit"), "--master", cluster["master"],
               "--conf", "spark.executor.cores=1", "--conf", "spark.executor.memory=1g",
               "--conf", "spark.cores.max=2", "--driver-memory", "1g",
               # A submit is a new driver and two new executors, each JIT-compiling the same classes on two
               # cores: compiling with C1 only took 20 s off each of these short applications (measured here).
               "--conf", f"spark.driver.extraJavaOptions={driver_java_options(QUICK_JVM)}",
               "--conf", f"spark.executor.extraJavaOptions={QUICK_JVM}",
               *spark_submit_arguments(), str(ROOT / "jobs" / "__main__.py"), *args]
    result = subprocess.run(command, env={**cluster["env"], "IM_SHUFFLE_PARTITIONS": "2", "TF_CPP_MIN_LOG_LEVEL": "2"},
                            cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, f"{args[0]} failed on the cluster:\n{(result.stdout + result.stderr)[-5000:]}"
    return result.stdout


def test_training_features_and_training_on_a_standalone_cluster_match_local_mode_on_two_executors(
        spark_cluster, connect_server, model_lake, tmp_path):
    from models.registry import Registry

    lake_root = tmp_path / "lake"
    # The tables features reads; not the landing files, the local sequences, nor the suite's registered versions.
    shutil.copytree(model_lake, lake_root, ignore=lambda folder, names: (
        {"raw", "models", "user_sequences"} & set(names) if Path(folder) == model_lake else ()))
    # As model_lake's own features ran (tests/conftest.py): train, validation and test splits, with labels.
    code, out, err = run_jobs_isolated("features", "--lake", str(lake_root), "--date", MODEL_AS_OF.isoformat(),
                                       "--horizon-days", "1", "--train-cutoffs", "2", remote=connect_server)
    assert code == 0, f"features failed over Spark Connect:\n{(out + err)[-5000:]}"
    built = delta_rows(lake_root, "user_sequences")
    assert built and built == delta_rows(model_lake, "user_sequences"), "user_sequences: the cluster and local mode differ"
    _submit(spark_cluster, "train", "--lake", str(lake_root), "--date", MODEL_AS_OF.isoformat(), "--workers", "2",
            "--launcher", "spark", *TINY_TRAINING)
    registry = Registry(lake_root)
    version = registry.latest()
    workers = json.loads((registry.version_dir(version) / "run" / "workers.json").read_text())
    assert workers["launcher"] == "spark" and len(set(workers["executors"])) == 2, workers
    assert registry.metadata(version)["training"]["launcher"] == "spark"
    assert (registry.version_dir(version) / "saved_model" / "saved_model.pb").is_file()
