"""One training worker: ``python -m models.train RUN_DIR`` with ``TF_CONFIG`` set.

Every worker runs this same script under ``MultiWorkerMirroredStrategy``: it
reads only its own shard (``RUN_DIR/shards/shard-<task>.parquet``), builds and
compiles the model inside ``strategy.scope()``, and trains with tf-keras
``fit``. ``BackupAndRestore`` checkpoints every ``checkpoint_every_steps``
steps into ``RUN_DIR/backup``: when a worker dies the launcher restarts the
whole group and training resumes from the last checkpoint, not from zero.
The chief (task 0) writes the SavedModel to ``RUN_DIR/saved_model`` and the
per-epoch history to ``RUN_DIR/history.json``; other workers save to a scratch
folder (saving is a collective operation) that is removed.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _task() -> tuple[str, int, int]:
    config = json.loads(os.environ.get("TF_CONFIG") or "{}")
    task = config.get("task", {"type": "worker", "index": 0})
    workers = len(config.get("cluster", {}).get("worker", [None]))
    return task["type"], int(task["index"]), workers


def train_worker(run_dir: Path) -> dict:
    """Train this worker's part; returns what the chief records (history, steps, seconds)."""
    import tensorflow as tf
    import tf_keras as keras

    from models.dataset import load_shard, make_dataset
    from models.predict import limit_threads
    from models.transformer import ModelConfig, build_model, compile_model
    from models.vocabulary import Vocabulary

    spec = json.loads((run_dir / "run.json").read_text())
    _, index, workers = _task()
    tf.random.set_seed(spec["seed"])
    threads = spec.get("threads_per_worker")
    if threads:
        limit_threads(threads)
    strategy = tf.distribute.MultiWorkerMirroredStrategy(
        communication_options=tf.distribute.experimental.CommunicationOptions(
            implementation=tf.distribute.experimental.CommunicationImplementation.RING))
    arrays = load_shard(run_dir / "shards" / f"shard-{index:03d}.parquet", Vocabulary(tuple(spec["vocabulary"])),
                        spec["model"]["sequence_length"])
    per_worker_batch = spec["batch_size"] // workers
    steps = min(spec["rows_per_shard"]) // per_worker_batch
    if steps < 1:
        raise ValueError(f"each worker has fewer sequences than its batch ({per_worker_batch}): lower --batch-size")

    def dataset_fn(context: tf.distribute.InputContext):
        # One replica per worker: this worker's batch is the per-replica batch.
        return make_dataset(arrays, context.get_per_replica_batch_size(spec["batch_size"]), seed=spec["seed"] + index)

    with strategy.scope():
        model = compile_model(build_model(ModelConfig(**spec["model"])), spec["learning_rate"])
    is_chief = index == 0
    epoch_seconds: list[float] = []

    class EpochTimer(keras.callbacks.Callback):
        """Seconds per epoch: the first includes tracing and collective set-up, later ones are steady state."""

        def on_epoch_begin(self, epoch, logs=None):
            self._began = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            epoch_seconds.append(round(time.perf_counter() - self._began, 3))

    started = time.perf_counter()
    history = model.fit(
        keras.utils.experimental.DatasetCreator(dataset_fn),
        epochs=spec["epochs"], steps_per_epoch=steps, verbose=2 if is_chief else 0,
        callbacks=[keras.callbacks.BackupAndRestore(str(run_dir / "backup"), save_freq=spec["checkpoint_every_steps"],
                                                    delete_checkpoint=False), EpochTimer()],
    )
    seconds = time.perf_counter() - started
    target = run_dir / "saved_model" if is_chief else run_dir / "scratch" / f"worker-{index}"
    model.save(str(target), include_optimizer=False)
    if not is_chief:
        shutil.rmtree(target, ignore_errors=True)
        return {}
    summary = {"epochs_run": len(history.epoch), "first_epoch": history.epoch[0] if history.epoch else None,
               "steps_per_epoch": steps, "global_batch": spec["batch_size"], "seconds": round(seconds, 2),
               "epoch_seconds": epoch_seconds,
               "loss": [round(float(v), 5) for v in history.history.get("loss", [])]}
    # One file per attempt: a restarted run appends, so the record shows where it resumed.
    attempts = run_dir / "attempts.jsonl"
    with open(attempts, "a") as out:
        out.write(json.dumps(summary) + "\n")
    return summary


if __name__ == "__main__":
    train_worker(Path(sys.argv[1]))
