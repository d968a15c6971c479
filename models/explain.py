"""Why a user got their predictions, in a line a marketer can read.

For each of a user's top categories the model's logit is the sum of two
parts (``models/transformer.py``): the *habit* part, a small network on the
user's own history with that category (its shares and counts over the last
day, three days, last L events and the whole window, its active days and how
recently it was touched), and the *sequence* part, what the
encoder adds from the order and timing of everything the user did. The
explanation gives each part's share of the evidence *for* the category:

- habit: how far the user's own history with the category lifts its logit
  above a user who never touched it (the habit part at zero shares);
- the rest of the model: how far the other part lifts it (it starts at
  zero). That part reads the encoder's summary of the sequence, the user's
  shares of *all* categories and each category's learned base rate, so it is
  "everything beyond the user's own counts of this category", not the
  sequence alone;

(the fallback champion, ``models/shallow_model.py``, splits its regression's
logit the same way: the terms of the user's own history with the category,
and the rest), so "72% own habits" means the user keeps doing this, "0% own habits" that
the model expects it from the rest of the user's behaviour and what is
popular; "new to the user" marks a category absent from their history. With the
Transformer it also names the recent categories the user's summary attended
to most (attention of the last position, by category), the "recent
drivers". For example::

    audio 0.62 (80% own habits), phones 0.41 (35% own habits), tv 0.20 (new to the user) | recent: audio 46%, phones 21%
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

SHOWN = 3
DRIVERS = 2
MIN_DRIVER_SHARE = 0.1
# Every number a line shows is a whole percent or two decimals, so each is looked up among 101 ready strings
# and the lines are joined by Arrow's string kernels: no Python code runs per user (a per-row f-string
# loop cost more than a tenth of the scoring's time).
_PROBABILITIES = pa.array([f"{i / 100:.2f}" for i in range(101)])
_PERCENTS = pa.array([f"{i}%" for i in range(101)])
_NEW, _WEAK = 101, 102
_NOTES = pa.array([f"{i}% own habits" for i in range(101)] + ["new to the user", "weak signals"])


def habit_at_zero(model) -> float:
    """The habit part's logit for a category the user has no history with (all its shares zero)."""
    import tensorflow as tf

    if "shallow_logits" in {layer.name for layer in model.layers}:  # the fallback (models/shallow_model.py)
        return model.get_layer("shallow_logits").habit_at_zero()
    hidden, logit = model.get_layer("wide_hidden"), model.get_layer("wide_logit")
    zeros = tf.zeros((1, 1, hidden.kernel.shape[0]))
    return float(logit(hidden(zeros))[0, 0, 0])


def explain(top_ids: np.ndarray, top_probabilities: np.ndarray, names, habit_logit: np.ndarray,
            sequence_logit: np.ndarray, habit_zero: float, seen: np.ndarray, history_ids: np.ndarray,
            attention: np.ndarray | None = None) -> pa.StringArray:
    """One explanation per row. ``top_ids`` (rows, k) are vocabulary ids, ``names`` (an Arrow or NumPy array of
    strings) indexed by id."""
    names = _strings(names)
    shown = top_ids[:, :SHOWN]
    habit = np.maximum(np.take_along_axis(habit_logit, shown, axis=1) - habit_zero, 0.0)
    sequence = np.maximum(np.take_along_axis(sequence_logit, shown, axis=1), 0.0)
    total = habit + sequence
    share = np.divide(habit, total, out=np.zeros(habit.shape), where=total > 0)
    is_new = ~np.take_along_axis(seen, shown, axis=1)
    notes = np.where(is_new, _NEW, np.where(total > 0, _percent(share), _WEAK))
    probabilities = _percent(top_probabilities[:, :SHOWN])
    parts = [pc.binary_join_element_wise(names.take(shown[:, j]), " ", _PROBABILITIES.take(probabilities[:, j]),
                                         " (", _NOTES.take(notes[:, j]), ")", "")
             for j in range(shown.shape[1])]
    text = pc.binary_join_element_wise(*parts, ", ")
    if attention is None:
        return text
    drivers = drivers_text(history_ids, attention, names)
    return pc.if_else(pc.equal(drivers, ""), text, pc.binary_join_element_wise(text, drivers, " | recent: "))


def drivers_text(history_ids: np.ndarray, attention: np.ndarray, names) -> pa.StringArray:
    """Per row, "name NN%, name NN%": the categories the user's summary attended to most ("" when none).

    Attention is summed per (row, category) by sorting each row's own history, so time and memory grow
    with rows x history length, not rows x vocabulary (real catalogues have thousands of categories).
    """
    names = _strings(names)
    rows, length = history_ids.shape
    by_id = np.argsort(history_ids, axis=1, kind="stable")
    ids = np.take_along_axis(history_ids, by_id, axis=1)
    weights = np.take_along_axis(np.where(history_ids > 0, attention, 0.0), by_id, axis=1)
    starts = np.ones(ids.shape, dtype=bool)
    starts[:, 1:] = ids[:, 1:] != ids[:, :-1]
    first = np.flatnonzero(starts)  # one run per (row, category), in row order
    mass = np.add.reduceat(weights.ravel(), first) if first.size else np.zeros(0)
    run_rows, run_ids = first // length, ids.ravel()[first]
    mass = mass / np.maximum(np.bincount(run_rows, weights=mass, minlength=rows), 1e-12)[run_rows]
    keep = (run_ids > 0) & (mass >= MIN_DRIVER_SHARE)  # at most 1 / MIN_DRIVER_SHARE runs per row remain
    run_rows, run_ids, mass = run_rows[keep], run_ids[keep], mass[keep]
    order = np.lexsort((-mass, run_rows))  # by row, then largest mass first (ties: the smaller id first)
    rank = np.arange(len(order)) - np.searchsorted(run_rows[order], run_rows[order])
    shown = order[rank < DRIVERS]
    shown_rank = rank[rank < DRIVERS]
    # Each shown driver's "name NN%", then an empty string that rows without one point at.
    entries = pa.concat_arrays([
        pc.binary_join_element_wise(names.take(run_ids[shown]), _PERCENTS.take(_percent(mass[shown])), " "),
        pa.array([""])])
    slot = [np.full(rows, len(shown)) for _ in range(DRIVERS)]
    for r in range(DRIVERS):
        picked = np.flatnonzero(shown_rank == r)
        slot[r][run_rows[shown[picked]]] = picked
    text = entries.take(slot[0])
    for r in range(1, DRIVERS):
        separator = pa.array(["", ", "]).take((slot[r] < len(shown)).astype(np.int8))
        text = pc.binary_join_element_wise(text, separator, entries.take(slot[r]), "")
    return text


def _percent(values: np.ndarray) -> np.ndarray:
    """Fractions in [0, 1] as whole percents (0-100), the positions of their strings in the tables above. A NaN
    (a broken model, which the predictions' suite then refuses) shows as 0 rather than stop the scoring."""
    percents = np.nan_to_num(np.asarray(values, dtype=np.float64) * 100, nan=0.0)
    return np.clip(np.rint(percents), 0, 100).astype(np.int64)


def _strings(names) -> pa.Array:
    return names if isinstance(names, pa.Array) else pa.array(list(names), pa.string())
