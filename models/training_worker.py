"""One training worker: ``python -m models.training_worker RUN_DIR`` with ``TF_CONFIG`` set.

Every worker runs this same script under ``MultiWorkerMirroredStrategy``, in
two phases, each reading only this worker's shards (``RUN_DIR/shards``):

1. **selection**: train on the training cutoffs for up to ``epochs`` epochs;
   after each, every worker scores the whole validation cutoff (the same
   rows and weights on every worker, so they all take the same decision)
   for its NDCG@10 and fits Platt scaling of both heads on it; training
   stops after ``patience`` epochs without a better NDCG@10. The best epoch
   and its calibration go to ``RUN_DIR/selection.json``.
2. **refit**: a fresh model (or, with a warm start, the champion's weights
   again: ``models/warm_start.py``) trained on the training *and* validation
   cutoffs for as many epochs as the best one had: the version that scores
   has seen the newest labelled week, and the test origins stay unseen.

``BackupAndRestore`` checkpoints each phase every ``checkpoint_every_steps``
steps; when a worker dies the launcher restarts the whole group, which
resumes the phase it was in (the selection's per-epoch record is kept in
``RUN_DIR/selection-progress.json``). The chief (task 0) writes the
SavedModel to ``RUN_DIR/saved_model``; other workers save to a scratch
folder (saving is a collective operation) that is removed.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

from models.registry import atomic_write

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

SELECTION, PROGRESS = "selection.json", "selection-progress.json"
# TensorBoard logs of the chief, per phase (train moves them into the version folder).
TENSORBOARD = "tensorboard"


def _task() -> tuple[str, int, int]:
    config = json.loads(os.environ.get("TF_CONFIG") or "{}")
    task = config.get("task", {"type": "worker", "index": 0})
    workers = len(config.get("cluster", {}).get("worker", [None]))
    return task["type"], int(task["index"]), workers


def _concat(parts: list[dict]) -> dict:
    import numpy as np

    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def train_worker(run_dir: Path) -> dict:
    """Select the epoch count on validation, then refit; returns what the chief records."""
    import tensorflow as tf

    from models.dataset import load_shard
    from models.predict import limit_threads
    from models.vocabulary import Vocabulary

    spec = json.loads((run_dir / "run.json").read_text())
    _, index, workers = _task()
    tf.random.set_seed(spec["seed"])
    if spec.get("threads_per_worker"):
        limit_threads(spec["threads_per_worker"])
    strategy = tf.distribute.MultiWorkerMirroredStrategy(
        communication_options=tf.distribute.experimental.CommunicationOptions(
            implementation=tf.distribute.experimental.CommunicationImplementation.RING))
    vocabulary, length = Vocabulary(tuple(spec["vocabulary"])), spec["model"]["sequence_length"]
    shards = run_dir / "shards"
    train = load_shard(shards / f"train-{index:03d}.parquet", vocabulary, length)
    validation = [load_shard(shards / f"validation-{i:03d}.parquet", vocabulary, length) for i in range(workers)]
    per_worker_batch = spec["batch_size"] // workers
    is_chief = index == 0
    summary: dict = {}

    selection_file = run_dir / SELECTION
    if selection_file.exists():
        selection = json.loads(selection_file.read_text())
        summary["selection"] = {"resumed": "already complete"}
    else:
        steps = _steps(min(spec["rows_per_shard"]), per_worker_batch)
        selector = _ValidationSelection(_concat(validation), spec["patience"], run_dir / PROGRESS, is_chief)
        summary["selection"] = _fit(strategy, spec, train, spec["epochs"], steps, run_dir / "backup-selection",
                                    [selector], index, decay_epochs=spec["epochs"])
        selection = selector.result()
        summary["selection"].update(best_epoch=selection["best_epoch"], validation_ndcg=selection["ndcg@10"])
        if is_chief:
            _write_validation_curve(run_dir / TENSORBOARD / "selection", selection["epochs"])
            atomic_write(selection_file, json.dumps(selection, indent=1))
    refit_rows = [t + v for t, v in zip(spec["rows_per_shard"], spec["validation_rows_per_shard"])]
    summary["refit"] = _fit(strategy, spec, _concat([train, validation[index]]), selection["best_epoch"] + 1,
                            _steps(min(refit_rows), per_worker_batch), run_dir / "backup-refit", [], index,
                            decay_epochs=spec["epochs"],
                            save_to=run_dir / "saved_model" if is_chief else run_dir / "scratch" / f"worker-{index}")
    if not is_chief:
        shutil.rmtree(run_dir / "scratch" / f"worker-{index}", ignore_errors=True)
        return {}
    summary.update(global_batch=spec["batch_size"], calibration=selection["calibration"])
    # One line per attempt: a restarted run appends, so the record shows where it resumed.
    with open(run_dir / "attempts.jsonl", "a") as out:
        out.write(json.dumps(summary) + "\n")
    return summary


def _write_validation_curve(log_dir: Path, epochs: list[dict]) -> None:
    """The selection's validation NDCG@10 per epoch, beside the loss curve the TensorBoard callback wrote."""
    import tensorflow as tf

    with tf.summary.create_file_writer(str(log_dir / "validation")).as_default():
        for entry in epochs:
            tf.summary.scalar("epoch_ndcg@10", entry["ndcg@10"], step=entry["epoch"])


