"""``events`` for one event date: one row per event, inside the day, with known types.

Validated by dedupe before it publishes (``session_id`` still empty, so
``require_session_id`` is off), and by sessionize and ``validate`` afterwards.
"""
from __future__ import annotations

import great_expectations as gx
import great_expectations.expectations as gxe

from expectations.common import CRITICAL, EVENT_TYPES, category_drift, contract, volume
from expectations.params import SuiteParams

COLUMNS = {
    "event_id": "StringType", "user_id": "StringType", "item_id": "StringType", "category": "StringType",
    "event_type": "StringType", "event_ts": "TimestampType", "event_date": "DateType", "source": "StringType",
    "ingest_date": "DateType", "session_id": "StringType",
}
KEYS = ["event_id", "user_id", "item_id", "category", "event_type", "event_ts", "event_date"]


def build_suite(params: SuiteParams) -> gx.ExpectationSuite:
    keys = KEYS + (["session_id"] if params.require_session_id else [])
    return gx.ExpectationSuite(name="events", expectations=[
        *contract(COLUMNS, keys),
        # One row per id and date: the same as a unique id in one date's partition, and right for a range of
        # them (an id replayed after the lookback is kept again on its later date: jobs/dedupe.py).
        gxe.ExpectCompoundColumnsToBeUnique(column_list=["event_id", "event_date"], severity=CRITICAL),
        gxe.ExpectColumnValuesToBeInSet(column="event_type", value_set=EVENT_TYPES, severity=CRITICAL),
        gxe.ExpectColumnValuesToBeBetween(
            column="event_ts", min_value=params.window_start, max_value=params.window_end, strict_max=True,
            severity=CRITICAL, description="event times inside the partition's day (UTC)"),
        *volume(params),
        *category_drift(params),
    ])
