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

# Bucket edges in seconds (jobs/features.py buckets each step with them); gap bucket 0 means "no previous
# event", age bucket b holds ages in [AGE_EDGES_S[b - 1], AGE_EDGES_S[b]).
GAP_EDGES_S = (60, 300, 1800, 3 * 3600, 86400, 3 * 86400, 7 * 86400)
AGE_EDGES_S = (3600, 6 * 3600, 86400, 2 * 86400, 3 * 86400, 5 * 86400, 7 * 86400, 14 * 86400)
FEATURES = ("categories", "event_types", "gap_buckets", "age_buckets", "session_starts")
# Category counts over recent history: age buckets (AGE_EDGES_S) up to
# 2 are the last day before the cutoff, up to 4 the last three days.
RECENT_WINDOWS = {"recent_1d": 2, "recent_3d": 4}
# Per-category events, sessions and active days over the whole history window
# (features' window_* columns), beyond the last L events.
WINDOW_COUNTS = {"window_events": "window_category_events", "window_sessions": "window_category_sessions",
                 "window_days": "window_category_days"}
COUNTS = ("seen", *RECENT_WINDOWS, *WINDOW_COUNTS)
# Per category, exp(-days since its last event / RECENCY_SCALE_DAYS), 0 when absent from the window: how
# fresh an interest is, whatever the user's activity level (counts and shares cannot tell a habit lapsed
# three weeks ago from one touched yesterday). One horizon's scale; the wide path's MLP bends it as needed.
RECENCY, RECENCY_SCALE_DAYS, AGE_COLUMN = "window_recency", 7.0, "window_category_age_seconds"
# Every (batch, V) per-category input the model reads.
WIDE_INPUTS = (*COUNTS, RECENCY)
# Which per-category inputs a model reads: part of its architecture (a warm start needs the same set).
# 2: window active days and recency added to the counts of 1.
INPUTS_VERSION = 2
# The user_sequences columns encode_sequences reads (training adds the labels).
INPUT_COLUMNS = ("history_categories", "history_event_types", "history_gap_buckets", "history_age_buckets",
                 "history_session_starts", "window_categories", *WINDOW_COUNTS.values(), AGE_COLUMN)
LABEL_COLUMNS = ("label_categories", "has_new_category")


