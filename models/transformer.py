"""The interest-migration model: a causal Transformer over the event history, two heads.

In the spirit of SASRec and the Behavior Sequence Transformer: each history
step is the sum of category, event-type, time-gap, age and session-start
embeddings plus a learned position embedding (PositionEmbedding); pre-norm blocks of causal
multi-head self-attention encode it (one by default, in which the most recent
event attends to the whole history), and the last position (the most recent
event; histories are right-aligned) summarises the user. The summary, joined
with the user's category shares over the last L events, their last day and
last three days, and over the whole history window in events and in sessions
(what is current, and the stable interests that show only over weeks), feeds

- ``category``: P(the user engages with category c within H days), a sigmoid
  per category (multi-label, trained with binary cross-entropy, so the values
  are probabilities that sum to the expected number of categories);
- ``new_category``: P(the user engages with any category absent from the
  history within H days).

The category logits are wide + deep: a small MLP shared by every category maps
that category's own shares to a logit (the "keeps doing what they did" signal
in a few dozen weights), and a zero-initialised dense layer on the summary adds
what the sequence says beyond it. On the 20k-user evaluation this raised
NDCG@10 from 0.642 to 0.663 (migration Recall@10 0.639 to 0.643) at the same
training speed; on a 12-day, 2,000-user lake it is what lets a model trained on
a few thousand sequences reach the user-frequency baseline at all.

Written against tf-keras (Keras 2) because Keras 3's ``fit`` fails under
``MultiWorkerMirroredStrategy``. Sized for CPUs: 32 wide, one block. On the
20k-user evaluation, 64 wide was the same (NDCG@10 0.644 against 0.645) and
trained half as fast; two blocks gave NDCG@10 0.6448 and migration Recall@10
0.6380 against one block's 0.6423 and 0.6393, while one block trains twice as
fast (9,680 against 4,911 sequences/s) and scores twice as fast
(bench/bench_score.py), so one it is.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import tensorflow as tf
import tf_keras as keras

from models.architecture import ARCHITECTURE
from models.encoding import COUNTS, FEATURES, INPUTS_VERSION, RECENCY, WIDE_INPUTS


# The head's hidden layer reads [user summary (d_model), then these per-category blocks of V]: COUNTS' shares,
# the seen flag and the recency (models/warm_start.py maps each block by category name).
SUMMARY_CATEGORY_BLOCKS = len(COUNTS) + 2


@dataclass(frozen=True)
class ModelConfig:
    vocabulary_size: int
    sequence_length: int = 50
    n_event_types: int = 6
    n_gap_buckets: int = 10
    n_age_buckets: int = 11
    d_model: int = 32
    heads: int = 2
    blocks: int = 1
    feed_forward: int = 64
    wide_hidden: int = 8
    dropout: float = 0.1
    # "transformer" (causal self-attention, the default) or "lstm": the seeds' recurrent alternative,
    # compared on validation in bench/bench_model_variants.py.
    encoder: str = "transformer"
    # The per-category input set (models/encoding.py): recorded so that a warm start only fine-tunes a
    # champion that reads the same inputs.
    inputs_version: int = INPUTS_VERSION
    # ARCHITECTURE when trained; versions from before the key have none (their saved graph is loaded).
    architecture: int = ARCHITECTURE

    def to_json(self) -> dict:
        return asdict(self)


@keras.utils.register_keras_serializable(package="interest_migration")
class OneHotEmbedding(keras.layers.Layer):
    """An embedding looked up by a one-hot matrix product, so that its gradient is dense.

    Versions trained before StepEmbedding have one of these per feature (``<feature>_embedding``): kept
    registered so that they load, score and warm-start new versions (models/warm_start.py).

    Why not ``keras.layers.Embedding``: its gather has a sparse
    (``IndexedSlices``) gradient, one row per looked-up id, and
    ``MultiWorkerMirroredStrategy`` all-gathers those across workers, batch x L
    rows per table per step; that exchange cost more than the model itself
    (bench/bench_train.py). These vocabularies are tens of ids, so the one-hot
    product is cheap and its gradient is a small dense matrix, all-reduced
    like every other weight.
    """

    def __init__(self, input_dim: int, output_dim: int, **kwargs):
        super().__init__(**kwargs)
        self.input_dim, self.output_dim = input_dim, output_dim

    def build(self, input_shape):
        self.embeddings = self.add_weight(
            name="embeddings", shape=(self.input_dim, self.output_dim),
            initializer=keras.initializers.RandomUniform(-0.05, 0.05))
        super().build(input_shape)

    def call(self, ids, training=None):
        if training:
            return tf.einsum("blv,vd->bld", tf.one_hot(ids, self.input_dim, dtype=self.compute_dtype),
                             self.embeddings)
        # No gradient is taken outside training, so inference gathers the same rows: identical outputs,
        # and about 20% less time per scored user (bench/bench_score.py).
        return tf.cast(tf.gather(self.embeddings, ids), self.compute_dtype)

    def get_config(self) -> dict:
        return {**super().get_config(), "input_dim": self.input_dim, "output_dim": self.output_dim}


@keras.utils.register_keras_serializable(package="interest_migration")
class StepEmbedding(keras.layers.Layer):
    """Each history step's embedding: the sum of its FEATURES' embeddings, kept as one table whose rows are
    each feature's ids in turn (the categories' first, at offset 0).

    Training looks the rows up by a multi-hot product (a dense gradient, as
    OneHotEmbedding explains). Inference takes all five rows in one gather
    from the one table and sums them with a reduction. With five tables and
    five gathers, XLA fused the gathers into every consumer of their sum (the
    layer normalisation reads it three times) and gathered each row again
    there: the embedding and that normalisation cost half of a user's forward
    pass. Gathering from the tables concatenated at run
    time was no better (the concatenation is fused into the gather); one
    stored table is (bench/bench_score.py).
    """

    def __init__(self, sizes: dict[str, int], output_dim: int, **kwargs):
        super().__init__(**kwargs)
        self.sizes, self.output_dim = dict(sizes), output_dim
        self.offsets, start = [], 0
        for size in self.sizes.values():
            self.offsets.append(start)
            start += size
        self.rows = start

    def build(self, input_shape):
        self.embeddings = self.add_weight(name="embeddings", shape=(self.rows, self.output_dim),
                                          initializer=keras.initializers.RandomUniform(-0.05, 0.05))
        super().build(input_shape)

    def call(self, ids: list, training=None):
        rows = tf.stack([i + offset for i, offset in zip(ids, self.offsets)], axis=-1)  # (batch, L, features)
        if training:
            hot = tf.reduce_sum(tf.one_hot(rows, self.rows, dtype=self.compute_dtype), axis=-2)
            return tf.einsum("blv,vd->bld", hot, tf.cast(self.embeddings, self.compute_dtype))
        return tf.cast(tf.reduce_sum(tf.gather(self.embeddings, rows), axis=-2), self.compute_dtype)

    def get_config(self) -> dict:
        return {**super().get_config(), "sizes": self.sizes, "output_dim": self.output_dim}


@keras.utils.register_keras_serializable(package="interest_migration")
class PositionEmbedding(keras.layers.Layer):
    """Adds a learned embedding of each step's position to the steps ((batch, L, d) in and out).

    Until this layer, ``keras.layers.Embedding(L, d)(tf.range(L))`` ran eagerly on its constant input while
    the model was built: its random initial table entered the graph as a constant, never trained, never
    saved as a weight and drawn again by every build (a warm start fine-tuned a champion under positions
    it was not trained with).
    """

    def build(self, input_shape):
        self.embeddings = self.add_weight(name="embeddings", shape=tuple(input_shape[1:]),
                                          initializer=keras.initializers.RandomUniform(-0.05, 0.05))
        super().build(input_shape)

    def call(self, steps):
        return steps + tf.cast(self.embeddings, steps.dtype)[None]


@keras.utils.register_keras_serializable(package="interest_migration")
class LastQueryAttention(keras.layers.Layer):
    """Multi-head attention of one query (the last step) over the steps: ``MultiHeadAttention``'s result and
    weights (the same eight, in its order and shapes, so a champion's copy over), computed in fewer steps.

    Inputs: the query (batch, d), the steps (batch, L, d) and which steps are real (batch, L).
    Outputs: (batch, d), and the attention over the steps averaged over the heads (batch, L).

    The keys and values are linear in the steps, so with one query they need not be computed per step:
    q . (W_k h_j + b_k) = (W_k^T q) . h_j + q . b_k, and the weighted sum of the values is W_v (sum_j a_j h_j)
    + (sum_j a_j) b_v. That is L x heads x d products per user instead of the 2 x L x d x d that projecting
    every step takes, and a faster forward pass with outputs equal to 1e-6 (tests/models/test_model.py,
    bench/bench_score.py).
    """

    def __init__(self, num_heads: int, key_dim: int, dropout: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.num_heads, self.key_dim, self.rate = num_heads, key_dim, dropout
        self.dropout = keras.layers.Dropout(dropout)

    def build(self, input_shape):
        width, heads, key_dim = int(input_shape[1][-1]), self.num_heads, self.key_dim
        glorot, zeros = keras.initializers.GlorotUniform, keras.initializers.Zeros
        for name in ("query", "key", "value"):
            setattr(self, f"{name}_kernel", self.add_weight(name=f"{name}_kernel", shape=(width, heads, key_dim),
                                                           initializer=glorot()))
            setattr(self, f"{name}_bias", self.add_weight(name=f"{name}_bias", shape=(heads, key_dim),
                                                         initializer=zeros()))
        self.output_kernel = self.add_weight(name="output_kernel", shape=(heads, key_dim, width), initializer=glorot())
        self.output_bias = self.add_weight(name="output_bias", shape=(width,), initializer=zeros())
        super().build(input_shape)

    def call(self, inputs, training=None):
        query, steps, real = inputs
        q = (tf.einsum("bd,dhk->bhk", query, self.query_kernel) + self.query_bias) * (1.0 / self.key_dim ** 0.5)
        scores = (tf.einsum("bld,bhd->bhl", steps, tf.einsum("bhk,dhk->bhd", q, self.key_kernel))
                  + tf.einsum("bhk,hk->bh", q, self.key_bias)[..., None])  # the same for every step
        # As MultiHeadAttention masks: a large negative on the padding (a row without real steps attends evenly).
        scores += (1.0 - tf.cast(real, scores.dtype))[:, None, :] * -1e9
        weights = tf.nn.softmax(scores, axis=-1)
        dropped = self.dropout(weights, training=training)
        values = (tf.einsum("bhd,dhk->bhk", tf.einsum("bhl,bld->bhd", dropped, steps), self.value_kernel)
                  + tf.reduce_sum(dropped, axis=-1)[..., None] * self.value_bias)
        return (tf.einsum("bhk,hkd->bd", values, self.output_kernel) + self.output_bias,
                tf.reduce_mean(weights, axis=1))

    def get_config(self) -> dict:
        return {**super().get_config(), "num_heads": self.num_heads, "key_dim": self.key_dim, "dropout": self.rate}


# Small weightless steps of the graph, as registered layers rather than ``keras.layers.Lambda``: a Lambda is
# saved as its function's Python bytecode, which only the Python version that wrote it can load.
@keras.utils.register_keras_serializable(package="interest_migration")
class NotPadding(keras.layers.Layer):
    """(batch, L) ids -> (batch, L) bool: which steps hold an event (id 0 pads a short history)."""

    def call(self, ids):
        return tf.not_equal(ids, 0)


@keras.utils.register_keras_serializable(package="interest_migration")
class PaddingMask(keras.layers.Layer):
    """(batch, L) bool -> (batch, L, L): for every query, which keys are real (MultiHeadAttention's mask)."""

    def call(self, real):
        return tf.tile(real[:, None, :], [1, tf.shape(real)[1], 1])


@keras.utils.register_keras_serializable(package="interest_migration")
class Shares(keras.layers.Layer):
    """(batch, V) counts -> each category's share of the user's total (all zeros for a user without any)."""

    def call(self, counts):
        return counts / tf.maximum(tf.reduce_sum(counts, axis=-1, keepdims=True), 1.0)


@keras.utils.register_keras_serializable(package="interest_migration")
class LogCounts(keras.layers.Layer):
    """log(1 + count): how much there is in absolute terms, on a scale where heavy users do not dominate."""

    def call(self, counts):
        return tf.math.log1p(counts)


@keras.utils.register_keras_serializable(package="interest_migration")
class Seen(keras.layers.Layer):
    """(batch, V) counts -> 1.0 where the user has any, else 0.0."""

    def call(self, counts):
        return tf.cast(counts > 0, tf.float32)


@keras.utils.register_keras_serializable(package="interest_migration")
class StackLast(keras.layers.Layer):
    """n tensors of (batch, V) -> (batch, V, n): each category's own inputs side by side (the wide path)."""

    def call(self, tensors):
        return tf.stack(tensors, axis=-1)


@keras.utils.register_keras_serializable(package="interest_migration")
class DropLastAxis(keras.layers.Layer):
    """(batch, V, 1) -> (batch, V)."""

    def call(self, tensor):
        return tf.squeeze(tensor, -1)


def _block(x, padding_mask, config: ModelConfig, name: str):
    """Pre-norm causal self-attention then a position-wise feed-forward, both residual, at every position."""
    h = keras.layers.LayerNormalization(epsilon=1e-6, name=f"{name}_norm1")(x)
    h = keras.layers.MultiHeadAttention(num_heads=config.heads, key_dim=config.d_model // config.heads,
                                        dropout=config.dropout, name=f"{name}_attention")(
        h, h, attention_mask=padding_mask, use_causal_mask=True)
    return _feed_forward(x + keras.layers.Dropout(config.dropout)(h), config, name)


def _last_block(x, not_padding, config: ModelConfig, name: str):
    """The final block, at the last position only (its query attends to every real step, which is what
    causality allows it anyway); returns the last position's output (batch, d) and its attention over the
    steps averaged over heads (batch, L), the "recent drivers" of models/explain.py.

    Nothing after it reads the other positions: skipping their attention and feed-forward made training
    about 1.5x faster (bench/bench_train.py), and LastQueryAttention makes one query cheap.
    """
    h = keras.layers.LayerNormalization(epsilon=1e-6, name=f"{name}_norm1")(x)
    last_query = LastStep(name=f"{name}_last_query")(h)
    h, attended = LastQueryAttention(config.heads, config.d_model // config.heads, config.dropout,
                                     name=f"{name}_attention")([last_query, h, not_padding])
    x = LastStep(name=f"{name}_last_residual")(x)
    return _feed_forward(x + keras.layers.Dropout(config.dropout)(h), config, name), attended


def _feed_forward(x, config: ModelConfig, name: str):
    h = keras.layers.LayerNormalization(epsilon=1e-6, name=f"{name}_norm2")(x)
    h = keras.layers.Dense(config.feed_forward, activation="gelu", name=f"{name}_ff1")(h)
    h = keras.layers.Dense(config.d_model, name=f"{name}_ff2")(h)
    return x + keras.layers.Dropout(config.dropout)(h)


@keras.utils.register_keras_serializable(package="interest_migration")
class LastStep(keras.layers.Layer):
    """(batch, L, d) -> (batch, d): the last step (histories are right-aligned: the most recent event)."""

    def call(self, steps):
        return steps[:, -1, :]


def _lstm_encoder(x, not_padding, config: ModelConfig):
    """``blocks`` stacked LSTMs over the steps, padding masked; the last one's final state summarises the user."""
    for b in range(config.blocks):
        last = b == config.blocks - 1
        x = keras.layers.LSTM(config.d_model, return_sequences=not last, dropout=config.dropout,
                              name=f"lstm{b}")(x, mask=not_padding)
    return keras.layers.LayerNormalization(epsilon=1e-6, name="final_norm")(x)


def build_model(config: ModelConfig) -> keras.Model:
    """Inputs: the five (batch, L) int id sequences of ``models.encoding`` and its (batch, V) per-category vectors
    (WIDE_INPUTS)."""
    length = config.sequence_length
    inputs = {name: keras.Input((length,), dtype="int32", name=name) for name in FEATURES}
    for name in WIDE_INPUTS:
        inputs[name] = keras.Input((config.vocabulary_size,), dtype="float32", name=name)
    sizes = {"categories": config.vocabulary_size, "event_types": config.n_event_types,
             "gap_buckets": config.n_gap_buckets + 1, "age_buckets": config.n_age_buckets + 1, "session_starts": 3}
    x = StepEmbedding({name: sizes[name] for name in FEATURES}, config.d_model, name="step_embedding")(
        [inputs[name] for name in FEATURES])
    x = PositionEmbedding(name="position_embedding")(x)
    x = keras.layers.Dropout(config.dropout)(x)
    not_padding = NotPadding(name="not_padding")(inputs["categories"])
    attended = None
    if config.encoder == "lstm":
        user = _lstm_encoder(x, not_padding, config)
    elif config.encoder == "transformer":
        if config.blocks > 1:
            # (batch, query, key): any query may attend to a real (non-padding) key; causality is added by the layer.
            padding_mask = PaddingMask(name="padding_mask")(not_padding)
            for b in range(config.blocks - 1):
                x = _block(x, padding_mask, config, f"block{b}")
        x, attended = _last_block(x, not_padding, config, f"block{config.blocks - 1}")
        user = keras.layers.LayerNormalization(epsilon=1e-6, name="final_norm")(x)
    else:
        raise ValueError(f"unknown encoder {config.encoder!r}: transformer or lstm")
    shares = [Shares(name=f"{name}_share")(inputs[name]) for name in COUNTS]
    logs = [LogCounts(name=f"{name}_log")(inputs[name]) for name in COUNTS]
    seen_flag = Seen(name="seen_flag")(inputs["window_events"])
    per_category = [*shares, seen_flag, inputs[RECENCY]]
    summary = keras.layers.Concatenate(name="user_summary")([user, *per_category])
    hidden = keras.layers.Dense(config.feed_forward, activation="gelu", name="head_hidden")(summary)
    # The wide path: one small MLP, shared by every category, maps that category's own shares, log counts
    # and recency to a logit, so "the user keeps doing what they did" needs a handful of weights, not a
    # (8V x V) mapping learnt through the hidden layer; the deep path adds what the sequence says beyond it.
    # Shares say how much of the user's attention a category has, log counts how much there is in absolute
    # terms (a heavy user's 5% is still many events).
    own = StackLast(name="category_own_shares")([*per_category, *logs])
    own = keras.layers.Dense(config.wide_hidden, activation="gelu", name="wide_hidden")(own)
    wide = DropLastAxis(name="wide_squeeze")(keras.layers.Dense(1, name="wide_logit")(own))
    # Zero-initialised: training starts from the wide path alone, and the deep path only moves the logits
    # as far as the data supports (on a young lake's thousand sequences, a randomly initialised one
    # overfitted below the user-frequency baseline).
    deep = keras.layers.Dense(config.vocabulary_size, kernel_initializer="zeros", name="deep_logit")(
        keras.layers.Dropout(config.dropout)(hidden))
    category = keras.layers.Activation("sigmoid", name="category")(keras.layers.Add(name="category_logit")([deep, wide]))
    new_category = keras.layers.Dense(1, activation="sigmoid", name="new_category")(hidden)
    # What models/explain.py reads, beside the two trained heads (no loss on them): each category logit's
    # two parts, and (Transformer only) which history steps the summary attended to.
    outputs = {"category": category, "new_category": new_category,
               "habit_logit": keras.layers.Activation("linear", name="habit_logit")(wide),
               "sequence_logit": keras.layers.Activation("linear", name="sequence_logit")(deep)}
    if attended is not None:
        outputs["attention"] = keras.layers.Activation("linear", name="attention")(attended)
    return keras.Model(inputs, outputs, name="interest_migration")


def compile_model(model: keras.Model, learning_rate: float = 2e-3, decay_steps: int | None = None) -> keras.Model:
    """Binary cross-entropy on both heads, weighted so that every binary decision counts the same.

    The category head's loss is a mean over its V sigmoid outputs, so it is
    weighted by V (the sum over categories): each (user, category) cell
    then weighs as much as the user's one "moves to a new category" flag,
    and the new-category head no longer pulls on the shared layers as hard
    as all category logits together. The learning rate follows a cosine
    decay to a tenth over ``decay_steps`` (the whole run), so late epochs
    refine rather than jump.
    """
    rate = learning_rate if not decay_steps else keras.optimizers.schedules.CosineDecay(
        learning_rate, decay_steps=decay_steps, alpha=0.1)
    categories = int(model.get_layer("deep_logit").units)
    model.compile(
        optimizer=keras.optimizers.Adam(rate),
        loss={"category": keras.losses.BinaryCrossentropy(), "new_category": keras.losses.BinaryCrossentropy()},
        loss_weights={"category": float(categories), "new_category": 1.0},
    )
    return model
