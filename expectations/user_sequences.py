"""``user_sequences`` for one as-of date: the model's inputs, checked for leakage.

Every row is re-checked against its own cutoff: no history event at or after
it, no label event before it or past the horizon, and no training label in
the validation or test windows. These are critical: a leak would make every
reported metric a lie.
"""
from __future__ import annotations

import great_expectations as gx
import great_expectations.expectations as gxe

from expectations.common import CRITICAL, WARNING, contract
from expectations.params import SuiteParams

COLUMNS = {
    "as_of_date": "DateType", "cutoff_date": "DateType", "cutoff_ts": "TimestampType", "split": "StringType",
    "user_id": "StringType", "history_categories": "ArrayType", "history_event_types": "ArrayType",
    "history_gap_buckets": "ArrayType", "history_age_buckets": "ArrayType", "history_session_starts": "ArrayType",
    "history_length": "IntegerType", "history_last_ts": "TimestampType", "window_categories": "ArrayType",
    "window_category_events": "ArrayType", "window_category_sessions": "ArrayType",
    "window_category_days": "ArrayType", "window_category_age_seconds": "ArrayType", "label_categories": "ArrayType",
    "label_new": "ArrayType", "has_new_category": "BooleanType", "sequence_length": "IntegerType",
    "history_days": "IntegerType", "horizon_days": "IntegerType",
}
LEAKS = """
SELECT split, cutoff_date, user_id, history_last_ts, label_first_ts, label_last_ts FROM {{batch}}
WHERE history_last_ts >= cutoff_ts
   OR label_first_ts < cutoff_ts
   OR label_last_ts >= cutoff_ts + INTERVAL {horizon} DAYS
"""
# Training labels end before the validation cutoff (and so before the test window), within each as-of date's
# cutoffs (a range of as-of dates is validated in one run).
TRAIN_REACHES_AHEAD = """
SELECT t.as_of_date, t.cutoff_date, t.user_id, t.label_last_ts FROM {batch} t
JOIN (SELECT as_of_date, min(cutoff_date) AS held_out_date, min(cutoff_ts) AS held_out_ts FROM {batch}
      WHERE split IN ('validation', 'test') GROUP BY as_of_date) h ON t.as_of_date = h.as_of_date
WHERE t.split = 'train' AND (t.cutoff_date >= h.held_out_date OR t.label_last_ts >= h.held_out_ts)
"""
# Validation labels end before the first test origin: the version chosen on validation never saw a test week.
VALIDATION_REACHES_AHEAD = """
SELECT t.as_of_date, t.cutoff_date, t.user_id, t.label_last_ts FROM {batch} t
JOIN (SELECT as_of_date, min(cutoff_date) AS test_date, min(cutoff_ts) AS test_ts FROM {batch}
      WHERE split = 'test' GROUP BY as_of_date) h ON t.as_of_date = h.as_of_date
WHERE t.split = 'validation' AND (t.cutoff_date >= h.test_date OR t.label_last_ts >= h.test_ts)
"""
MISALIGNED = """
SELECT cutoff_date, user_id FROM {batch}
WHERE size(history_categories) <> history_length OR size(history_event_types) <> history_length
   OR size(history_gap_buckets) <> history_length OR size(history_age_buckets) <> history_length
   OR size(history_session_starts) <> history_length OR size(label_new) <> size(label_categories)
   OR size(window_category_events) <> size(window_categories)
   OR size(window_category_sessions) <> size(window_categories)
   OR size(array_except(history_categories, window_categories)) > 0
   OR aggregate(window_category_events, 0, (total, n) -> total + n) < history_length
   OR size(window_category_days) <> size(window_categories)
   OR size(window_category_age_seconds) <> size(window_categories)
   OR exists(zip_with(window_category_days, window_category_events, (d, n) -> d < 1 OR d > n), bad -> bad)
   OR exists(window_category_age_seconds, a -> a <= 0 OR a > history_days * 86400)
"""


def build_suite(params: SuiteParams) -> gx.ExpectationSuite:
    return gx.ExpectationSuite(name="user_sequences", expectations=[
        *contract(COLUMNS, ["as_of_date", "cutoff_date", "cutoff_ts", "split", "user_id", "history_categories",
                            "history_length", "history_last_ts"]),
        gxe.ExpectCompoundColumnsToBeUnique(column_list=["as_of_date", "cutoff_date", "user_id"], severity=CRITICAL),
        gxe.ExpectColumnValuesToBeInSet(column="split", value_set=["train", "validation", "test", "score"],
                                        severity=CRITICAL),
        gxe.ExpectColumnValuesToBeBetween(column="history_length", min_value=1, max_value=params.sequence_length,
                                          severity=CRITICAL, description="1 to L events of history per user"),
        gxe.ExpectColumnValuesToNotBeNull(column="label_categories", severity=CRITICAL,
                                          row_condition="split != 'score'", condition_parser="spark"),
        gxe.UnexpectedRowsExpectation(unexpected_rows_query=LEAKS.format(horizon=params.horizon_days),
                                      severity=CRITICAL,
                                      description="history strictly before the cutoff, labels inside [cutoff, cutoff + H)"),
        gxe.UnexpectedRowsExpectation(unexpected_rows_query=TRAIN_REACHES_AHEAD, severity=CRITICAL,
                                      description="training labels end before the validation and test windows"),
        gxe.UnexpectedRowsExpectation(unexpected_rows_query=VALIDATION_REACHES_AHEAD, severity=CRITICAL,
                                      description="validation labels end before the first test origin"),
        gxe.UnexpectedRowsExpectation(unexpected_rows_query=MISALIGNED, severity=CRITICAL,
                                      description="history arrays aligned, one new-flag per label; the window's "
                                                  "counts cover the last L events, each category seen on 1 to "
                                                  "its event count of days, last inside the window"),
        gxe.ExpectColumnMeanToBeBetween(column="history_length", min_value=2, severity=WARNING,
                                        description="histories long enough to learn from"),
    ])