class _Lists:
    """One list column flattened once: its values, and the row each value belongs to.

    Every feature drawn from a column (ids, right-aligned steps, counts) reuses
    these, and the five history columns share one layout when their lists have
    the same lengths, as ``features`` writes them.
    """

    def __init__(self, column: pa.ChunkedArray | pa.Array):
        array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
        array = array.fill_null([]) if array.null_count else array
        offsets = array.offsets.to_numpy(zero_copy_only=False)
        self.offsets = offsets - offsets[0]
        self.sizes = np.diff(self.offsets)
        self.rows = len(self.sizes)
        self.values = array.flatten()
        self.row_of = np.repeat(np.arange(self.rows, dtype=np.int64), self.sizes)

    def same_layout(self, other: "_Lists") -> bool:
        return np.array_equal(self.offsets, other.offsets)

    def right_aligned_slots(self, length: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Each value's flat slot in a (rows, length) right-aligned array, and which values keep a slot
        (None: all do); only a row's last ``length`` values are kept."""
        # Value i of row r lands at r * length + length - (offsets[r + 1] - i).
        shift = np.arange(self.rows, dtype=np.int64) * length + length - self.offsets[1:]
        slots = np.arange(len(self.values), dtype=np.int64) + shift[self.row_of]
        if not len(self.sizes) or self.sizes.max() <= length:
            return slots, None
        kept = slots >= self.row_of * length
        return slots[kept], kept

    def counts(self, ids: np.ndarray, size: int, keep: np.ndarray | None = None,
               weights: np.ndarray | None = None) -> np.ndarray:
        """(rows, size) float32: per row, how often each id occurs (or the sum of ``weights``)."""
        flat = self.row_of * size + ids
        if keep is not None:
            flat = flat[keep]
            weights = None if weights is None else weights[keep]
        counted = np.bincount(flat, weights=weights, minlength=self.rows * size)
        return counted.reshape(self.rows, size).astype(np.float32)


def _right_aligned(lists: _Lists, slots: tuple[np.ndarray, np.ndarray | None], length: int,
                   values: np.ndarray) -> np.ndarray:
    """``values`` (one per list element) placed at their right-aligned ``slots``; 0 pads the front."""
    where, kept = slots
    out = np.zeros(lists.rows * length, dtype=np.int32)
    out[where] = values if kept is None else values[kept]
    return out.reshape(lists.rows, length)


def _mapped(values: pa.Array, mapping: dict[str, int], default: int) -> np.ndarray:
    """Each string's id in ``mapping``, ``default`` for the rest (and nulls).

    Dictionary-encoded strings (as scoring reads them from Parquet) are mapped once per distinct string.
    """
    if pa.types.is_dictionary(values.type):
        ids = np.append(_mapped(values.dictionary, mapping, default), np.int32(default))
        return ids[values.indices.fill_null(len(values.dictionary)).to_numpy(zero_copy_only=False)]
    found = pc.index_in(values, value_set=pa.array(list(mapping), type=pa.string()))
    ids = np.array([*mapping.values(), default], dtype=np.int32)
    return ids[found.fill_null(len(mapping)).to_numpy(zero_copy_only=False)]


def _numbers(values: pa.Array) -> np.ndarray:
    """Bucket numbers shifted by one, so that 0 is left for padding."""
    return values.to_numpy(zero_copy_only=False).astype(np.int32) + 1


def older_snapshot(missing: list[str]) -> str:
    """The one-line refusal of user_sequences rows that lack input columns: what to run to get them."""
    return (f"user_sequences rows lack {', '.join(missing)} (written by an older features job): "
            f"run features again for this date")


def encode_sequences(table: pa.Table, vocabulary: Vocabulary, length: int) -> dict[str, np.ndarray]:
    """Model inputs (and labels, when the rows have them) for every row of ``table``.

    Vectorised over Arrow list offsets, with each column flattened and mapped
    once: encoding is as costly as the model's forward pass at scoring time,
    so it is kept to a few NumPy passes per column (bench/bench_score.py).
    """
    # Absent, or null in every row: a snapshot an older features job wrote before the table gained the column.
    missing = [c for c in INPUT_COLUMNS
               if c not in table.column_names or (table.num_rows and table[c].null_count == table.num_rows)]
    if missing:
        raise ValueError(older_snapshot(missing))
    index = vocabulary.index()
    categories = _Lists(table["history_categories"])
    category_ids = _mapped(categories.values, index, OOV)
    slots = categories.right_aligned_slots(length)

    def steps(column: str, values_of) -> np.ndarray:
        lists = _Lists(table[column])
        if not lists.same_layout(categories):
            return _right_aligned(lists, lists.right_aligned_slots(length), length, values_of(lists.values))
        return _right_aligned(categories, slots, length, values_of(lists.values))

    ages = pc.list_flatten(table["history_age_buckets"]).to_numpy(zero_copy_only=False)
    inputs = {
        "categories": _right_aligned(categories, slots, length, category_ids),
        "event_types": steps("history_event_types", lambda v: _mapped(v, event_type_index(), 1)),
        "gap_buckets": steps("history_gap_buckets", _numbers),
        "age_buckets": steps("history_age_buckets", _numbers),
        "session_starts": steps("history_session_starts", _numbers),
        # History category counts over the whole sequence (not only the last L kept
        # above), and over its last day and last three days: what the user is into
        # now, which is where their next week starts.
        "seen": categories.counts(category_ids, vocabulary.size),
    }
    for name, max_bucket in RECENT_WINDOWS.items():
        inputs[name] = categories.counts(category_ids, vocabulary.size, keep=ages <= max_bucket)
    window = _Lists(table["window_categories"])
    window_ids = _mapped(window.values, index, OOV)
    for name, column in WINDOW_COUNTS.items():
        weights = pc.list_flatten(table[column]).to_numpy(zero_copy_only=False).astype(np.float64)
        inputs[name] = window.counts(window_ids, vocabulary.size, weights=weights)
    ages = pc.list_flatten(table[AGE_COLUMN]).to_numpy(zero_copy_only=False)
    inputs[RECENCY] = window.counts(window_ids, vocabulary.size,
                                    weights=np.exp(-ages.astype(np.float64) / (RECENCY_SCALE_DAYS * 86400)))
    encoded = dict(inputs)
    if "label_categories" in table.column_names and table["label_categories"].null_count < len(table):
        encoded["label_categories"] = np.minimum(multi_hot(table["label_categories"], index, vocabulary.size), 1)
        encoded["label_has_new"] = np.asarray(table["has_new_category"].fill_null(False).to_numpy(
            zero_copy_only=False), dtype=np.float32)[:, None]
    return encoded


def window_counts(table: pa.Table, column: str, index: dict[str, int], size: int) -> np.ndarray:
    """(rows, size) float32: ``column``'s counts placed at each of ``window_categories``' ids."""
    weights = pc.list_flatten(table[column]).to_numpy(zero_copy_only=False).astype(np.float64)
    return multi_hot(table["window_categories"], index, size, weights=weights)


def multi_hot(column, index: dict[str, int], size: int, keep: np.ndarray | None = None,
              weights: np.ndarray | None = None) -> np.ndarray:
    """(rows, size) float32 counts of each id per row's list (OOV included).

    ``keep`` masks list elements; ``weights`` (one per list element) adds that
    much instead of 1.
    """
    lists = _Lists(column)
    return lists.counts(_mapped(lists.values, index, OOV), size, keep=keep, weights=weights)
