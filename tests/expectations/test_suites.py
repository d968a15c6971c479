"""Each suite fails on tiny bad frames with the right expectation named, and passes on good ones.

The suites run through real Great Expectations validations on Spark
DataFrames (``run_suite``), with bounds given directly in ``SuiteParams``.
"""
from __future__ import annotations

import datetime as dt

import pytest

from expectations import PREPARE, SUITES, SuiteParams
from jobs.core.quality.gx_run import run_suite
from tests.conftest import ts

DAY = dt.date(2024, 11, 2)
PARAMS = SuiteParams(run_date=DAY, window_start=dt.datetime(2024, 11, 2), window_end=dt.datetime(2024, 11, 3))
EVENTS_SCHEMA = ("event_id string, user_id string, item_id string, category string, event_type string, "
                 "event_ts timestamp, event_date date, source string, ingest_date date, session_id string")
SESSIONS_SCHEMA = ("user_id string, session_id string, session_start timestamp, session_end timestamp, "
                   "n_events long, n_categories int, duration_seconds double, event_date date")
CLEAN_SCHEMA = EVENTS_SCHEMA.replace(", session_id string", ", reason string")


def _event(event_id, user="u1", event_type="view", when="2024-11-02 10:00:00", category="books.fiction", session="s1"):
    return (event_id, user, "i1", category, event_type, ts(when), DAY, "events-jsonl", DAY, session)


def _failed(report) -> set[tuple[str, str | None, str]]:
    return {(f.expectation, f.column, f.severity) for f in report.failures}


def _validate(spark, tmp_path, table, rows, schema, params=PARAMS):
    frame = spark.createDataFrame(rows, schema)
    if table in PREPARE:  # as jobs.core.quality.gate.check_partition does
        frame = PREPARE[table](frame, params)
    return run_suite(tmp_path / "gx", table, DAY, frame, SUITES[table](params))


def test_events_suite_passes_on_good_rows(spark, tmp_path):
    report = _validate(spark, tmp_path, "events", [_event("e1"), _event("e2", event_type="cart")], EVENTS_SCHEMA)
    assert report.failures == [] and report.evaluated > 10


def test_events_suite_names_each_bad_row(spark, tmp_path):
    rows = [
        _event("e1"), _event("e1"),                 # duplicate id
        _event("e2", user=None),                    # null user
        _event("e3", event_type="click"),           # unknown type
        _event("e4", when="2024-11-03 00:00:00"),   # the next day
    ]
    report = _validate(spark, tmp_path, "events", rows, EVENTS_SCHEMA)
    assert _failed(report) == {
        ("expect_compound_columns_to_be_unique", "event_id,event_date", "critical"),
        ("expect_column_values_to_not_be_null", "user_id", "critical"),
        ("expect_column_values_to_be_in_set", "event_type", "critical"),
        ("expect_column_values_to_be_between", "event_ts", "critical"),
    }
    # The first pass takes no samples; finding unexpected rows, the suite runs again and names them.
    observed = {f.column: f.observed for f in report.failures}
    assert observed["event_type"] == "1 unexpected rows (20%), e.g. click"
    assert "e1" in observed["event_id,event_date"] and observed["event_id,event_date"].startswith("2 unexpected rows")
    with pytest.raises(Exception, match="expect_compound_columns_to_be_unique on event_id,event_date"):
        report.raise_if_critical()


def test_events_suite_checks_the_contract_types(spark, tmp_path):
    schema = EVENTS_SCHEMA.replace("event_ts timestamp", "event_ts string")
    rows = [("e1", "u1", "i1", "books.fiction", "view", "2024-11-02 10:00:00", DAY, "s", DAY, "s1")]
    report = run_suite(tmp_path / "gx", "events", DAY, spark.createDataFrame(rows, schema), SUITES["events"](PARAMS))
    assert ("expect_column_values_to_be_of_type", "event_ts", "critical") in _failed(report)


def _volume_failures(spark, tmp_path, rows: int, trailing: tuple[int, ...], **params) -> set:
    events = [_event(f"e{i}") for i in range(rows)]
    report = _validate(spark, tmp_path, "events", events, EVENTS_SCHEMA,
                       SuiteParams(**{**PARAMS.__dict__, "trailing_rows": trailing, **params}))
    return {severity for name, _, severity in _failed(report) if name == "expect_table_row_count_to_be_between"}


