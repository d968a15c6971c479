"""Encoding, vocabulary and the Transformer: builds, trains a few steps, loss goes down."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from models.encoding import encode_sequences
from models.vocabulary import OOV, Vocabulary
from tests.isolated import run_isolated

VOCAB = Vocabulary(("a.x", "b.y", "c.z"))


def _rows() -> pa.Table:
    return pa.table({
        "history_categories": [["a.x", "b.y", "new.one", "c.z"], ["c.z"]],
        "history_event_types": [["view", "cart", "view", "purchase"], ["fav"]],
        "history_gap_buckets": [[0, 1, 2, 8], [0]],
        "history_age_buckets": [[8, 7, 3, 0], [1]],
        "history_session_starts": [[True, False, True, False], [True]],
        "window_categories": [["a.x", "b.y", "c.z", "new.one", "old.one"], ["c.z"]],
        "window_category_events": [[1, 1, 1, 1, 5], [1]],
        "window_category_sessions": [[1, 1, 1, 1, 2], [1]],
        "window_category_days": [[1, 1, 1, 1, 2], [1]],
        "window_category_age_seconds": [[9 * 86400.0, 8 * 86400.0, 100.0, 3 * 86400.0, 20 * 86400.0], [7 * 86400.0]],
        "label_categories": [["b.y", "unseen.cat"], []],
        "has_new_category": [True, False],
    })


def test_histories_are_right_aligned_truncated_to_length_and_unknown_categories_map_to_oov():
    encoded = encode_sequences(_rows(), VOCAB, length=3)
    # Row 0 keeps its last 3 events; "new.one" is out of vocabulary.
    assert encoded["categories"].tolist() == [[3, OOV, 4], [0, 0, 4]]
    assert encoded["event_types"].tolist() == [[3, 2, 4], [0, 0, 5]]
    assert encoded["gap_buckets"].tolist() == [[2, 3, 9], [0, 0, 1]]  # shifted by one: 0 is padding
    assert encoded["session_starts"].tolist() == [[1, 2, 1], [0, 0, 2]]
    # Counts cover the whole history, not only the kept window.
    assert encoded["seen"][0].tolist() == [0, 1, 1, 1, 1]
    # Age buckets 8, 7, 3, 0: only c.z is from the last day; the OOV event and c.z from the last three.
    assert encoded["recent_1d"][0].tolist() == [0, 0, 0, 0, 1]
    assert encoded["recent_3d"][0].tolist() == [0, 1, 0, 0, 1]
    # Window counts: both unknown categories add to the OOV bucket.
    assert encoded["window_events"][0].tolist() == [0, 6, 1, 1, 1]
    assert encoded["window_sessions"][0].tolist() == [0, 3, 1, 1, 1]
    assert encoded["window_events"][1].tolist() == [0, 0, 0, 0, 1]
    assert encoded["window_days"][0].tolist() == [0, 3, 1, 1, 1]
    # Recency exp(-age / 7 days): c.z touched 100 s before the cutoff is ~1, b.y 8 days ago ~0.32; unseen 0.
    assert encoded["window_recency"][0][[2, 3, 4]] == pytest.approx([np.exp(-9 / 7), np.exp(-8 / 7), 1.0], abs=1e-3)
    assert encoded["window_recency"][1].tolist() == pytest.approx([0, 0, 0, 0, np.exp(-1)], abs=1e-6)
    assert encoded["label_categories"].tolist() == [[0, 1, 0, 1, 0], [0, 0, 0, 0, 0]]
    assert encoded["label_has_new"].ravel().tolist() == [1.0, 0.0]


def test_dictionary_encoded_strings_encode_as_plain_strings_do(tmp_path):
    """As score's workers read the snapshot (jobs.score.workers._sequence_file): the category and event-type lists as
    dictionaries, in chunks with different dictionaries, one with a null category."""
    import pyarrow.parquet as pq

    from jobs.score.workers import _sequence_file

    rows = _rows().drop_columns(["label_categories", "has_new_category"])
    extra = rows.set_column(0, "history_categories", pa.array([["c.z", None, "zzz", "a.x"], ["b.y"]],
                                                                pa.list_(pa.string())))
    plain = pa.concat_tables([rows, extra])
    path = tmp_path / "part.parquet"
    pq.write_table(plain, path, row_group_size=2)
    read = pa.Table.from_batches(list(_sequence_file(str(path)).iter_batches(2)))
    assert pa.types.is_dictionary(read["history_categories"].type.value_type)
    assert pa.types.is_dictionary(read["window_categories"].type.value_type)
    assert read["history_categories"].num_chunks == 2
    expected, got = encode_sequences(plain, VOCAB, length=3), encode_sequences(read, VOCAB, length=3)
    assert expected["categories"][2].tolist() == [OOV, OOV, 2]  # the null and the unknown category
    for name, value in expected.items():
        np.testing.assert_array_equal(got[name], value, err_msg=name)


def test_sequences_from_an_older_features_job_get_a_clear_error():
    with pytest.raises(ValueError, match="window_category_days, window_category_age_seconds.*run features again"):
        encode_sequences(_rows().drop_columns(["window_category_days", "window_category_age_seconds"]), VOCAB, 3)
    # The same snapshot read through the Delta table after it gained the columns: nulls in every row.
    old = _rows().drop_columns(["window_category_days", "window_category_age_seconds"])
    old = old.append_column("window_category_days", pa.nulls(old.num_rows, pa.list_(pa.int32())))
    with pytest.raises(ValueError, match="lack window_category_days, window_category_age_seconds"):
        encode_sequences(old.append_column("window_category_age_seconds", pa.nulls(old.num_rows, pa.list_(pa.float64()))),
                         VOCAB, 3)


def test_vocabulary_orders_by_frequency_and_round_trips(tmp_path):
    vocab = Vocabulary.fit(["b", "a", "b", "c", "b", "a"])
    assert vocab.categories == ("b", "a", "c") and vocab.index() == {"b": 2, "a": 3, "c": 4}
    vocab.save(tmp_path / "v.json")
    assert Vocabulary.load(tmp_path / "v.json") == vocab
    with pytest.raises(ValueError, match="empty"):
        Vocabulary.fit([])


def test_model_builds_and_a_few_training_steps_lower_the_loss():
    run_isolated(check_a_few_training_steps_lower_the_loss, "transformer")


def test_the_lstm_encoder_builds_and_learns_too():
    run_isolated(check_a_few_training_steps_lower_the_loss, "lstm")


def check_a_few_training_steps_lower_the_loss(encoder: str) -> None:
    from models.dataset import make_dataset
    from models.transformer import ModelConfig, build_model, compile_model

    rng = np.random.default_rng(0)
    n, length, size = 256, 8, VOCAB.size
    categories = rng.integers(2, size, (n, length)).astype(np.int32)
    arrays = {
        "categories": categories, "event_types": rng.integers(2, 6, (n, length)).astype(np.int32),
        "gap_buckets": rng.integers(1, 9, (n, length)).astype(np.int32),
        "age_buckets": rng.integers(1, 9, (n, length)).astype(np.int32),
        "session_starts": rng.integers(1, 3, (n, length)).astype(np.int32),
        "seen": np.stack([np.bincount(r, minlength=size) for r in categories]).astype(np.float32),
        "recent_1d": np.eye(size, dtype=np.float32)[categories[:, -1]],
        "recent_3d": np.eye(size, dtype=np.float32)[categories[:, -1]],
        "window_events": np.stack([np.bincount(r, minlength=size) for r in categories]).astype(np.float32),
        "window_sessions": np.stack([np.bincount(r, minlength=size) for r in categories]).astype(np.float32),
        "window_days": np.stack([np.bincount(r, minlength=size) for r in categories]).astype(np.float32),
        "window_recency": np.eye(size, dtype=np.float32)[categories[:, -1]],
        # Learnable: the label is the last category.
        "label_categories": np.eye(size, dtype=np.float32)[categories[:, -1]],
        "label_has_new": (rng.random((n, 1)) < 0.3).astype(np.float32),
    }
    model = compile_model(build_model(ModelConfig(vocabulary_size=size, sequence_length=length, d_model=16,
                                                  heads=2, blocks=1, feed_forward=32, encoder=encoder)),
                          learning_rate=1e-2)
    assert any(layer.name.startswith("lstm") for layer in model.layers) == (encoder == "lstm")
    dataset = make_dataset(arrays, batch_size=64, repeat=False)
    before = model.evaluate(dataset, verbose=0, return_dict=True)["loss"]
    model.fit(dataset, epochs=4, verbose=0)
    after = model.evaluate(dataset, verbose=0, return_dict=True)["loss"]
    assert after < before
    out = model.predict({k: v[:5] for k, v in arrays.items() if not k.startswith("label_")}, verbose=0)
    assert out["category"].shape == (5, size) and out["new_category"].shape == (5, 1)
    assert ((out["category"] >= 0) & (out["category"] <= 1)).all()


def test_a_warm_start_copies_the_champions_weights_by_category_name():
    run_isolated(check_warm_start_maps_categories)


def check_warm_start_maps_categories() -> None:
    from models.transformer import ModelConfig, build_model
    from models.warm_start import copy_weights

    old_categories, new_categories = ["a", "b", "c"], ["c", "a", "d"]  # "d" is new, "b" is gone
    config = dict(sequence_length=6, d_model=8, heads=2, blocks=1, feed_forward=16)
    champion = build_model(ModelConfig(vocabulary_size=5, **config))
    model = build_model(ModelConfig(vocabulary_size=5, **config))
    rng = np.random.default_rng(0)
    for layer in champion.layers:
        layer.set_weights([rng.normal(size=w.shape) for w in layer.get_weights()])
    fresh_d = model.get_layer("step_embedding").get_weights()[0][4].copy()
    assert copy_weights(model, champion, old_categories, new_categories, d_model=8) > 10
    old_rows = champion.get_layer("step_embedding").get_weights()[0]
    new_rows = model.get_layer("step_embedding").get_weights()[0]
    # New ids: c 2, a 3, d 4; old ids: a 2, b 3, c 4.
    np.testing.assert_allclose(new_rows[2], old_rows[4])
    np.testing.assert_allclose(new_rows[3], old_rows[2])
    np.testing.assert_allclose(new_rows[4], fresh_d)
    np.testing.assert_allclose(new_rows[:2], old_rows[:2])
    np.testing.assert_allclose(new_rows[5:], old_rows[5:])  # the other features' rows
    kernel_old, bias_old = champion.get_layer("deep_logit").get_weights()
    kernel_new, bias_new = model.get_layer("deep_logit").get_weights()
    np.testing.assert_allclose(kernel_new[:, 3], kernel_old[:, 2])
    assert bias_new[2] == bias_old[4]
    head_old, head_new = champion.get_layer("head_hidden").get_weights()[0], model.get_layer("head_hidden").get_weights()[0]
    np.testing.assert_allclose(head_new[:8], head_old[:8])
    np.testing.assert_allclose(head_new[8 + 5 + 3], head_old[8 + 5 + 2])  # second share block, category "a"
    np.testing.assert_allclose(model.get_layer("wide_logit").get_weights()[0], champion.get_layer("wide_logit").get_weights()[0])


def test_a_champion_with_one_embedding_layer_per_feature_still_warm_starts():
    run_isolated(check_warm_start_from_separate_embeddings)


def check_warm_start_from_separate_embeddings() -> None:
    """Champions trained before StepEmbedding hold one OneHotEmbedding per feature: their tables become the
    new layer's, the category table mapped by name, and both layouts give the same step embeddings."""
    import tensorflow as tf
    import tf_keras as keras

    from models.encoding import FEATURES
    from models.transformer import ModelConfig, OneHotEmbedding, build_model
    from models.warm_start import copy_weights

    config = ModelConfig(vocabulary_size=5, sequence_length=6, d_model=8, heads=2, blocks=1, feed_forward=16)
    model = build_model(config)
    sizes = model.get_layer("step_embedding").sizes
    inputs = {name: keras.Input((6,), dtype="int32", name=name) for name in FEATURES}
    old = keras.layers.Add(name="step_embedding")([OneHotEmbedding(sizes[name], 8, name=f"{name}_embedding")(inputs[name])
                                                    for name in FEATURES])
    champion = keras.Model(inputs, old)
    rng = np.random.default_rng(1)
    for layer in champion.layers:
        layer.set_weights([rng.normal(size=w.shape) for w in layer.get_weights()])
    assert copy_weights(model, champion, ["a", "b", "c"], ["a", "b", "c"], d_model=8) == 1
    ids = {name: tf.constant(rng.integers(0, sizes[name], (3, 6)), tf.int32) for name in FEATURES}
    layer = model.get_layer("step_embedding")
    for training in (False, True):
        np.testing.assert_allclose(layer([ids[n] for n in FEATURES], training=training).numpy(),
                                   champion(ids).numpy(), rtol=1e-5, atol=1e-6)


