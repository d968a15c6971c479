"""Start training workers: N local processes, or one per Spark barrier-mode task.

Both build each worker's ``TF_CONFIG`` (the cluster's addresses and the
worker's index) and run the same ``python -m models.training_worker RUN_DIR``. Locally
a dead worker makes the launcher stop the group and start it again (up to
``max_restarts`` times): ``BackupAndRestore`` then resumes from the last
checkpoint. Under Spark, a failed worker fails the barrier stage and Spark
retries the whole stage, which resumes the same way.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


class TrainingFailed(RuntimeError):
    """Workers kept failing; the message names the log to read."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tf_config(addresses: list[str], index: int) -> str:
    return json.dumps({"cluster": {"worker": addresses}, "task": {"type": "worker", "index": index}})


def _worker_env(config: str, threads: int) -> dict:
    env = {**os.environ, "TF_CONFIG": config, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "2",
           "OMP_NUM_THREADS": str(threads), "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    env.pop("PYSPARK_GATEWAY_PORT", None)
    return env


def launch_local(run_dir: Path, workers: int, max_restarts: int = 2, threads: int = 1, poll_seconds: float = 0.5) -> int:
    """Run ``workers`` processes on this machine until all succeed; returns the restarts used.

    ``run_dir/workers.json`` lists the live workers' pids (what an operator, or
    the fault-tolerance test, uses to find them).
    """
    logs = run_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    for attempt in range(max_restarts + 1):
        addresses = [f"127.0.0.1:{free_port()}" for _ in range(workers)]
        processes = []
        for index in range(workers):
            log = open(logs / f"worker-{index}.attempt-{attempt}.log", "w")
            processes.append(subprocess.Popen([sys.executable, "-m", "models.training_worker", str(run_dir)], cwd=REPO,
                                              env=_worker_env(tf_config(addresses, index), threads),
                                              stdout=log, stderr=subprocess.STDOUT))
        (run_dir / "workers.json").write_text(json.dumps({"attempt": attempt, "pids": [p.pid for p in processes]}))
        failed = _wait(processes, poll_seconds)
        if failed is None:
            return attempt
        index, code = failed
        print(f"train: worker {index} exited with {code} (attempt {attempt + 1}); "
              f"{'restarting all workers from the last checkpoint' if attempt < max_restarts else 'giving up'}",
              flush=True)
    raise TrainingFailed(f"worker {index} failed {max_restarts + 1} times (exit {code}); see "
                         f"{logs / f'worker-{index}.attempt-{max_restarts}.log'}")


def _wait(processes: list[subprocess.Popen], poll_seconds: float) -> tuple[int, int] | None:
    """None when every worker succeeded; else (index, exit code) of the first failure, the rest stopped."""
    while True:
        codes = [p.poll() for p in processes]
        failed = [(i, c) for i, c in enumerate(codes) if c not in (None, 0)]
        if failed:
            for p in processes:
                if p.poll() is None:
                    p.kill()
            for p in processes:
                p.wait()
            return failed[0]
        if all(c == 0 for c in codes):
            return None
        time.sleep(poll_seconds)


def launch_spark(spark, run_dir: Path, workers: int, threads: int = 1) -> None:
    """One worker per task of a barrier stage: all start together, or none do.

    Each task picks a free port on its executor, the tasks exchange
    ``host:port`` with ``allGather`` (ordered by partition), and each runs the
    worker script with the resulting ``TF_CONFIG``. Needs ``workers`` free task
    slots; ``run_dir`` must be on storage every executor sees (the lake).
    """
    from jobs.core.errors import PipelineError
    from jobs.core.spark import is_remote

    if is_remote(spark):  # barrier stages are RDD work, which Spark Connect clients cannot submit
        raise PipelineError("--launcher spark needs a driver of its own: run train under spark-submit (the DAG "
                            "does), or with IM_SPARK_REMOTE unset, or use --launcher local")
    run, repo = str(run_dir), str(REPO)

    def run_worker(_):
        from pyspark import BarrierTaskContext

        context = BarrierTaskContext.get()
        index = context.partitionId()
        host = context.getTaskInfos()[index].address.split(":")[0]
        addresses = context.allGather(f"{host}:{free_port()}")
        if index == 0:  # which executor ran each worker, for operators (and the cluster test)
            executors = [info.address for info in context.getTaskInfos()]
            (Path(run) / "workers.json").write_text(json.dumps({"launcher": "spark", "executors": executors,
                                                                 "tf_addresses": addresses}))
        with open(Path(run) / "logs" / f"worker-{index}.spark-attempt-{context.attemptNumber()}.log", "w") as log:
            code = subprocess.run([sys.executable, "-m", "models.training_worker", run], cwd=repo, stdout=log,
                                  stderr=subprocess.STDOUT, env=_worker_env(tf_config(addresses, index), threads)).returncode
        if code != 0:
            raise RuntimeError(f"training worker {index} exited with {code}; see {log.name}")
        context.barrier()
        yield index

    (run_dir / "logs").mkdir(parents=True, exist_ok=True)
    spark.sparkContext.parallelize(range(workers), workers).barrier().mapPartitions(run_worker).collect()