STEADY_WEEK = (100, 90, 110, 95, 105, 100, 98)


def test_an_outage_against_a_steady_week_stops_the_run_unless_acknowledged(spark, tmp_path):
    assert _volume_failures(spark, tmp_path, 3, STEADY_WEEK) == {"warning", "critical"}
    assert _volume_failures(spark, tmp_path, 3, STEADY_WEEK, volume_acknowledged=True) == {"warning"}
    assert _volume_failures(spark, tmp_path, 0, STEADY_WEEK) == {"warning", "critical"}  # a day with no rows at all
    assert _volume_failures(spark, tmp_path, 20, STEADY_WEEK) == {"warning"}  # half: reported, not a stop


@pytest.mark.parametrize("rows, trailing", [
    (300, (30,)),                                   # the second day of a new source: ten times the first
    (128, (1, 2, 4, 8, 16, 32, 64)),                # a week of doubling, and it goes on
    (3, (40, 45, 38)),                              # a short history cannot tell an outage from a quiet day
    (0, (100, 0, 110, 0, 105, 0, 98)),              # a week holding three closed days
    (400, STEADY_WEEK),                             # a sale: four times the usual
])
def test_ramp_ups_bursts_and_closed_days_are_warnings_not_stops(spark, tmp_path, rows, trailing):
    assert _volume_failures(spark, tmp_path, rows, trailing) == {"warning"}


def test_an_outage_stops_every_day_of_it_and_quiet_weekends_keep_the_check(spark, tmp_path):
    assert _volume_failures(spark, tmp_path, 0, (0, 100, 90, 110, 95, 105, 100)) == {"warning", "critical"}
    assert _volume_failures(spark, tmp_path, 0, (0, 0, 100, 90, 110, 95, 105)) == {"warning", "critical"}
    weekdays_and_weekend = (100, 95, 105, 98, 102, 30, 35)
    assert _volume_failures(spark, tmp_path, 5, weekdays_and_weekend) == {"warning", "critical"}


def test_the_median_keeps_one_closed_day_from_moving_the_bar(spark, tmp_path):
    assert _volume_failures(spark, tmp_path, 100, (100, 100, 100, 0, 100, 100, 100)) == set()


def test_category_drift_is_a_warning_with_its_divergence(spark, tmp_path):
    params = SuiteParams(**{**PARAMS.__dict__, "reference_category_mix": {"books.fiction": 1.0, "pets.dog": 1.0}})
    rows = [_event(f"e{i}", category="pets.dog") for i in range(9)] + [_event("e9")]
    report = _validate(spark, tmp_path, "events", rows, EVENTS_SCHEMA, params)
    assert _failed(report) == {("expect_column_kl_divergence_to_be_less_than", "category", "warning")}
    # KL(p || q), p = (0.9, 0.1) observed, q = (0.5, 0.5) reference: 0.9 ln 1.8 + 0.1 ln 0.2
    assert report.category_divergence == pytest.approx(0.369, abs=0.01)


def test_sessions_suite_finds_overlap_and_negative_duration(spark, tmp_path):
    def session(user, sid, start, end, n=2):
        s, e = ts(start), ts(end)
        return (user, sid, s, e, n, 1, (e - s).total_seconds(), DAY)

    good = [session("u1", "a", "2024-11-02 10:00:00", "2024-11-02 10:20:00"),
            session("u1", "b", "2024-11-02 11:00:00", "2024-11-02 11:00:00", n=1)]
    assert _validate(spark, tmp_path, "sessions", good, SESSIONS_SCHEMA).failures == []
    bad = good + [session("u1", "c", "2024-11-02 10:10:00", "2024-11-02 10:40:00"),   # overlaps a
                  session("u2", "d", "2024-11-02 12:00:00", "2024-11-02 11:00:00")]   # ends before it starts
    assert _failed(_validate(spark, tmp_path, "sessions", bad, SESSIONS_SCHEMA)) == {
        ("unexpected_rows_expectation", None, "critical"),
        ("expect_column_pair_values_a_to_be_greater_than_b", "session_end>session_start", "critical"),
        ("expect_column_values_to_be_between", "duration_seconds", "critical"),
    }


