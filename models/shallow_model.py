"""The learned shallow baseline as a servable model: the fallback champion.

``models.shallow`` fits a logistic regression on per-(user, category)
features; ``evaluate`` fits it beside every candidate. When no trained
sequence model has beaten the baselines yet (no champion, or the champion is
an earlier fallback), the strongest honest thing to publish is that
regression, not nothing: marketing and inventory still get their tables
every night, and the Transformer takes over only once it beats it by more
than noise (``models/promotion.py``). On a young lake of a few thousand
sequences that is what happens: the sequence model ties or trails the
regression (docs/model.md).

To serve it without a second scoring path, the fitted regression is written
as a tf-keras model with the Transformer's inputs and outputs: the same
registry, scoring workers, explanations and SQL tables. Its features are
``models.shallow.cell_features`` recomputed in TensorFlow from the encoded
inputs and the fitted ``BaselineFit`` (popularity, the Markov and
focus-transition matrices, the recency decay), held as non-trainable
weights; tests/models check both give the same probabilities.

Outputs:
- ``category``: the regression's P(engages with c), 0 for padding and
  out-of-vocabulary;
- ``new_category``: P(any category absent from the window), 1 − Π(1 − p_c)
  over those categories (independence: the regression has no joint view);
- ``habit_logit`` / ``sequence_logit``: the logit split into the terms of
  the user's own history with the category (counts, shares, recency; with
  the intercept) and the rest (popularity, transitions, activity), which
  ``models/explain.py`` reads as "own habits" against the rest.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf
import tf_keras as keras

from models.baselines import AGE_BUCKET_DAYS, SESSION_START, TIE_BREAK
from models.encoding import COUNTS, RECENCY
from models.vocabulary import OOV, PAD

KIND = "shallow"
# models.shallow.cell_features' columns, in its order: COUNTS' logs and shares, then these.
OWN_EXTRA = ("seen", RECENCY, "recency_share")
POPULATION = ("log_popularity", "log_new_popularity", "markov", "focus", "activity", "seen_x_log_popularity",
              "unseen_x_focus", "unseen_x_markov")
FEATURE_COUNT = 2 * len(COUNTS) + len(OWN_EXTRA) + len(POPULATION)
# The first OWN features describe the user's own history with the category: all zero for one never touched.
OWN = 2 * len(COUNTS) + len(OWN_EXTRA)
SEQUENCE_INPUTS = ("categories", "age_buckets", "session_starts")


@keras.utils.register_keras_serializable(package="interest_migration")
class ShallowLogits(keras.layers.Layer):
    """The regression's per-category logit, as its two parts (own history, the rest); (batch, V) each."""

    def __init__(self, vocabulary_size: int, age_buckets: int, **kwargs):
        super().__init__(**kwargs)
        self.vocabulary_size, self.age_buckets = vocabulary_size, age_buckets

    def build(self, input_shape):
        size = self.vocabulary_size

        def constant(name, shape):
            return self.add_weight(name=name, shape=shape, initializer="zeros", trainable=False)

        self.popularity, self.new_popularity = constant("popularity", (size,)), constant("new_popularity", (size,))
        self.transitions = constant("transitions", (size, size))
        self.focus_transitions = constant("focus_transitions", (size, size))
        self.age_weights = constant("age_weights", (self.age_buckets,))
        self.mean, self.scale = constant("mean", (FEATURE_COUNT,)), constant("scale", (FEATURE_COUNT,))
        self.coefficients, self.intercept = constant("coefficients", (FEATURE_COUNT,)), constant("intercept", ())
        super().build(input_shape)

    def call(self, inputs):
        features = self.features(inputs)
        terms = [(f - self.mean[i]) / self.scale[i] * self.coefficients[i] for i, f in enumerate(features)]
        # The intercept sits in the own part, where explain's "minus the part at zero" cancels it: the rest is
        # then a sum of standardised terms, above zero when the category's popularity and transitions speak
        # for it more than they do on average (with the intercept it was below zero for nearly every cell).
        return tf.add_n(terms[:OWN]) + self.intercept, tf.add_n(terms[OWN:])

    def habit_at_zero(self) -> float:
        """The own-history part for a category the user never touched (every own feature zero)."""
        return float(tf.reduce_sum(-self.mean[:OWN] / self.scale[:OWN] * self.coefficients[:OWN]) + self.intercept)

    def features(self, inputs: dict) -> list:
        """models.shallow.cell_features, column by column, each (batch, V)."""
        counts = [inputs[name] for name in COUNTS]
        window = inputs["window_events"]
        seen = tf.cast(window > 0, tf.float32)
        recency = self._recency_scores(inputs)
        recency_share = recency / tf.maximum(tf.reduce_sum(recency, axis=1, keepdims=True), 1e-12)
        ones = tf.ones_like(seen)
        log_popularity = ones * tf.math.log(self.popularity + 1e-4)
        log_new_popularity = ones * tf.math.log(self.new_popularity + 1e-4)
        markov = tf.gather(self.transitions, inputs["categories"][:, -1]) + TIE_BREAK * self.popularity
        focus = self._focus(inputs) + TIE_BREAK * self.new_popularity
        activity = ones * tf.math.log1p(tf.reduce_sum(window, axis=1, keepdims=True))
        return [*(tf.math.log1p(c) for c in counts),
                *(c / tf.maximum(tf.reduce_sum(c, axis=1, keepdims=True), 1.0) for c in counts),
                seen, inputs[RECENCY], recency_share,
                log_popularity, log_new_popularity, markov, focus, activity,
                seen * log_popularity, (1 - seen) * focus, (1 - seen) * markov]

    def _per_category(self, categories, values):
        """(batch, V): ``values`` (batch, L) summed per row and category id (a segment sum, not a one-hot:
        memory grows with batch x V, not batch x L x V)."""
        rows = tf.shape(categories)[0]
        flat = tf.range(rows)[:, None] * self.vocabulary_size + categories
        summed = tf.math.unsorted_segment_sum(tf.reshape(values, [-1]), tf.reshape(flat, [-1]),
                                              rows * self.vocabulary_size)
        return tf.reshape(summed, [rows, self.vocabulary_size])

    def _recency_scores(self, inputs):
        """models.baselines.recency_scores: steps weighted by their age bucket's decay, older window events at
        the oldest weight."""
        steps = self._per_category(inputs["categories"], tf.gather(self.age_weights, inputs["age_buckets"]))
        older = tf.maximum(inputs["window_events"] - inputs["seen"], 0.0)
        return steps + older * self.age_weights[-1] + TIE_BREAK * self.popularity

    def _focus(self, inputs):
        """The last session's category mix (from its last session start on) times the focus transitions."""
        categories, starts = inputs["categories"], tf.equal(inputs["session_starts"], SESSION_START)
        length = tf.shape(categories)[1]
        from_end = tf.argmax(tf.cast(tf.reverse(starts, axis=[1]), tf.int32), axis=1, output_type=tf.int32)
        last_start = tf.where(tf.reduce_any(starts, axis=1), length - 1 - from_end, 0)
        inside = (tf.range(length)[None, :] >= last_start[:, None]) & tf.not_equal(categories, PAD)
        counts = self._per_category(categories, tf.cast(inside, tf.float32))
        mix = counts / tf.maximum(tf.reduce_sum(counts, axis=1, keepdims=True), 1e-12)
        return tf.matmul(mix, self.focus_transitions)

    def get_config(self) -> dict:
        return {**super().get_config(), "vocabulary_size": self.vocabulary_size, "age_buckets": self.age_buckets}