def test_last_query_attention_is_multi_head_attention_of_the_last_step():
    run_isolated(check_last_query_attention_matches_keras)


def check_last_query_attention_matches_keras() -> None:
    """Same weights (in MultiHeadAttention's order, as a warm start copies them), same outputs, attention and
    gradients, on histories with padding and one with no real step at all."""
    import tensorflow as tf
    import tf_keras as keras

    from models.transformer import LastQueryAttention

    rng = np.random.default_rng(3)
    batch, length, width, heads = 6, 7, 8, 2
    steps = tf.constant(rng.normal(size=(batch, length, width)), tf.float32)
    real = rng.random((batch, length)) < 0.7
    real[:, -1] = True
    real[0] = False  # a row without any real step attends evenly, as Keras does
    real = tf.constant(real)
    keras_attention = keras.layers.MultiHeadAttention(num_heads=heads, key_dim=width // heads)
    ours = LastQueryAttention(heads, width // heads)
    query = steps[:, -1, :]
    keras_attention(query[:, None, :], steps, attention_mask=real[:, None, :])
    ours([query, steps, real])
    ours.set_weights([rng.normal(size=w.shape) for w in keras_attention.get_weights()])
    keras_attention.set_weights(ours.get_weights())

    with tf.GradientTape(persistent=True) as tape:
        tape.watch(steps)
        expected, scores = keras_attention(steps[:, -1:, :], steps, attention_mask=real[:, None, :],
                                           return_attention_scores=True)
        got, attended = ours([steps[:, -1, :], steps, real])
        expected_sum, got_sum = tf.reduce_sum(expected ** 2), tf.reduce_sum(got ** 2)
    np.testing.assert_allclose(got.numpy(), expected[:, 0, :].numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(attended.numpy(), tf.reduce_mean(scores[:, :, 0, :], axis=1).numpy(), atol=1e-6)
    np.testing.assert_allclose(tape.gradient(got_sum, steps).numpy(), tape.gradient(expected_sum, steps).numpy(),
                               rtol=1e-3, atol=1e-4)
    ours_grads = [g.numpy() for g in tape.gradient(got_sum, ours.trainable_weights)]
    keras_grads = [g.numpy() for g in tape.gradient(expected_sum, keras_attention.trainable_weights)]
    # The key bias's true gradient is zero (softmax ignores a shift shared by every score), so on both sides it
    # is float32 rounding noise, whose size depends on the CPU's vector width (1e-5 on AVX-512, 2e-4 on AVX2):
    # the absolute tolerance scales with the largest gradient (hundreds here), far below any real mismatch.
    scale = max(np.abs(g).max() for g in keras_grads)
    for ours_grad, keras_grad in zip(ours_grads, keras_grads):
        np.testing.assert_allclose(ours_grad, keras_grad, rtol=1e-3, atol=1e-6 * scale)


def test_the_position_embedding_is_a_trained_weight_that_a_rebuilt_model_takes():
    run_isolated(check_position_embedding_is_a_weight)


def check_position_embedding_is_a_weight() -> None:
    """A model built again and given the first one's weights computes the same (the position table used to
    be a random constant drawn anew by every build), and training moves the positions."""
    import tf_keras as keras

    from models.transformer import ModelConfig, build_model

    config = ModelConfig(vocabulary_size=5, sequence_length=6, d_model=8, heads=2, blocks=1, feed_forward=16)
    keras.utils.set_random_seed(1)
    first = build_model(config)
    keras.utils.set_random_seed(2)
    second = build_model(config)
    second.set_weights(first.get_weights())
    inputs = _random_inputs()
    positions = first.get_layer("position_embedding")
    assert [w.shape for w in positions.trainable_weights] == [(6, 8)]
    for name, value in first(inputs, training=False).items():
        np.testing.assert_allclose(second(inputs, training=False)[name].numpy(), value.numpy(), rtol=1e-6, atol=1e-6)
    import tensorflow as tf

    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(first(inputs, training=True)["new_category"])
    assert np.abs(tape.gradient(loss, positions.trainable_weights[0]).numpy()).sum() > 0


def test_the_saved_model_has_no_lambda_layers_and_loads_back_computing_the_same(tmp_path):
    run_isolated(check_saved_model_without_lambdas, str(tmp_path))


def check_saved_model_without_lambdas(folder: str) -> None:
    """A Lambda layer is saved as Python bytecode, which another Python version cannot load: every step of the
    graph is a registered layer, for both encoders and for more than one block (the padding mask)."""
    import json

    import tf_keras as keras

    from models.transformer import ModelConfig, build_model

    inputs = _random_inputs()
    for encoder, blocks in (("transformer", 2), ("lstm", 1)):
        model = build_model(ModelConfig(vocabulary_size=5, sequence_length=6, d_model=8, heads=2, blocks=blocks,
                                        feed_forward=16, encoder=encoder))
        classes = {layer["class_name"] for layer in json.loads(model.to_json())["config"]["layers"]}
        assert "Lambda" not in classes, classes
        assert any(name.endswith("NotPadding") for name in classes), classes
        path = f"{folder}/{encoder}"
        model.save(path, include_optimizer=False)
        loaded = keras.models.load_model(path, compile=False)
        for name, value in model(inputs, training=False).items():
            np.testing.assert_allclose(loaded(inputs, training=False)[name].numpy(), value.numpy(), rtol=1e-6,
                                       atol=1e-6)


def _random_inputs() -> dict:
    """The model's inputs for 4 users, L = 6, 5 categories: random ids and per-category counts."""
    rng = np.random.default_rng(0)
    inputs = {name: rng.integers(0, 5, (4, 6)).astype(np.int32) for name in
              ("categories", "event_types", "gap_buckets", "age_buckets", "session_starts")}
    inputs["session_starts"] %= 3
    inputs.update({name: rng.random((4, 5)).astype(np.float32) for name in
                   ("seen", "recent_1d", "recent_3d", "window_events", "window_sessions", "window_days",
                    "window_recency")})
    return inputs