def test_events_clean_suite_bounds_the_malformed_rate_but_not_bots(spark, tmp_path):
    clean = [(*_event("e1")[:-1], None), (*_event("e2")[:-1], None)]
    bots = [(None,) * 7 + ("events-jsonl", DAY, "bot_user")] * 3
    malformed = [(None,) * 7 + ("events-jsonl", DAY, "malformed_json")]
    params = SuiteParams(**{**PARAMS.__dict__, "max_quarantine_rate": 0.4})
    assert _validate(spark, tmp_path, "events_clean", clean + bots, CLEAN_SCHEMA, params).failures == []
    report = _validate(spark, tmp_path, "events_clean", clean + bots + malformed * 2, CLEAN_SCHEMA, params)
    assert _failed(report) == {("expect_column_values_to_be_null", "reason", "critical")}


PREDICTIONS_SCHEMA = ("score_date date, user_id string, top_categories array<struct<category: string, probability: "
                      "double>>, current_top_category string, migration_probability double, explanation string, "
                      "model_version string, scored_at timestamp")


def _prediction(user, *top):
    return (DAY, user, [{"category": c, "probability": p} for c, p in top], "a.x", 0.2,
            "habit 0.60, recent sequence 0.40", "v1", ts("2024-11-03 01:00:00"))


def test_predictions_suite_refuses_each_kind_of_bad_top_list(spark, tmp_path):
    bad = {
        "unsorted": (("a.x", 0.4), ("b.y", 0.5)),
        "null category": ((None, 0.5), ("b.y", 0.4)),
        "null probability": (("a.x", 0.5), ("b.y", None)),
        "nan": (("a.x", float("nan")), ("b.y", 0.4)),
        "above one": (("a.x", 1.5), ("b.y", 0.4)),
        "below zero": (("a.x", 0.5), ("b.y", -0.1)),
        "short": (("a.x", 0.5),),
    }
    rows = [_prediction("good", ("a.x", 0.5), ("b.y", 0.5)),  # ties count as sorted
            *[_prediction(user, *top) for user, top in bad.items()]]
    params = SuiteParams(run_date=DAY, window_start=None, window_end=None, expected_rows=len(rows), top_k=2)
    report = _validate(spark, tmp_path, "user_interest_predictions", rows, PREDICTIONS_SCHEMA, params)
    assert _failed(report) == {("expect_column_values_to_be_null", "top_list_problem", "critical")}
    assert report.failures[0].observed.startswith(str(len(bad)))  # every bad list, and not the good one
    reasons = {r["user_id"]: r["top_list_problem"] for r in PREPARE["user_interest_predictions"](
        spark.createDataFrame(rows, PREDICTIONS_SCHEMA), params).collect()}
    assert reasons == {"good": None, "unsorted": "probabilities not highest first", "null category": "a null category",
                       "null probability": "a null probability", "nan": "a NaN probability",
                       "above one": "a probability outside [0, 1]", "below zero": "a probability outside [0, 1]",
                       "short": "1 categories, not 2"}


def test_predictions_suite_passes_good_rows_and_counts_users(spark, tmp_path):
    params = SuiteParams(run_date=DAY, window_start=None, window_end=None, expected_rows=3, top_k=2)
    rows = [_prediction(u, ("a.x", 0.9), ("b.y", 0.1)) for u in ("u1", "u2", "u2")]
    report = _validate(spark, tmp_path, "user_interest_predictions", rows, PREDICTIONS_SCHEMA, params)
    assert _failed(report) == {("expect_column_proportion_of_unique_values_to_be_between", "user_id", "critical")}
    assert report.evaluated > 10
    unique = [_prediction(u, ("a.x", 0.9), ("b.y", 0.1)) for u in ("u1", "u2", "u3")]
    assert _validate(spark, tmp_path, "user_interest_predictions", unique, PREDICTIONS_SCHEMA, params).failures == []
