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


def test_a_version_of_this_architecture_is_rebuilt_with_its_saved_weights(model_lake, trained_version, tmp_path):
    run_isolated(check_rebuilt_matches_saved_graph, model_lake, trained_version, str(tmp_path))


def check_rebuilt_matches_saved_graph(model_lake: str, trained_version: str, scratch: str) -> None:
    """Rebuilt from code (the fast load) it computes what its saved graph does; a version recorded without
    the architecture key, or with another number, loads its saved graph instead."""
    import json
    import shutil

    import tf_keras as keras

    from models import predict

    folder = Registry(Path(model_lake)).version_dir(trained_version)
    config = json.loads((folder / "metadata.json").read_text())["model"]
    rebuilt = predict._rebuilt(folder, config)
    assert rebuilt is not None
    saved = keras.models.load_model(str(folder / "saved_model"), compile=False)
    sequences = DeltaTable(f"{model_lake}/user_sequences").to_pyarrow_table().slice(0, 200)
    loaded = load_version(folder)
    encoded = encode_sequences(sequences, loaded.vocabulary, loaded.sequence_length)
    inputs = {k: v for k, v in encoded.items() if k in saved.input_names}
    ours, theirs = rebuilt(inputs, training=False), saved(inputs, training=False)
    assert set(ours) == set(theirs)
    for name in theirs:
        np.testing.assert_allclose(ours[name].numpy(), theirs[name].numpy(), atol=1e-6)
    assert predict._rebuilt(folder, {k: v for k, v in config.items() if k != "architecture"}) is None
    assert predict._rebuilt(folder, {**config, "architecture": config["architecture"] + 1}) is None
    # A saved model that lacks one of the code's weights fails the load instead of scoring with it untrained.
    broken = Path(scratch) / "broken"
    shutil.copytree(folder, broken)
    wider = {**config, "feed_forward": config["feed_forward"] * 2}
    try:
        predict._rebuilt(broken, wider)
    except (AssertionError, ValueError):
        pass
    else:
        raise AssertionError("a model whose weights do not match its saved ones was loaded")
