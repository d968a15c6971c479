"""The demand forecast and marketing segments as DataFrame transforms, on frames written inline."""
from __future__ import annotations

import datetime as dt

import pytest

from jobs.score.aggregates import demand_forecast, marketing_segments
from jobs.score.schemas import DEMAND_SCHEMA, PROSPECTS_SCHEMA

DAY = dt.date(2024, 11, 28)


@pytest.fixture
def categories(spark):
    return spark.createDataFrame([(0, "books"), (1, "garden"), (2, "toys")], "position int, category string")


def test_demand_sums_the_tasks_partials_and_compares_with_the_previous_forecast(spark, categories):
    partials = spark.createDataFrame([(0, 1.5, 0.5, 3), (1, 0.25, 0.25, 1), (0, 2.0, 1.0, 2)], DEMAND_SCHEMA)
    previous = spark.createDataFrame([("books", DAY - dt.timedelta(days=1), 4.0, 1.0)],
                                     "category string, previous_score_date date, previous_expected_users double, "
                                     "previous_expected_new_users double")
    rows = {r["category"]: r.asDict() for r in
            demand_forecast(partials, categories, previous, DAY, "v1", active_users=9).collect()}
    assert set(rows) == {"books", "garden"}  # toys: no task had it (no users scored)
    books, garden = rows["books"], rows["garden"]
    assert (books["expected_users"], books["expected_new_users"], books["users_new_to_category"]) == (3.5, 1.5, 5)
    assert (books["expected_users_change"], books["expected_new_users_change"]) == (-0.5, 0.5)
    assert books["previous_score_date"] == DAY - dt.timedelta(days=1) and books["active_users"] == 9
    assert garden["previous_expected_users"] is None and garden["expected_users_change"] is None
    assert {r["score_date"] for r in rows.values()} == {DAY} and {r["model_version"] for r in rows.values()} == {"v1"}


def test_the_first_forecast_has_no_previous_and_keeps_the_published_columns(spark, categories):
    partials = spark.createDataFrame([(2, 0.5, 0.5, 1)], DEMAND_SCHEMA)
    first = demand_forecast(partials, categories, None, DAY, "v1", active_users=1)
    with_previous = demand_forecast(partials, categories, spark.createDataFrame(
        [], "category string, previous_score_date date, previous_expected_users double, "
            "previous_expected_new_users double"), DAY, "v1", active_users=1)
    assert first.schema == with_previous.schema
    (row,) = first.collect()
    assert row["category"] == "toys" and row["expected_users_change"] is None


def test_segments_rank_by_propensity_then_user_and_stop_at_the_size(spark, categories):
    prospects = spark.createDataFrame([("u3", 0, 0.9), ("u1", 0, 0.5), ("u2", 0, 0.5), ("u4", 0, 0.2),
                                       ("u5", 1, 0.3)], PROSPECTS_SCHEMA)
    rows = [(r["category"], r["rank"], r["user_id"], r["propensity"])
            for r in marketing_segments(prospects, categories, 3, DAY, "v1").orderBy("category", "rank").collect()]
    assert rows == [("books", 1, "u3", 0.9), ("books", 2, "u1", 0.5), ("books", 3, "u2", 0.5),
                    ("garden", 1, "u5", 0.3)]
