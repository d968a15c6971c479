"""Load a registered model version and score encoded sequences with it (evaluate and score share this).

Inference runs through one XLA-compiled ``tf.function`` rather than
``keras.Model.predict``: on this 2-core machine that scored about 1.5x more
sequences per second with one thread per process, which is how Spark's
Python workers run it (bench/bench_score.py). Batches are padded up to a
power of two, so a handful of shapes are compiled once per process.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from models.calibration import apply_platt
from models.registry import verify_files
from models.encoding import encode_sequences
from models.vocabulary import Vocabulary

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


SMALLEST_BATCH = 256
EXPLANATION_OUTPUTS = ("habit_logit", "sequence_logit", "attention")


@dataclass
class LoadedModel:
    version: str
    model: object
    vocabulary: Vocabulary
    sequence_length: int
    # Platt scaling per head, fitted on validation by training (models/calibration.py); identity when absent.
    calibration: dict | None = None
    # How far back its users' histories reach (training_window.history_days): scoring builds sequences so.
    history_days: int | None = None
    _serve: object = None

    def predict(self, sequences: pa.Table, batch_size: int = 4096) -> tuple[np.ndarray, np.ndarray]:
        """(rows, vocabulary size) category probabilities and (rows,) new-category probabilities."""
        return self.predict_encoded(self.encode(sequences), batch_size)

    def encode(self, sequences: pa.Table) -> dict[str, np.ndarray]:
        return encode_sequences(sequences, self.vocabulary, self.sequence_length)

    def predict_encoded(self, encoded: dict[str, np.ndarray], batch_size: int = 4096,
                        pad_to: int | None = None, explained: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``predict`` for rows ``encode`` already encoded: score reuses their category counts.

        ``pad_to``: pad every batch to this many rows instead of the next power of two, so that a
        caller whose batches all fit compiles one shape (each compilation costs about a second).
        ``explained``: a dict that receives the model's explanation outputs (``habit_logit``,
        ``sequence_logit`` and, for the Transformer, ``attention``) for every row: models/explain.py.
        """
        # Only what this model reads: an older version (an earlier INPUTS_VERSION) reads fewer inputs.
        wanted = set(getattr(self.model, "input_names", None) or encoded)
        inputs = {k: v for k, v in encoded.items() if k in wanted and not k.startswith("label_")}
        rows = len(inputs["categories"])
        categories, new = np.zeros((rows, self.vocabulary.size), np.float32), np.zeros(rows, np.float32)
        parts: dict[str, list] = {}
        for start in range(0, rows, batch_size):
            chunk = {k: v[start:start + batch_size] for k, v in inputs.items()}
            size = len(chunk["categories"])
            padded = pad_to if pad_to and pad_to >= size else max(SMALLEST_BATCH, 1 << (size - 1).bit_length())
            chunk = {k: np.concatenate([v, np.zeros((padded - size, *v.shape[1:]), v.dtype)]) for k, v in chunk.items()}
            out = self.serve(chunk)
            categories[start:start + size] = out["category"].numpy()[:size]
            new[start:start + size] = out["new_category"].numpy()[:size, 0]
            if explained is not None:
                for name in EXPLANATION_OUTPUTS:
                    if name in out:
                        parts.setdefault(name, []).append(out[name].numpy()[:size])
        if explained is not None:
            explained.update({name: np.concatenate(values) for name, values in parts.items()})
        if self.calibration:
            categories = apply_platt(categories, self.calibration["category"])
            new = apply_platt(new, self.calibration["new_category"])
        return categories, new

    @property
    def serve(self):
        """The model's forward pass, compiled by XLA once per padded batch shape."""
        if self._serve is None:
            import tensorflow as tf

            self._serve = tf.function(lambda x: self.model(x, training=False), jit_compile=True)
        return self._serve


def _rebuilt(folder: Path, config: dict):
    """The version's model built by this code and given its saved weights, when this code builds the
    architecture it was trained with (``models.transformer.ARCHITECTURE``); else None.

    Why: every Spark worker that scores loads the champion. Building the model and reading the weights takes
    a fraction of the time reviving the saved graph takes, with the same outputs. A weight the code's
    model has and the saved one lacks fails the load rather than keep its initial value.
    """
    from models.architecture import ARCHITECTURE
    from models.shallow_model import KIND as SHALLOW, build_shallow_model
    from models.transformer import ModelConfig, build_model

    if config.get("kind") == SHALLOW:  # a fallback champion (models/shallow_model.py): always rebuilt
        model = build_shallow_model(config)
    elif config.get("architecture") != ARCHITECTURE:
        return None
    else:
        model = build_model(ModelConfig(**config))
    model.load_weights(str(folder / "saved_model" / "variables" / "variables")).assert_existing_objects_matched()
    return model


def limit_threads(threads: int) -> None:
    """One process's TensorFlow thread pools; must run before TensorFlow's first op in the process.

    Spark runs one Python worker per core, each scoring its partitions, and
    ``train`` runs several TensorFlow workers on one machine: a process that
    also used every core would fight the others.
    """
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)


def load_version(folder: Path) -> LoadedModel:
    import tf_keras as keras

    import models.shallow_model  # noqa: F401  registers the fallback's custom layers for loading
    import models.transformer  # noqa: F401  registers the model's custom layers for loading

    metadata = json.loads((folder / "metadata.json").read_text())
    verify_files(folder, metadata)  # the files hashed when train registered the version, or nothing loads
    model = _rebuilt(folder, metadata["model"]) or keras.models.load_model(str(folder / "saved_model"), compile=False)
    return LoadedModel(metadata["version"], model, Vocabulary.load(folder / "vocabulary.json"),
                       int(metadata["model"]["sequence_length"]), metadata.get("calibration"),
                       metadata.get("training_window", {}).get("history_days"))
