"""Training throughput of the multi-worker Transformer, in sequences per second.

    python bench/bench_train.py --sequences 200000 --workers 2

Writes one training and one validation Parquet shard per worker (random
histories of full length L; validation is 5% of the rows), starts the workers
exactly as ``jobs train`` does (``models.launch.launch_local``): the selection
phase runs every ``--epochs`` epoch (patience = epochs) scoring validation
after each, then the refit. Reports the steady training rate of the
selection phase's epochs (after the first; validation scoring excluded), the
refit's rate inside ``fit``, the wall time including TensorFlow start-up, and
peak memory of all workers.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_ingest_pipeline import PeakMemory  # noqa: E402
from jobs.generate.world import CATEGORIES  # noqa: E402
from models.launch import launch_local  # noqa: E402
from models.vocabulary import EVENT_TYPES, Vocabulary  # noqa: E402


def random_shard(rows: int, length: int, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    lists = lambda values: pa.ListArray.from_arrays(pa.array(np.arange(0, rows * length + 1, length, dtype=np.int32)), pa.array(values) if not isinstance(values, pa.ChunkedArray) else values.combine_chunks())  # noqa: E731
    windows = [sorted(set(rng.choice(CATEGORIES, rng.integers(1, 12)).tolist())) for _ in range(rows)]
    labels = [sorted(set(rng.choice(CATEGORIES, rng.integers(0, 6)).tolist())) for _ in range(rows)]
    return pa.table({
        "history_categories": lists(pa.array(rng.choice(CATEGORIES, rows * length))),
        "history_event_types": lists(pa.array(rng.choice(EVENT_TYPES, rows * length))),
        "history_gap_buckets": lists(pa.array(rng.integers(0, 9, rows * length), pa.int32())),
        "history_age_buckets": lists(pa.array(rng.integers(0, 9, rows * length), pa.int32())),
        "history_session_starts": lists(pa.array(rng.random(rows * length) < 0.1)),
        "window_categories": pa.array(windows, pa.list_(pa.string())),
        "window_category_events": pa.array([rng.integers(1, 30, len(w)).tolist() for w in windows], pa.list_(pa.int32())),
        "window_category_sessions": pa.array([rng.integers(1, 5, len(w)).tolist() for w in windows], pa.list_(pa.int32())),
        "window_category_days": pa.array([rng.integers(1, 5, len(w)).tolist() for w in windows], pa.list_(pa.int32())),
        "window_category_age_seconds": pa.array([(rng.random(len(w)) * 28 * 86400 + 1).tolist() for w in windows],
                                                pa.list_(pa.float64())),
        "label_categories": pa.array(labels, pa.list_(pa.string())),
        "has_new_category": pa.array(rng.random(rows) < 0.4),
    })


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequences", type=int, default=200_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--length", type=int, default=50)
    parser.add_argument("--d-model", type=int, default=32)
    parser.add_argument("--blocks", type=int, default=1)
    parser.add_argument("--heads", type=int, default=2)
    options = parser.parse_args()
    run_dir = Path(tempfile.mkdtemp(prefix="bench-train-"))
    try:
        per_worker = options.sequences // options.workers
        (run_dir / "shards").mkdir()
        per_worker_validation = max(options.batch_size, per_worker // 20)
        for i in range(options.workers):
            pq.write_table(random_shard(per_worker, options.length, i), run_dir / "shards" / f"train-{i:03d}.parquet")
            pq.write_table(random_shard(per_worker_validation, options.length, 100 + i),
                           run_dir / "shards" / f"validation-{i:03d}.parquet")
        vocabulary = Vocabulary(tuple(CATEGORIES))
        threads = max(1, (os.cpu_count() or 1) // options.workers)
        spec = {"model": {"vocabulary_size": vocabulary.size, "sequence_length": options.length, "d_model": options.d_model,
                          "heads": options.heads, "blocks": options.blocks, "feed_forward": 2 * options.d_model},
                "epochs": options.epochs, "patience": options.epochs, "batch_size": options.batch_size,
                "learning_rate": 2e-3, "seed": 7, "checkpoint_every_steps": 100,
                "rows_per_shard": [per_worker] * options.workers,
                "validation_rows_per_shard": [per_worker_validation] * options.workers,
                "threads_per_worker": threads, "vocabulary": list(vocabulary.categories)}
        (run_dir / "run.json").write_text(json.dumps(spec))
        started = time.perf_counter()
        with PeakMemory() as memory:
            launch_local(run_dir, options.workers, max_restarts=0, threads=threads)
        wall = time.perf_counter() - started
        attempt = json.loads((run_dir / "attempts.jsonl").read_text().splitlines()[-1])
        selection, refit = attempt["selection"], attempt["refit"]
        batch = attempt["global_batch"]
        refit_trained = refit["epochs_run"] * refit["steps_per_epoch"] * batch
        trained = selection["epochs_run"] * selection["steps_per_epoch"] * batch + refit_trained
        steady = selection["epoch_seconds"][1:]
        print(json.dumps({
            "sequences": options.sequences, "workers": options.workers, "global_batch": options.batch_size,
            "epochs": options.epochs, "sequences_trained": trained,
            # After the first epoch (graph tracing, collective set-up): the rate a long run trains at.
            "sequences_per_second_steady": round(selection["steps_per_epoch"] * batch * len(steady) / sum(steady))
            if steady else None,
            "selection_epoch_seconds": selection["epoch_seconds"],
            "selection_fit_seconds_with_validation": selection["seconds"],
            "refit_epochs": refit["epochs_run"], "refit_sequences_per_second_in_fit": round(refit_trained / refit["seconds"]),
            "wall_seconds_with_startup": round(wall, 1), "sequences_per_second_wall": round(trained / wall),
            "peak_rss_gb": round(memory.peak / 2**30, 2), "cpus": os.cpu_count(),
        }, indent=1))
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
