"""``python -m jobs train --date D``: a new model version from ``user_sequences`` as of D.

Spark reads the training split, fits the category vocabulary (a small
aggregate) and writes one Parquet shard per worker into the version's run
folder; then ``--workers N`` TensorFlow workers train under
``MultiWorkerMirroredStrategy``, each on its own shard: N local processes
(``--launcher local``, the default) or one per Spark barrier task
(``--launcher spark``, for a cluster). The version lands in the registry with
its SavedModel, vocabulary, configuration, training window and code version;
``evaluate`` then decides whether it becomes the champion.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import time
from pathlib import Path

from pyspark.sql import functions as F

from jobs.config import PipelineConfig
from jobs.errors import PipelineError
from jobs.runs import record_run
from jobs.stage import open_stage_lake, require_date
from jobs.tables import USER_SEQUENCES
from models.cutoffs import TRAIN
from models.encoding import INPUT_COLUMNS, LABEL_COLUMNS
from models.launch import TrainingFailed, launch_local, launch_spark
from models.registry import Registry, code_version
from models.vocabulary import Vocabulary


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workers", type=int, default=2, help="TensorFlow workers (default 2)")
    parser.add_argument("--launcher", choices=["local", "spark"], default="local",
                        help="local: N processes here; spark: one per Spark barrier task (default local)")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=512, help="global batch, split across workers (default 512)")
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--d-model", type=int, default=32, help="embedding width (default 32: bench/bench_train.py)")
    parser.add_argument("--blocks", type=int, default=1, help="attention blocks (default 1: models/transformer.py)")
    parser.add_argument("--heads", type=int, default=2)
    parser.add_argument("--checkpoint-every", type=int, default=100, help="steps between checkpoints (default 100)")
    parser.add_argument("--max-restarts", type=int, default=2, help="restarts of the worker group after a failure")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--run-id", help="the pipeline run (Airflow run id) training this version: its evaluate "
                                         "task finds the version by it")


def run(args: argparse.Namespace, config: PipelineConfig) -> dict:
    as_of = require_date(args.date, "train", "the as-of date of the user_sequences to train on")
    if args.workers < 1:
        raise PipelineError("--workers must be at least 1")
    lake = open_stage_lake(config, "train", USER_SEQUENCES, made_by="features")
    registry = Registry(config.lake)
    with record_run(lake, "train", as_of) as metrics:
        sequences = lake.read(USER_SEQUENCES, partitions={"as_of_date": [as_of.isoformat()]})
        train = sequences.where(F.col("split") == TRAIN)
        window = train.agg(F.count(F.lit(1)).alias("rows"), F.min("cutoff_date").alias("first"),
                           F.max("cutoff_date").alias("last"), F.max("history_length").alias("length")).first()
        if not window["rows"]:
            raise PipelineError(f"no training sequences in user_sequences for as_of_date {as_of}: "
                                f"run features --date {as_of} --mode train first")
        if "history_days" not in train.columns:
            raise PipelineError(f"user_sequences for as_of_date {as_of} predates its history_days column: "
                                f"run features --date {as_of} again")
        vocabulary = _fit_vocabulary(train)
        version = registry.new_version(as_of)
        folder = registry.version_dir(version)
        run_dir = folder / "run"
        shard_rows = _write_shards(train, run_dir / "shards", args.workers, args.seed)
        shape = train.select("sequence_length", "history_days", "horizon_days").first()
        length = int(shape["sequence_length"])
        model_config = {"vocabulary_size": vocabulary.size, "sequence_length": length, "d_model": args.d_model,
                        "heads": args.heads, "blocks": args.blocks, "feed_forward": 2 * args.d_model}
        threads = max(1, (os.cpu_count() or 1) // args.workers)
        spec = {"model": model_config, "epochs": args.epochs, "batch_size": args.batch_size,
                "learning_rate": args.learning_rate, "seed": args.seed, "checkpoint_every_steps": args.checkpoint_every,
                "rows_per_shard": shard_rows, "threads_per_worker": threads, "vocabulary": list(vocabulary.categories)}  # read by each worker
        (run_dir / "run.json").write_text(json.dumps(spec, indent=1))
        vocabulary.save(run_dir / "vocabulary.json")
        print(f"train {as_of}: version {version}, {window['rows']:,} sequences from cutoffs {window['first']} to "
              f"{window['last']}, {len(vocabulary.categories)} categories, {args.workers} workers ({args.launcher})",
              flush=True)
        started = time.perf_counter()
        try:
            restarts = 0
            if args.launcher == "spark":
                launch_spark(lake.spark, run_dir, args.workers, threads)
            else:
                restarts = launch_local(run_dir, args.workers, args.max_restarts, threads)
        except (TrainingFailed, Exception) as error:
            raise PipelineError(f"training of version {version} failed: {error}") from error
        seconds = time.perf_counter() - started
        attempts = [json.loads(line) for line in (run_dir / "attempts.jsonl").read_text().splitlines()]
        shutil.move(str(run_dir / "saved_model"), folder / "saved_model")
        vocabulary.save(folder / "vocabulary.json")
        final = attempts[-1]
        trained = final["epochs_run"] * final["steps_per_epoch"] * final["global_batch"]
        metadata = {
            "version": version, "as_of_date": as_of.isoformat(), "status": "trained", "code_version": code_version(),
            "model": model_config, "vocabulary_size": vocabulary.size,
            "training": {"workers": args.workers, "launcher": args.launcher, "epochs": args.epochs,
                         "batch_size": args.batch_size, "learning_rate": args.learning_rate, "seed": args.seed,
                         "sequences": int(window["rows"]), "restarts": restarts, "attempts": attempts,
                         "wall_seconds": round(seconds, 1),
                         "sequences_per_second": round(trained / final["seconds"], 1) if final["seconds"] else None},
            # score rebuilds sequences exactly so: the window counts depend on history_days.
            "training_window": {"train_cutoffs": [str(window["first"]), str(window["last"])],
                                "history_days": int(shape["history_days"]), "horizon_days": int(shape["horizon_days"]),
                                # Test cutoffs before this date saw labels this version trained on.
                                "labels_end": str(window["last"] + dt.timedelta(days=int(shape["horizon_days"])))},
        }
        registry.write_metadata(version, metadata)
        if args.run_id:
            registry.record_training_run(args.run_id, version)
        shutil.rmtree(run_dir / "shards", ignore_errors=True)
        metrics.rows_in = int(window["rows"])
        metrics.details = {"version": version, "restarts": restarts, "seconds": round(seconds, 1),
                           "loss": final["loss"]}
    print(f"train {as_of}: version {version} trained in {seconds:.1f}s "
          f"({metadata['training']['sequences_per_second']} sequences/s, loss {final['loss']}, {restarts} restarts) "
          f"-> {folder}")
    return {"version": version, "metadata": metadata}


def _fit_vocabulary(train) -> Vocabulary:
    """Categories of the training history windows and labels, with counts: a few dozen rows reach the driver."""
    categories = train.select(F.explode(F.concat("window_categories", "label_categories")).alias("c"))
    counts = categories.groupBy("c").count().collect()
    return Vocabulary.fit(c for row in counts for c in [row["c"]] * int(row["count"]))


def _write_shards(train, folder: Path, workers: int, seed: int) -> list[int]:
    """One Parquet file per worker, rows spread at random; returns the rows per shard."""
    import pyarrow.parquet as pq

    staging = folder.with_name("shards-spark")
    shutil.rmtree(staging, ignore_errors=True)
    (train.select(*INPUT_COLUMNS, *LABEL_COLUMNS)
     .repartition(workers, F.xxhash64("user_id", "cutoff_date", F.lit(seed))).write.parquet(str(staging)))
    files = sorted(staging.glob("part-*.parquet"))
    if len(files) != workers:
        raise PipelineError(f"{len(files)} non-empty shards for {workers} workers: too few training sequences")
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, file in enumerate(files):
        target = folder / f"shard-{i:03d}.parquet"
        shutil.move(str(file), target)
        rows.append(pq.read_metadata(target).num_rows)
    shutil.rmtree(staging, ignore_errors=True)
    return rows