@keras.utils.register_keras_serializable(package="interest_migration")
class ShallowHeads(keras.layers.Layer):
    """(own, rest) logits and the window counts -> P(category), P(any new category)."""

    def call(self, inputs):
        own, rest, window = inputs
        ranked = np.ones(own.shape[-1], np.float32)
        ranked[[PAD, OOV]] = 0
        probability = tf.sigmoid(own + rest) * ranked
        unseen = tf.cast(window <= 0, tf.float32) * ranked
        # log(1 - p) summed over the unseen categories; p is capped below 1 so the log stays finite.
        none_new = tf.exp(tf.reduce_sum(unseen * tf.math.log1p(-tf.minimum(probability, 1 - 1e-6)), axis=1))
        return probability, (1.0 - none_new)[:, None]


def model_config(vocabulary_size: int, sequence_length: int) -> dict:
    """The ``model`` entry of a fallback version's metadata (``kind`` tells it from a trained version's)."""
    return {"kind": KIND, "vocabulary_size": vocabulary_size, "sequence_length": sequence_length,
            "age_buckets": len(AGE_BUCKET_DAYS)}


def build_shallow_model(config: dict) -> keras.Model:
    """The Keras form of the regression, its constants at zero (``set_fitted`` or ``load_weights`` fills them)."""
    size, length = int(config["vocabulary_size"]), int(config["sequence_length"])
    inputs = {name: keras.Input((length,), dtype="int32", name=name) for name in SEQUENCE_INPUTS}
    for name in (*COUNTS, RECENCY):
        inputs[name] = keras.Input((size,), dtype="float32", name=name)
    own, rest = ShallowLogits(size, int(config["age_buckets"]), name="shallow_logits")(inputs)
    category, new_category = ShallowHeads(name="shallow_heads")([own, rest, inputs["window_events"]])
    outputs = {"category": keras.layers.Activation("linear", name="category")(category),
               "new_category": keras.layers.Activation("linear", name="new_category")(new_category),
               "habit_logit": keras.layers.Activation("linear", name="habit_logit")(own),
               "sequence_logit": keras.layers.Activation("linear", name="sequence_logit")(rest)}
    return keras.Model(inputs, outputs, name="shallow_fallback")


def set_fitted(model: keras.Model, shallow) -> None:
    """Copy a fitted ``models.shallow.ShallowModel`` (scaler, regression, baseline fit) into the model."""
    fit = shallow.fit
    scaler, regression = shallow.model[0], shallow.model[-1]
    weights = np.where(np.isinf(AGE_BUCKET_DAYS), 0.0,
                       np.exp(-AGE_BUCKET_DAYS / fit.decay_days) if fit.decay_days < np.inf else 1.0)
    layer = model.get_layer("shallow_logits")
    layer.popularity.assign(fit.popularity)
    layer.new_popularity.assign(fit.new_popularity)
    layer.transitions.assign(fit.transitions)
    layer.focus_transitions.assign(fit.focus_transitions)
    layer.age_weights.assign(weights)
    layer.mean.assign(scaler.mean_)
    layer.scale.assign(scaler.scale_)
    layer.coefficients.assign(regression.coef_[0])
    layer.intercept.assign(float(regression.intercept_[0]))
