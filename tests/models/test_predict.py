"""The compiled inference path scores exactly what the Keras model computes, whatever the batch split."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from deltalake import DeltaTable

from models.calibration import apply_platt
from models.encoding import encode_sequences
from models.predict import load_version
from models.registry import Registry
from tests.isolated import run_isolated


def test_compiled_padded_batches_match_keras_predict(model_lake, trained_version):
    run_isolated(check_compiled_matches_keras, model_lake, trained_version)


def check_compiled_matches_keras(model_lake: str, trained_version: str) -> None:
    sequences = DeltaTable(f"{model_lake}/user_sequences").to_pyarrow_table()
    sequences = sequences.slice(0, 300)
    loaded = load_version(Registry(Path(model_lake)).version_dir(trained_version))
    encoded = encode_sequences(sequences, loaded.vocabulary, loaded.sequence_length)
    inputs = {k: v for k, v in encoded.items() if not k.startswith("label_")}
    expected = loaded.model.predict(inputs, batch_size=64, verbose=0)
    # 300 rows in chunks of 100: each padded to 256, and the padding rows cut off again.
    categories, new = loaded.predict(sequences, batch_size=100)
    assert categories.shape == (300, loaded.vocabulary.size) and new.shape == (300,)
    # predict applies the version's calibration (fitted on validation) to the network's outputs.
    calibration = loaded.calibration or {"category": (1.0, 0.0), "new_category": (1.0, 0.0)}
    np.testing.assert_allclose(categories, apply_platt(expected["category"], calibration["category"]), atol=1e-5)
    np.testing.assert_allclose(new, apply_platt(expected["new_category"][:, 0], calibration["new_category"]),
                               atol=1e-5)
    empty_categories, empty_new = loaded.predict(sequences.slice(0, 0))
    assert empty_categories.shape == (0, loaded.vocabulary.size) and empty_new.shape == (0,)
