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

from models.encoding import FEATURES
from models.transformer import SUMMARY_CATEGORY_BLOCKS as CATEGORY_BLOCKS

# Layer name -> which weight (by position) has a category axis, and which axis.
CATEGORY_AXES = {"deep_logit": {0: 1, 1: 0}}
# One table of every feature's rows, the categories' first (models/transformer.py StepEmbedding).
STEP_EMBEDDING = "step_embedding"
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


def _step_rows(fresh: np.ndarray, old: np.ndarray, new_ids, old_ids, new_size: int, old_size: int) -> np.ndarray:
    """The step embedding's table: the categories' rows mapped by name, the other features' rows copied."""
    if fresh.shape[0] - new_size != old.shape[0] - old_size:
        raise ValueError("the step embedding's other features differ from the champion's: cannot warm-start")
    out = fresh.copy()
    out[new_ids] = old[old_ids]
    out[new_size:] = old[old_size:]
    return out


def copy_weights(model, champion, old_categories: list[str], new_categories: list[str], d_model: int) -> int:
    """Copy ``champion``'s weights into ``model``; returns how many layers were copied."""
    new_ids, old_ids = column_map(old_categories, new_categories)
    copied = 0
    for layer in model.layers:
        fresh = layer.get_weights()
        old = _champion_weights(champion, layer.name)
        if not fresh or old is None:
            continue
        if len(old) != len(fresh):
            raise ValueError(f"layer {layer.name} differs from the champion's: cannot warm-start")
        weights = []
        for position, (f, o) in enumerate(zip(fresh, old)):
            axis = CATEGORY_AXES.get(layer.name, {}).get(position)
            if axis is not None:
                weights.append(_mapped(f, o, axis, new_ids, old_ids))
            elif layer.name == STEP_EMBEDDING:
                weights.append(_step_rows(f, o, new_ids, old_ids, len(new_categories) + 2, len(old_categories) + 2))
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


def _champion_weights(champion, name: str) -> list[np.ndarray] | None:
    """The champion's weights for layer ``name``; None when it has no such layer.

    A champion from before StepEmbedding has one ``<feature>_embedding`` layer per feature and a weightless
    ``step_embedding`` (an Add): their tables stacked in FEATURES' order are the new layer's table.
    """
    layers = {layer.name: layer for layer in champion.layers}
    if name == STEP_EMBEDDING and all(f"{feature}_embedding" in layers for feature in FEATURES):
        return [np.concatenate([layers[f"{feature}_embedding"].get_weights()[0] for feature in FEATURES])]
    return layers[name].get_weights() if name in layers else None
