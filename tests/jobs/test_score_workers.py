"""Score's worker side without Spark: the sequences as Arrow in, the scored files out (jobs/score/workers.py)."""
from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest

from tests.isolated import run_isolated


def test_a_worker_scores_arrow_batches_into_its_three_kinds_of_files_without_spark(model_lake, trained_version,
                                                                                    tmp_path):
    # A process of its own: the worker sets TensorFlow's thread pools, which only a process's first op may do.
    run_isolated(check_worker_files, model_lake, trained_version, str(tmp_path), fresh=True)


def check_worker_files(model_lake: str, trained_version: str, scratch: str) -> None:
    """No Spark session anywhere: delta-rs reads the sequences, the worker function runs as a plain generator."""
    import numpy as np
    import pyarrow.parquet as pq
    from deltalake import DeltaTable

    from jobs.score.workers import SEQUENCE_COLUMNS, ScoredFiles, WorkerJob, score_batches
    from models.registry import Registry

    import pyarrow.compute as pc

    snapshot = DeltaTable(f"{model_lake}/user_sequences").to_pyarrow_table(columns=[*SEQUENCE_COLUMNS, "cutoff_date"])
    # One cutoff: one row per user, as score gets them.
    counts = pc.value_counts(snapshot["cutoff_date"]).to_pylist()
    cutoff = max(counts, key=lambda c: c["counts"])["values"]
    sequences = snapshot.filter(pc.equal(snapshot["cutoff_date"], cutoff)).select(list(SEQUENCE_COLUMNS))
    users = sequences.num_rows
    assert users > 100 and len(set(sequences.column("user_id").to_pylist())) == users
    job = WorkerJob(str(Registry(Path(model_lake)).version_dir(trained_version)), top_k=3, batch_rows=64,
                    threads=1, min_propensity=0.0, segment_size=2, model_version=trained_version,
                    scored_at=dt.datetime(2024, 10, 9, tzinfo=dt.timezone.utc), scratch=scratch)
    ScoredFiles(scratch).make()
    # Uneven batches, as Spark sends them; the worker regroups them into batch_rows.
    tasks = list(score_batches(job, iter(sequences.to_batches(max_chunksize=37))))
    assert [t.to_pylist() for t in tasks] == [[{"partition": 0, "users": users}]]
    predictions = pq.read_table(Path(scratch) / "predictions" / "part-00000.parquet")
    assert predictions.column("user_id").to_pylist() == sequences.column("user_id").to_pylist()
    for row in predictions.to_pylist():
        probabilities = [c["probability"] for c in row["top_categories"]]
        assert len(probabilities) == 3 and probabilities == sorted(probabilities, reverse=True)
        assert all(0 <= p <= 1 for p in probabilities) and 0 <= row["migration_probability"] <= 1
        assert row["model_version"] == trained_version
    # Position p among the ranked categories is the vocabulary's p-th category (padding and "(other)" excluded).
    from models.vocabulary import Vocabulary

    categories = list(Vocabulary.load(Path(job.version_dir) / "vocabulary.json").categories)
    assert {c["category"] for row in predictions.to_pylist() for c in row["top_categories"]} <= set(categories)
    window = {user: set(seen) for user, seen in zip(sequences.column("user_id").to_pylist(),
                                                    sequences.column("window_categories").to_pylist())}
    # Demand: per category, the users whose window lacks it, counted from the input itself.
    demand = pq.read_table(Path(scratch) / "demand" / "part-00000.parquet").to_pylist()
    assert [row["pos"] for row in demand] == list(range(len(categories)))
    for row in demand:
        assert row["users_new"] == sum(categories[row["pos"]] not in seen for seen in window.values())
        assert 0 <= row["expected_new_users"] <= row["expected_users"] + 1e-9 <= users + 1e-9
    # Prospects: categories new to the user only, and per category at most segment_size users plus ties at the cut.
    prospects = pq.read_table(Path(scratch) / "prospects" / "part-00000.parquet").to_pylist()
    assert prospects
    for row in prospects:
        assert categories[row["pos"]] not in window[row["user_id"]]
    for position in {row["pos"] for row in prospects}:
        kept = sorted((row["probability"] for row in prospects if row["pos"] == position), reverse=True)
        assert len(kept) <= 2 or kept[2:] == [kept[1]] * (len(kept) - 2)
    assert np.isfinite([row["probability"] for row in prospects]).all()


class _ServerSettings:
    """What a Spark Connect client session answers for ``conf.get``: its server's settings (it has no JVM here)."""

    def __init__(self, **settings: str):
        self.settings = settings

    def get(self, key: str, default: str | None = None) -> str | None:
        return self.settings.get(key, default)


class _ConnectClient:
    def __init__(self, **settings: str):
        self.conf = _ServerSettings(**settings)


@pytest.mark.parametrize("settings, cores_per_task", [
    ({"spark.master": "local[2]"}, 2), ({"spark.master": "local[*]"}, None), ({"spark.master": "local"}, 1),
    ({"spark.master": "local[3,2]"}, 3), ({"spark.master": "spark://host:7077"}, "cluster"),
    ({"spark.master": "spark://host:7077", "spark.task.cpus": "2"}, "cluster"),
])
def test_a_connect_client_gives_each_scoring_worker_its_share_of_the_servers_cores(settings, cores_per_task):
    """The suite's Connect server runs on a cluster; `make run`'s runs in local mode, where the client reads the
    server's local[N] to split the machine's cores between the Python workers that score at once."""
    from jobs.core.spark import local_parallelism
    from jobs.score.driver import threads_per_worker

    client = _ConnectClient(**settings)
    cpus = os.cpu_count() or 1
    if cores_per_task == "cluster":
        assert local_parallelism(client) is None
        assert threads_per_worker(client) == int(settings.get("spark.task.cpus", "1"))
    else:
        tasks = cpus if cores_per_task is None else cores_per_task
        assert local_parallelism(client) == tasks
        assert threads_per_worker(client) == max(1, cpus // tasks)
