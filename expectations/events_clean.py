"""``events_clean`` for one ingest batch: typed, in-window rows and a bounded quarantine rate.

The batch holds the ingest date's clean rows *and* its quarantined rows (with
``reason`` set and the event columns empty), so that the quarantine rate is
one expectation on the ``reason`` column; the row checks look at clean rows
only (``reason IS NULL``).
"""
from __future__ import annotations

import great_expectations as gx
import great_expectations.expectations as gxe

from expectations.common import CRITICAL, EVENT_TYPES, contract, volume
from expectations.params import SuiteParams

COLUMNS = {
    "event_id": "StringType", "user_id": "StringType", "item_id": "StringType", "category": "StringType",
    "event_type": "StringType", "event_ts": "TimestampType", "event_date": "DateType", "source": "StringType",
    "ingest_date": "DateType", "reason": "StringType",
}
CLEAN = "reason IS NULL"
# Bots are a property of the traffic, not a defect of the feed: their rows are
# quarantined with their own reason but do not count towards the malformed rate.
NOT_BOT = "reason IS NULL OR reason <> 'bot_user'"


def build_suite(params: SuiteParams) -> gx.ExpectationSuite:
    clean_only = {"row_condition": CLEAN, "condition_parser": "spark"}
    return gx.ExpectationSuite(name="events_clean", expectations=[
        *contract(COLUMNS, ["event_id", "user_id", "item_id", "category", "event_type", "event_ts", "event_date"], CLEAN),
        gxe.ExpectColumnValuesToBeInSet(column="event_type", value_set=EVENT_TYPES, severity=CRITICAL, **clean_only),
        gxe.ExpectColumnValuesToBeBetween(
            column="event_ts", min_value=params.window_start, max_value=params.window_end, strict_max=True,
            severity=CRITICAL, description="event times inside the batch's lateness and future window", **clean_only),
        gxe.ExpectColumnValuesToBeNull(
            column="reason", mostly=1 - params.max_quarantine_rate, severity=CRITICAL,
            row_condition=NOT_BOT, condition_parser="spark",
            description=f"at most {params.max_quarantine_rate:.1%} of the batch malformed (bots aside)"),
        *volume(params),
    ])
