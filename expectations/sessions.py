"""``sessions`` for one event date: well-formed, bounded and non-overlapping per user."""
from __future__ import annotations

import great_expectations as gx
import great_expectations.expectations as gxe

from expectations.common import CRITICAL, WARNING, contract, volume
from expectations.params import SuiteParams

COLUMNS = {
    "user_id": "StringType", "session_id": "StringType", "session_start": "TimestampType",
    "session_end": "TimestampType", "n_events": "LongType", "n_categories": "IntegerType",
    "duration_seconds": "DoubleType", "event_date": "DateType",
}
# Two sessions of one user overlap when one starts before the previous one ended.
OVERLAPS = """
SELECT user_id, session_id, session_start, previous_end FROM (
  SELECT user_id, session_id, session_start,
         LAG(session_end) OVER (PARTITION BY user_id ORDER BY session_start, session_id) AS previous_end
  FROM {batch})
WHERE session_start <= previous_end
"""


def build_suite(params: SuiteParams) -> gx.ExpectationSuite:
    return gx.ExpectationSuite(name="sessions", expectations=[
        *contract(COLUMNS, ["user_id", "session_id", "session_start", "session_end", "n_events", "event_date"]),
        # Per date: a session over midnight has a row on each of its dates (checked together in a range run).
        gxe.ExpectCompoundColumnsToBeUnique(column_list=["user_id", "session_id", "event_date"], severity=CRITICAL),
        gxe.ExpectColumnPairValuesAToBeGreaterThanB(
            column_A="session_end", column_B="session_start", or_equal=True, severity=CRITICAL,
            description="a session ends at or after its start (one event: zero duration)"),
        gxe.ExpectColumnValuesToBeBetween(
            column="duration_seconds", min_value=0, max_value=params.max_session_hours * 3600, severity=CRITICAL,
            description=f"sessions last at most {params.max_session_hours:g} h within one date"),
        gxe.ExpectColumnValuesToBeBetween(
            column="n_events", min_value=1, max_value=params.max_session_events, severity=WARNING,
            description="sessions of human length (bots are quarantined at ingest)"),
        gxe.ExpectColumnValuesToBeBetween(
            column="session_start", min_value=params.window_start, max_value=params.window_end, strict_max=True,
            severity=CRITICAL, description="sessions start inside the partition's day (UTC)"),
        gxe.UnexpectedRowsExpectation(
            unexpected_rows_query=OVERLAPS, severity=CRITICAL,
            description="no two sessions of one user overlap"),
        *volume(params),
    ])
