"""Training throughput of the multi-worker Transformer, in sequences per second.

    python bench/bench_train.py --sequences 200000 --workers 2

Writes one Parquet shard per worker (random histories of full length L),
starts the workers exactly as ``jobs train``
does (``models.launch.launch_local``), and reports the chief's measured
throughput inside ``fit`` (sequences trained / seconds) next to the wall time
including TensorFlow start-up, and peak memory of all workers.
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
        for i in range(options.workers):
            pq.write_table(random_shard(per_worker, options.length, i), run_dir / "shards" / f"shard-{i:03d}.parquet")
        vocabulary = Vocabulary(tuple(CATEGORIES))
        threads = max(1, (os.cpu_count() or 1) // options.workers)
        spec = {"model": {"vocabulary_size": vocabulary.size, "sequence_length": options.length, "d_model": options.d_model,
                          "heads": options.heads, "blocks": options.blocks, "feed_forward": 2 * options.d_model},
                "epochs": options.epochs, "batch_size": options.batch_size, "learning_rate": 2e-3, "seed": 7,
                "checkpoint_every_steps": 100, "rows_per_shard": [per_worker] * options.workers,
                "threads_per_worker": threads, "vocabulary": list(vocabulary.categories)}
        (run_dir / "run.json").write_text(json.dumps(spec))
        started = time.perf_counter()
        with PeakMemory() as memory:
            launch_local(run_dir, options.workers, max_restarts=0, threads=threads)
        wall = time.perf_counter() - started
        attempt = json.loads((run_dir / "attempts.jsonl").read_text().splitlines()[-1])
        trained = attempt["epochs_run"] * attempt["steps_per_epoch"] * attempt["global_batch"]
        print(json.dumps({
            "sequences": options.sequences, "workers": options.workers, "global_batch": options.batch_size,
            "epochs": options.epochs, "sequences_trained": trained, "fit_seconds": attempt["seconds"],
            "sequences_per_second_in_fit": round(trained / attempt["seconds"]),
            "epoch_seconds": attempt["epoch_seconds"],
            # After the first epoch (graph tracing, collective set-up): the rate a long run trains at.
            "sequences_per_second_steady": (round(attempt["steps_per_epoch"] * attempt["global_batch"] * (
                len(attempt["epoch_seconds"]) - 1) / sum(attempt["epoch_seconds"][1:]))
                if len(attempt["epoch_seconds"]) > 1 else None),
            "wall_seconds_with_startup": round(wall, 1), "sequences_per_second_wall": round(trained / wall),
            "peak_rss_gb": round(memory.peak / 2**30, 2), "cpus": os.cpu_count(),
        }, indent=1))
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
