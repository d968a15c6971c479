"""Encoded arrays on disk, one shard per worker, and the tf.data pipeline over them.

``jobs train`` (Spark) writes ``train-<i>.parquet`` and ``validation-<i>.parquet``
per worker; each worker reads and encodes only its own shards (and every
validation shard, to score the whole validation cutoff). Sharding by file rather than by
``tf.data`` auto-sharding keeps each worker's input local and its memory a
1/N share.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from models.encoding import encode_sequences
from models.vocabulary import Vocabulary

LABELS = ("label_categories", "label_has_new")


def load_shard(path: Path, vocabulary: Vocabulary, length: int) -> dict[str, np.ndarray]:
    """One worker's Parquet shard of training sequences, encoded."""
    import pyarrow.parquet as pq

    return encode_sequences(pq.read_table(path), vocabulary, length)


def make_dataset(arrays: dict[str, np.ndarray], batch_size: int, shuffle: bool = True, repeat: bool = True, seed: int = 0):
    """(inputs, {"category", "new_category"}) batches ending in ``prefetch``."""
    import tensorflow as tf

    inputs = {k: v for k, v in arrays.items() if k not in LABELS}
    targets = {"category": arrays["label_categories"], "new_category": arrays["label_has_new"]}
    dataset = tf.data.Dataset.from_tensor_slices((inputs, targets))
    if shuffle:
        dataset = dataset.shuffle(min(len(arrays["label_categories"]), 100_000), seed=seed,
                                  reshuffle_each_iteration=True)
    if repeat:
        dataset = dataset.repeat()
    options = tf.data.Options()
    # Each worker already holds only its own shard: no further auto-sharding.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    return dataset.batch(batch_size, drop_remainder=True).with_options(options).prefetch(tf.data.AUTOTUNE)