def _steps(rows: int, per_worker_batch: int) -> int:
    steps = rows // per_worker_batch
    if steps < 1:
        raise ValueError(f"each worker has fewer sequences than its batch ({per_worker_batch}): lower --batch-size")
    return steps


def _fit(strategy, spec: dict, arrays: dict, epochs: int, steps: int, backup: Path, callbacks: list,
         index: int, decay_epochs: int, save_to: Path | None = None) -> dict:
    """One phase: build and compile in ``strategy.scope()``, fit with checkpoints; returns its record.

    The learning rate decays over ``decay_epochs`` (the selection's maximum) in both phases, so the refit
    stopped after the chosen number of epochs is where the selection run was at its best epoch.
    """
    import tf_keras as keras

    from models.dataset import make_dataset
    from models.transformer import ModelConfig, build_model, compile_model

    def dataset_fn(context):
        # One replica per worker: this worker's batch is the per-replica batch.
        return make_dataset(arrays, context.get_per_replica_batch_size(spec["batch_size"]), seed=spec["seed"] + index)

    with strategy.scope():
        model = compile_model(build_model(ModelConfig(**spec["model"])), spec["learning_rate"],
                              decay_steps=decay_epochs * steps)
    if spec.get("warm_start"):
        _warm_start(model, spec)
    epoch_seconds: list[float] = []
    # The chief's training curves for TensorBoard (tensorboard --logdir <lake>/models/versions): one folder per phase.
    board = ([keras.callbacks.TensorBoard(str(backup.parent / TENSORBOARD / backup.name.removeprefix("backup-")),
                                          write_graph=False, profile_batch=0, update_freq="epoch")]
             if index == 0 else [])

    class EpochTimer(keras.callbacks.Callback):
        """Seconds per epoch: the first includes tracing and collective set-up, later ones are steady state."""

        def on_epoch_begin(self, epoch, logs=None):
            self._began = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            epoch_seconds.append(round(time.perf_counter() - self._began, 3))

    started = time.perf_counter()
    history = model.fit(
        keras.utils.experimental.DatasetCreator(dataset_fn), epochs=epochs, steps_per_epoch=steps,
        verbose=2 if index == 0 else 0,
        callbacks=[keras.callbacks.BackupAndRestore(str(backup), save_freq=spec["checkpoint_every_steps"],
                                                    delete_checkpoint=False), EpochTimer(), *board, *callbacks])
    seconds = time.perf_counter() - started
    if save_to is not None:
        model.save(str(save_to), include_optimizer=False)
    return {"epochs_run": len(history.epoch), "first_epoch": history.epoch[0] if history.epoch else None,
            "steps_per_epoch": steps, "seconds": round(seconds, 2), "epoch_seconds": epoch_seconds,
            "loss": [round(float(v), 5) for v in history.history.get("loss", [])]}


