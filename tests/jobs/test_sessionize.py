"""sessionize on tiny frames: the 30-minute gap, midnight, deterministic ids."""
from __future__ import annotations

import datetime as dt

from jobs.sessionize import previous_day_tail, sessionize, summarize_sessions
from tests.conftest import ts

SCHEMA = "event_id string, user_id string, category string, event_ts timestamp, event_date date, session_id string"
GAP = dt.timedelta(minutes=30)
D2 = dt.date(2024, 11, 2)


def _events(spark, rows, day=D2):
    return spark.createDataFrame([(e, u, c, ts(at), day, sid) for e, u, c, at, sid in rows], SCHEMA)


def _no_tail(spark):
    return spark.createDataFrame([], "user_id string, tail_ts timestamp, tail_session_id string")


def test_29_minutes_apart_is_one_session_31_is_two(spark):
    events = _events(spark, [
        ("a1", "u1", "x.a", "2024-11-02 10:00:00", None),
        ("a2", "u1", "x.b", "2024-11-02 10:29:00", None),
        ("a3", "u1", "x.b", "2024-11-02 11:00:00", None),
        ("b1", "u2", "x.a", "2024-11-02 10:00:00", None),
    ])
    result = {r.event_id: r.session_id for r in sessionize(events, _no_tail(spark), GAP).collect()}
    assert result["a1"] == result["a2"] != result["a3"]
    assert len({result["a1"], result["a3"], result["b1"]}) == 3
    sessions = sorted((r.user_id, r.n_events, r.n_categories, r.session_start, r.session_end)
                      for r in summarize_sessions(sessionize(events, _no_tail(spark), GAP), _no_tail(spark)).collect())
    assert sessions == [
        ("u1", 1, 1, ts("2024-11-02 11:00:00"), ts("2024-11-02 11:00:00")),
        ("u1", 2, 2, ts("2024-11-02 10:00:00"), ts("2024-11-02 10:29:00")),
        ("u2", 1, 1, ts("2024-11-02 10:00:00"), ts("2024-11-02 10:00:00")),
    ]


def test_session_ids_are_deterministic(spark):
    events = _events(spark, [("a1", "u1", "x.a", "2024-11-02 10:00:00", None)])
    first = sessionize(events, _no_tail(spark), GAP).collect()[0].session_id
    again = sessionize(events, _no_tail(spark), GAP).collect()[0].session_id
    assert first == again and len(first) == 16


def test_session_crossing_midnight_keeps_the_previous_days_id(spark):
    yesterday = _events(spark, [
        ("y1", "u1", "x.a", "2024-11-01 23:50:00", "s-yesterday"),
        ("y2", "u2", "x.a", "2024-11-01 23:00:00", "s-old"),
    ], day=dt.date(2024, 11, 1))
    today = _events(spark, [
        ("t1", "u1", "x.a", "2024-11-02 00:10:00", None),
        ("t2", "u1", "x.a", "2024-11-02 02:00:00", None),
        ("t3", "u2", "x.a", "2024-11-02 00:05:00", None),
    ])
    tail = previous_day_tail(yesterday)
    result = {r.event_id: (r.session_id, r.is_continuation) for r in sessionize(today, tail, GAP).collect()}
    assert result["t1"] == ("s-yesterday", True)
    assert result["t2"][0] != "s-yesterday" and not result["t2"][1]
    assert result["t3"][0] != "s-old"  # 65 minutes after u2's last event: a new session
    sessions = {r.session_id: r.is_continuation for r in summarize_sessions(sessionize(today, tail, GAP), tail).collect()}
    assert sessions["s-yesterday"] is True and sessions[result["t2"][0]] is False
