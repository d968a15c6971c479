"""user_sequences rows (Arrow) -> fixed-size NumPy arrays the model reads.

Histories are right-aligned: the most recent event sits in the last position
and padding (id 0) fills the front, so the causal encoder's last position has
seen the whole history. Vectorised over Arrow list offsets: no Python loop per
row, so a million sequences encode in seconds.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from models.vocabulary import OOV, Vocabulary, event_type_index

FEATURES = ("categories", "event_types", "gap_buckets", "age_buckets", "session_starts")
# Category counts over recent history: age buckets (jobs.features.AGE_EDGES_S) up to
# 2 are the last day before the cutoff, up to 4 the last three days.
RECENT_WINDOWS = {"recent_1d": 2, "recent_3d": 4}
# Per-category events and sessions over the whole history window (features'
# window_* columns), beyond the last L events.
WINDOW_COUNTS = {"window_events": "window_category_events", "window_sessions": "window_category_sessions"}
COUNTS = ("seen", *RECENT_WINDOWS, *WINDOW_COUNTS)
# The user_sequences columns encode_sequences reads (training adds the labels).
INPUT_COLUMNS = ("history_categories", "history_event_types", "history_gap_buckets", "history_age_buckets",
                 "history_session_starts", "window_categories", *WINDOW_COUNTS.values())
LABEL_COLUMNS = ("label_categories", "has_new_category")


def _right_aligned(column: pa.ChunkedArray | pa.Array, length: int, values: np.ndarray) -> np.ndarray:
    """Place each row's list (already mapped to ``values``) at the end of a zero row of ``length``."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    offsets = array.offsets.to_numpy(zero_copy_only=False) - array.offsets[0].as_py()
    sizes = np.diff(offsets)
    rows = len(sizes)
    out = np.zeros((rows, length), dtype=np.int32)
    # Keep the last `length` elements of each row.
    keep = np.minimum(sizes, length)
    row_of = np.repeat(np.arange(rows), sizes)
    position_in_row = np.arange(len(values)) - np.repeat(offsets[:-1], sizes)
    column_in_out = position_in_row - (sizes - keep)[row_of] + (length - keep)[row_of]
    mask = column_in_out >= length - keep[row_of]
    out[row_of[mask], column_in_out[mask]] = values[mask]
    return out


def _mapped(column, mapping: dict[str, int], default: int) -> np.ndarray:
    flat = pc.list_flatten(column)
    keys = pa.array(list(mapping), type=pa.string())
    found = pc.index_in(flat, value_set=keys).to_numpy(zero_copy_only=False)
    ids = np.array(list(mapping.values()), dtype=np.int32)
    return np.where(np.isnan(found.astype(float)), default, ids[np.nan_to_num(found.astype(float)).astype(int)])


def encode_sequences(table: pa.Table, vocabulary: Vocabulary, length: int) -> dict[str, np.ndarray]:
    """Model inputs (and labels, when the rows have them) for every row of ``table``."""
    index = vocabulary.index()
    inputs = {
        "categories": _right_aligned(table["history_categories"], length,
                                     _mapped(table["history_categories"], index, OOV)),
        "event_types": _right_aligned(table["history_event_types"], length,
                                      _mapped(table["history_event_types"], event_type_index(), 1)),
        "gap_buckets": _right_aligned(table["history_gap_buckets"], length,
                                      pc.list_flatten(table["history_gap_buckets"]).to_numpy(zero_copy_only=False)
                                      .astype(np.int32) + 1),
        "age_buckets": _right_aligned(table["history_age_buckets"], length,
                                      pc.list_flatten(table["history_age_buckets"]).to_numpy(zero_copy_only=False)
                                      .astype(np.int32) + 1),
        "session_starts": _right_aligned(table["history_session_starts"], length,
                                         pc.list_flatten(table["history_session_starts"]).to_numpy(zero_copy_only=False)
                                         .astype(np.int32) + 1),
    }
    # History category counts over the whole sequence (not only the last L kept
    # above), and over its last day and last three days: what the user is into
    # now, which is where their next week starts.
    inputs["seen"] = multi_hot(table["history_categories"], index, vocabulary.size)
    ages = pc.list_flatten(table["history_age_buckets"]).to_numpy(zero_copy_only=False)
    for name, max_bucket in RECENT_WINDOWS.items():
        inputs[name] = multi_hot(table["history_categories"], index, vocabulary.size, keep=ages <= max_bucket)
    for name, column in WINDOW_COUNTS.items():
        inputs[name] = window_counts(table, column, index, vocabulary.size)
    encoded = dict(inputs)
    if "label_categories" in table.column_names and table["label_categories"].null_count < len(table):
        encoded["label_categories"] = np.minimum(multi_hot(table["label_categories"], index, vocabulary.size), 1)
        encoded["label_has_new"] = np.asarray(table["has_new_category"].fill_null(False).to_numpy(
            zero_copy_only=False), dtype=np.float32)[:, None]
    return encoded


def window_counts(table: pa.Table, column: str, index: dict[str, int], size: int) -> np.ndarray:
    """(rows, size) float32: ``column``'s counts placed at each of ``window_categories``' ids."""
    weights = pc.list_flatten(table[column]).to_numpy(zero_copy_only=False).astype(np.float32)
    return multi_hot(table["window_categories"], index, size, weights=weights)


def multi_hot(column, index: dict[str, int], size: int, keep: np.ndarray | None = None,
              weights: np.ndarray | None = None) -> np.ndarray:
    """(rows, size) float32 counts of each id per row's list (OOV included).

    ``keep`` masks list elements; ``weights`` (one per list element) adds that
    much instead of 1.
    """
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    array = array.fill_null([]) if array.null_count else array
    offsets = array.offsets.to_numpy(zero_copy_only=False) - array.offsets[0].as_py()
    sizes = np.diff(offsets)
    ids = _mapped(array, index, OOV)
    out = np.zeros((len(sizes), size), dtype=np.float32)
    rows = np.repeat(np.arange(len(sizes)), sizes)
    values = np.ones(len(ids), dtype=np.float32) if weights is None else weights
    if keep is not None:
        rows, ids, values = rows[keep], ids[keep], values[keep]
    np.add.at(out, (rows, ids), values)
    return out