def _warm_start(model, spec: dict) -> None:
    """Begin from the champion's weights (``models/warm_start.py``); a restart's checkpoint then overrides them."""
    import tf_keras as keras

    import models.transformer  # noqa: F401  registers the custom layers for loading
    from models.warm_start import copy_weights

    source = spec["warm_start"]
    champion = keras.models.load_model(source["saved_model"], compile=False)
    copied = copy_weights(model, champion, source["vocabulary"], spec["vocabulary"], spec["model"]["d_model"])
    print(f"warm start from {source['version']}: {copied} layers copied", flush=True)


class _ValidationSelection:
    """Keras callback (built lazily, tf_keras is imported in the worker): validation NDCG@10 and calibration per
    epoch, early stopping after ``patience`` epochs without improvement."""

    def __new__(cls, validation: dict, patience: int, progress: Path, is_chief: bool):
        import numpy as np
        import tensorflow as tf
        import tf_keras as keras

        from models.calibration import fit_platt
        from models.metrics import ranking_metrics
        from models.vocabulary import OOV, PAD

        inputs = {k: v for k, v in validation.items() if not k.startswith("label_")}
        labels, has_new = validation["label_categories"], validation["label_has_new"][:, 0]
        exclude = np.zeros(labels.shape, bool)
        exclude[:, [PAD, OOV]] = True

        class Selection(keras.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.epochs = json.loads(progress.read_text())["epochs"] if progress.exists() else []
                self.forward = None

            def on_epoch_end(self, epoch, logs=None):
                if self.forward is None:  # traced once per shape, not once per epoch
                    self.forward = tf.function(lambda x: self.model(x, training=False))
                parts = [self.forward({k: v[s:s + 4096] for k, v in inputs.items()})
                         for s in range(0, len(labels), 4096)]
                category = np.concatenate([p["category"].numpy() for p in parts])
                new = np.concatenate([p["new_category"].numpy()[:, 0] for p in parts])
                local = ranking_metrics(category, labels, exclude)["ndcg@10"]
                # Every worker computes the same number from the same rows and weights, but floating point may
                # differ in the last bit across machines: the all-reduced mean is bit-identical everywhere, so
                # every worker stops at the same epoch (a worker that left fit alone would hang the others).
                strategy = self.model.distribute_strategy
                ndcg = float(strategy.reduce(tf.distribute.ReduceOp.MEAN, strategy.run(
                    lambda: tf.constant(local, tf.float64)), axis=None))
                self.epochs = [e for e in self.epochs if e["epoch"] < epoch] + [{
                    "epoch": epoch, "ndcg@10": round(float(ndcg), 6),
                    "calibration": {"category": fit_platt(category[:, 2:], labels[:, 2:]),
                                    "new_category": fit_platt(new, has_new)}}]
                if is_chief:
                    atomic_write(progress, json.dumps({"epochs": self.epochs}))
                best = self._best()
                print(f"epoch {epoch + 1}: validation NDCG@10 {ndcg:.4f} (best {best['ndcg@10']:.4f} at epoch "
                      f"{best['epoch'] + 1})", flush=True)
                if epoch - best["epoch"] >= patience:
                    self.model.stop_training = True

            def _best(self) -> dict:
                # Rounded values and the earliest of equals: every worker picks the same epoch.
                return max(self.epochs, key=lambda e: (e["ndcg@10"], -e["epoch"]))

            def result(self) -> dict:
                best = self._best()
                return {"best_epoch": best["epoch"], "ndcg@10": best["ndcg@10"], "calibration": best["calibration"],
                        "epochs": self.epochs}

        return Selection()


if __name__ == "__main__":
    train_worker(Path(sys.argv[1]))
