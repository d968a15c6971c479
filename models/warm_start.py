"""Warm start: a new version begins from the champion's weights (transfer learning, as the seeds describe it).

Fine-tuning the current champion on the newest cutoffs instead of training
from scratch: every layer is copied by name. The vocabulary is refitted at
each training run and ordered by frequency, so weights indexed by category
(the category embedding's rows, the deep logit's columns, and the rows of the
head's hidden layer that read the per-category shares) are mapped by
category name; categories the champion never saw keep their fresh
initialisation. bench/bench_model_variants.py compares it with training
from scratch on validation.
"""
from __future__ import annotations

import numpy as np

from models.transformer import SUMMARY_CATEGORY_BLOCKS as CATEGORY_BLOCKS

# Layer name -> which weight (by position) has a category axis, and which axis.
CATEGORY_AXES = {"categories_embedding": {0: 0}, "deep_logit": {0: 1, 1: 0}}
# The hidden layer reads the user summary (d_model rows), then CATEGORY_BLOCKS per-category blocks.
HEAD_HIDDEN = "head_hidden"


def column_map(old_categories: list[str], new_categories: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(new ids, old ids) of the categories both vocabularies hold, padding and out-of-vocabulary included."""
    old_index = {c: i + 2 for i, c in enumerate(old_categories)}
    pairs = [(0, 0), (1, 1)] + [(j + 2, old_index[c]) for j, c in enumerate(new_categories) if c in old_index]
    new_ids, old_ids = zip(*pairs)
    return np.array(new_ids), np.array(old_ids)


def _mapped(fresh: np.ndarray, old: np.ndarray, axis: int, new_ids: np.ndarray, old_ids: np.ndarray) -> np.ndarray:
    out = fresh.copy()
    index_new = [slice(None)] * fresh.ndim
    index_old = [slice(None)] * old.ndim
    index_new[axis], index_old[axis] = new_ids, old_ids
    out[tuple(index_new)] = old[tuple(index_old)]
    return out


def _head_rows(fresh: np.ndarray, old: np.ndarray, d_model: int, new_ids, old_ids) -> np.ndarray:
    """The hidden layer's kernel: the summary rows copied, each per-category block mapped."""
    out = fresh.copy()
    out[:d_model] = old[:d_model]
    new_size = (fresh.shape[0] - d_model) // CATEGORY_BLOCKS
    old_size = (old.shape[0] - d_model) // CATEGORY_BLOCKS
    for b in range(CATEGORY_BLOCKS):
        out[d_model + b * new_size + new_ids] = old[d_model + b * old_size + old_ids]
    return out


def copy_weights(model, champion, old_categories: list[str], new_categories: list[str], d_model: int) -> int:
    """Copy ``champion``'s weights into ``model``; returns how many layers were copied."""
    new_ids, old_ids = column_map(old_categories, new_categories)
    names = {layer.name for layer in champion.layers}
    copied = 0
    for layer in model.layers:
        fresh = layer.get_weights()
        if not fresh or layer.name not in names:
            continue
        old = champion.get_layer(layer.name).get_weights()
        if len(old) != len(fresh):
            raise ValueError(f"layer {layer.name} differs from the champion's: cannot warm-start")
        weights = []
        for position, (f, o) in enumerate(zip(fresh, old)):
            axis = CATEGORY_AXES.get(layer.name, {}).get(position)
            if axis is not None:
                weights.append(_mapped(f, o, axis, new_ids, old_ids))
            elif layer.name == HEAD_HIDDEN and position == 0:
                weights.append(_head_rows(f, o, d_model, new_ids, old_ids))
            elif f.shape == o.shape:
                weights.append(o)
            else:
                raise ValueError(f"weight {position} of layer {layer.name} has shape {o.shape} in the champion and "
                                 f"{f.shape} here: cannot warm-start")
        layer.set_weights(weights)
        copied += 1
    return copied
