"""``python -m jobs train --date D``: a new model version from ``user_sequences`` as of D.

Spark reads the training and validation splits, fits the category
vocabulary (a small aggregate) and writes one Parquet shard per worker and
split into the version's run folder; then ``--workers N`` TensorFlow workers
train under ``MultiWorkerMirroredStrategy``, each on its own shards: N local
processes (``--launcher local``, the default) or one per Spark barrier task
(``--launcher spark``, for a cluster). They choose the number of epochs and
the heads' calibration on the validation cutoff, then refit on training and
validation cutoffs together (``models/training_worker.py``); the test origins stay for
``evaluate``. The version lands in the registry with
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
from typing import TYPE_CHECKING

from jobs.core.config import PipelineConfig, check_range, default_help, fill_from_settings
from jobs.core.errors import PipelineError
from jobs.core.stage import open_stage_lake, require_date
from jobs.core.tables import USER_SEQUENCES
from models.cutoffs import TRAIN, VALIDATION

if TYPE_CHECKING:  # imported where they run: `--help` stays quick (jobs/cli.py)
    from models.registry import Registry
    from models.vocabulary import Vocabulary


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workers", type=int, help=f"TensorFlow workers ({default_help('training_workers')})")
    parser.add_argument("--launcher", choices=["local", "spark"],
                        help="local: N processes here; spark: one per Spark barrier task "
                             f"({default_help('training_launcher')})")
    parser.add_argument("--epochs", type=int,
                        help="at most this many epochs; validation NDCG@10 chooses how many "
                             f"({default_help('training_epochs')})")
    parser.add_argument("--patience", type=int, default=2,
                        help="stop after this many epochs without a better validation NDCG@10 (default 2)")
    parser.add_argument("--batch-size", type=int,
                        help=f"global batch, split across workers ({default_help('training_batch_size')})")
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--d-model", type=int, default=32, help="embedding width (default 32: bench/bench_train.py)")
    parser.add_argument("--blocks", type=int, default=1, help="attention blocks (default 1: models/transformer.py)")
    parser.add_argument("--heads", type=int, default=2)
    parser.add_argument("--encoder", choices=["transformer", "lstm"], default="transformer",
                        help="the sequence encoder (default transformer: bench/bench_model_variants.py)")
    parser.add_argument("--warm-start", nargs="?", const="always", default="never",
                        choices=["never", "auto", "always"],
                        help="fine-tune the champion's weights on these cutoffs instead of training from scratch "
                             "(same architecture; categories mapped by name). always (the bare flag): refuse when "
                             "there is no such champion; auto: from scratch then (default never)")
    parser.add_argument("--checkpoint-every", type=int, default=100, help="steps between checkpoints (default 100)")
    parser.add_argument("--max-restarts", type=int, default=2, help="restarts of the worker group after a failure")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--run-id", help="the pipeline run (Airflow run id) training this version: its evaluate "
                                         "task finds the version by it")


def run(args: argparse.Namespace, config: PipelineConfig) -> dict:
    from pyspark.sql import functions as F

    from jobs.core.runs import record_run
    from models.architecture import ARCHITECTURE
    from models.encoding import INPUTS_VERSION
    from models.launch import TrainingFailed, launch_local, launch_spark
    from models.registry import Registry, code_version
    from models.tracking import Tracking
    from models.training_worker import TENSORBOARD

    as_of = require_date(args.date, "train", "the as-of date of the user_sequences to train on")
    fill_from_settings(args, config, {"workers": "training_workers", "launcher": "training_launcher",
                                      "epochs": "training_epochs", "batch_size": "training_batch_size"})
    check_range("training_workers", args.workers, "--workers")
    lake = open_stage_lake(config, "train", USER_SEQUENCES, made_by="features")
    registry = Registry(config.lake)
    with record_run(lake, "train", as_of) as metrics:
        sequences = lake.read(USER_SEQUENCES, partitions={"as_of_date": [as_of.isoformat()]})
        train = sequences.where(F.col("split") == TRAIN)
        validation = sequences.where(F.col("split") == VALIDATION)
        window = train.agg(F.count(F.lit(1)).alias("rows"), F.min("cutoff_date").alias("first"),
                           F.max("cutoff_date").alias("last"), F.max("history_length").alias("length")).first()
        if not window["rows"]:
            raise PipelineError(f"no training sequences in user_sequences for as_of_date {as_of}: "
                                f"run features --date {as_of} --mode train first")
        if "history_days" not in train.columns:
            raise PipelineError(f"user_sequences for as_of_date {as_of} predates its history_days column: "
                                f"run features --date {as_of} again")
        validation_cutoff = validation.agg(F.max("cutoff_date")).first()[0]
        if validation_cutoff is None:
            raise PipelineError(f"no validation sequences in user_sequences for as_of_date {as_of}: "
                                f"run features --date {as_of} --mode train again")
        vocabulary = _fit_vocabulary(train.unionByName(validation))
        shape = train.select("sequence_length", "history_days", "horizon_days").first()
        length = int(shape["sequence_length"])
        model_config = {"vocabulary_size": vocabulary.size, "sequence_length": length, "d_model": args.d_model,
                        "heads": args.heads, "blocks": args.blocks, "feed_forward": 2 * args.d_model,
                        "encoder": args.encoder, "inputs_version": INPUTS_VERSION, "architecture": ARCHITECTURE}
        threads = max(1, (os.cpu_count() or 1) // args.workers)
        # Before a version folder or a shard exists: a refused warm start leaves nothing behind.
        warm_start = _warm_start_source(registry, model_config, args.warm_start)
        version = registry.new_version(as_of)
        folder = registry.version_dir(version)
        run_dir = folder / "run"
        shard_rows = _write_shards(train, run_dir / "shards", "train", args.workers, args.seed)
        validation_rows = _write_shards(validation, run_dir / "shards", "validation", args.workers, args.seed)
        spec = {"model": model_config, "epochs": args.epochs, "patience": args.patience, "batch_size": args.batch_size,
                "learning_rate": args.learning_rate, "seed": args.seed, "checkpoint_every_steps": args.checkpoint_every,
                "rows_per_shard": shard_rows, "validation_rows_per_shard": validation_rows,
                "threads_per_worker": threads, "vocabulary": list(vocabulary.categories),
                "warm_start": warm_start}  # read by each worker
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
        if (run_dir / TENSORBOARD).is_dir():
            shutil.move(str(run_dir / TENSORBOARD), folder / TENSORBOARD)
        vocabulary.save(folder / "vocabulary.json")
        final = attempts[-1]
        selection = json.loads((run_dir / "selection.json").read_text())
        refit = final["refit"]
        trained = refit["epochs_run"] * refit["steps_per_epoch"] * final["global_batch"]
        metadata = {
            "version": version, "as_of_date": as_of.isoformat(), "status": "trained", "code_version": code_version(),
            "model": model_config, "vocabulary_size": vocabulary.size,
            "training": {"workers": args.workers, "launcher": args.launcher, "epochs": args.epochs,
                         "batch_size": args.batch_size, "learning_rate": args.learning_rate, "seed": args.seed,
                         "patience": args.patience, "sequences": int(window["rows"]),
                         "warm_start_from": warm_start["version"] if warm_start else None,
                         "validation_sequences": sum(validation_rows), "restarts": restarts, "attempts": attempts,
                         "best_epoch": selection["best_epoch"], "validation_ndcg@10": selection["ndcg@10"],
                         "validation_by_epoch": [{k: e[k] for k in ("epoch", "ndcg@10")} for e in selection["epochs"]],
                         "wall_seconds": round(seconds, 1),
                         "sequences_per_second": round(trained / refit["seconds"], 1) if refit["seconds"] else None},
            # Platt scaling of each head (models/calibration.py), fitted on validation; models/predict.py applies it.
            "calibration": selection["calibration"],
            # score rebuilds sequences exactly so: the window counts depend on history_days.
            "training_window": {"train_cutoffs": [str(window["first"]), str(window["last"])],
                                "history_days": int(shape["history_days"]), "horizon_days": int(shape["horizon_days"]),
                                "validation_cutoff": str(validation_cutoff),
                                # Test cutoffs before this date saw labels this version trained on (the refit
                                # includes the validation cutoff).
                                "labels_end": str(validation_cutoff + dt.timedelta(days=int(shape["horizon_days"])))},
        }
        metadata["files"] = registry.file_hashes(version)  # checked before every load (models/registry.py)
        registry.write_metadata(version, metadata)  # the version is whole: it lists, and evaluate can find it
        if args.run_id:
            registry.record_training_run(args.run_id, version)
        # Then its MLflow run and registered model version (models/tracking.py). An MLflow outage fails the
        # stage with one line but keeps the trained version: set_champion registers it later if it is promoted.
        metadata["mlflow"] = Tracking(config.lake).log_training(version, folder, metadata, folder / TENSORBOARD)
        registry.write_metadata(version, metadata)
        shutil.rmtree(run_dir / "shards", ignore_errors=True)
        metrics.rows_in = int(window["rows"])
        metrics.details = {"version": version, "restarts": restarts, "seconds": round(seconds, 1),
                           "best_epoch": selection["best_epoch"], "validation_ndcg@10": selection["ndcg@10"],
                           "loss": refit["loss"]}
    print(f"train {as_of}: version {version} trained in {seconds:.1f}s "
          f"({metadata['training']['sequences_per_second']} sequences/s; {selection['best_epoch'] + 1} epochs chosen on "
          f"validation, NDCG@10 {selection['ndcg@10']:.4f}; {restarts} restarts) "
          f"-> {folder}")
    return {"version": version, "metadata": metadata}


def _warm_start_source(registry: Registry, model_config: dict, mode: str) -> dict | None:
    """The champion to fine-tune (its SavedModel and vocabulary), or None to train from scratch.

    ``mode`` never: None; always: the champion, which must exist and have this run's architecture;
    auto: the champion when it does, else None (said in the log: the first model, or a changed architecture).
    """
    from models.registry import RegistryError, is_fallback, verify_files
    from models.vocabulary import Vocabulary

    if mode == "never":
        return None
    champion = registry.champion()
    problem = None
    if champion is None:
        problem = "there is no champion yet"
    elif is_fallback(registry.metadata(champion)):
        problem = f"champion {champion} is the shallow fallback (no network weights to fine-tune)"
    else:
        theirs = registry.metadata(champion)["model"]
        # Versions from before a key existed had its first value.
        before = {"encoder": "transformer", "inputs_version": 1}
        # Another vocabulary is mapped by category name and another ARCHITECTURE keeps its weights' meaning
        # (models/warm_start.py): neither stops a warm start.
        different = {k: (theirs.get(k, before.get(k)), v) for k, v in model_config.items()
                     if k not in ("vocabulary_size", "architecture") and theirs.get(k, before.get(k)) != v}
        if different:
            problem = f"champion {champion} has another architecture " + ", ".join(
                f"{k} {a} (here {b})" for k, (a, b) in different.items())
    if problem and mode == "always":
        raise PipelineError(f"--warm-start: {problem}: train without it, or with --warm-start auto")
    if problem:
        print(f"warm start: {problem}; training from scratch", flush=True)
        return None
    folder = registry.version_dir(champion)
    try:
        verify_files(folder, registry.metadata(champion))  # its weights are what train starts from
    except RegistryError as error:
        if mode == "always":
            raise PipelineError(f"--warm-start: {error}") from None
        print(f"warm start: {error}; training from scratch", flush=True)
        return None
    return {"version": champion, "saved_model": str(folder / "saved_model"),
            "vocabulary": list(Vocabulary.load(folder / "vocabulary.json").categories)}


def _fit_vocabulary(train) -> Vocabulary:
    """Categories of the training history windows and labels, with counts: a few dozen rows reach the driver."""
    from pyspark.sql import functions as F

    from models.vocabulary import Vocabulary

    categories = train.select(F.explode(F.concat("window_categories", "label_categories")).alias("c"))
    counts = categories.groupBy("c").count().collect()
    return Vocabulary.fit(c for row in counts for c in [row["c"]] * int(row["count"]))


def _write_shards(rows, folder: Path, split: str, workers: int, seed: int) -> list[int]:
    """One Parquet file per worker (``<split>-<i>.parquet``), rows spread at random; returns the rows per shard."""
    from pyspark.sql import functions as F

    from models.encoding import INPUT_COLUMNS, LABEL_COLUMNS

    import pyarrow.parquet as pq

    staging = folder.with_name(f"shards-spark-{split}")
    shutil.rmtree(staging, ignore_errors=True)
    (rows.select(*INPUT_COLUMNS, *LABEL_COLUMNS)
     .repartition(workers, F.xxhash64("user_id", "cutoff_date", F.lit(seed))).write.parquet(str(staging)))
    files = sorted(staging.glob("part-*.parquet"))
    if len(files) != workers:
        raise PipelineError(f"{len(files)} non-empty {split} shards for {workers} workers: too few {split} sequences")
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, file in enumerate(files):
        target = folder / f"{split}-{i:03d}.parquet"
        shutil.move(str(file), target)
        rows.append(pq.read_metadata(target).num_rows)
    shutil.rmtree(staging, ignore_errors=True)
    return rows
