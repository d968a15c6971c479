"""Load a registered model version and score encoded sequences with it (evaluate and score share this)."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from models.encoding import encode_sequences
from models.vocabulary import Vocabulary

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@dataclass
class LoadedModel:
    version: str
    model: object
    vocabulary: Vocabulary
    sequence_length: int

    def predict(self, sequences: pa.Table, batch_size: int = 4096) -> tuple[np.ndarray, np.ndarray]:
        """(rows, vocabulary size) category probabilities and (rows,) new-category probabilities."""
        encoded = encode_sequences(sequences, self.vocabulary, self.sequence_length)
        inputs = {k: v for k, v in encoded.items() if not k.startswith("label_")}
        if not len(sequences):
            return np.zeros((0, self.vocabulary.size), np.float32), np.zeros(0, np.float32)
        out = self.model.predict(inputs, batch_size=batch_size, verbose=0)
        return np.asarray(out["category"]), np.asarray(out["new_category"])[:, 0]


def load_version(folder: Path) -> LoadedModel:
    import tf_keras as keras

    import models.transformer  # noqa: F401  registers the model's custom layers for loading

    metadata = json.loads((folder / "metadata.json").read_text())
    model = keras.models.load_model(str(folder / "saved_model"), compile=False)
    return LoadedModel(metadata["version"], model, Vocabulary.load(folder / "vocabulary.json"),
                       int(metadata["model"]["sequence_length"]))
