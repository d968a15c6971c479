"""The two aggregates score publishes beside the predictions, as pure DataFrame transforms.

``demand_forecast`` (inventory) and ``marketing_segments`` (marketing) take
what the workers wrote (per-task sums, segment prospects) and the model's
categories, and read nothing themselves: tests build their inputs inline.
"""
from __future__ import annotations

import datetime as dt

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F


def _stamp(score_date: dt.date, model_version: str) -> tuple[Column, Column]:
    return F.lit(score_date).alias("score_date"), F.lit(model_version).alias("model_version")


def demand_forecast(partials: DataFrame, categories: DataFrame, previous: DataFrame | None, score_date: dt.date,
                    model_version: str, active_users: int) -> DataFrame:
    """Per category: expected engaged and new users, and the change against the previous score date.

    ``partials``: the tasks' per-category sums (DEMAND_SCHEMA rows, by position ``pos``); ``categories``:
    (position, category); ``previous``: the previous score date's forecast as (category,
    previous_score_date, previous_expected_users, previous_expected_new_users), or None for the first.
    """
    date, version = _stamp(score_date, model_version)
    totals = partials.groupBy("pos").agg(
        F.sum("expected_users").alias("expected_users"),
        F.sum("expected_new_users").alias("expected_new_users"),
        F.sum("users_new").alias("users_new_to_category"))
    demand = totals.join(F.broadcast(categories), totals.pos == categories.position).select(
        date, "category", "expected_users", "expected_new_users", "users_new_to_category",
        F.lit(active_users).cast("long").alias("active_users"), version)
    if previous is None:
        return demand.select("*", F.lit(None).cast("date").alias("previous_score_date"),
                             F.lit(None).cast("double").alias("previous_expected_users"),
                             F.lit(None).cast("double").alias("expected_users_change"),
                             F.lit(None).cast("double").alias("expected_new_users_change"))
    return demand.join(previous, "category", "left").select(
        *[demand[c] for c in demand.columns], F.col("previous_score_date"), F.col("previous_expected_users"),
        (demand.expected_users - F.col("previous_expected_users")).alias("expected_users_change"),
        (demand.expected_new_users - F.col("previous_expected_new_users")).alias("expected_new_users_change"))


def marketing_segments(prospects: DataFrame, categories: DataFrame, size: int, score_date: dt.date,
                       model_version: str) -> DataFrame:
    """Per category, at most ``size`` users new to it ranked by their probability of engaging with it; ties by
    user id.

    ``prospects``: (user_id, pos, probability) of the users new to the category at or above the propensity
    threshold (the workers pick them)."""
    date, version = _stamp(score_date, model_version)
    ranked = prospects.withColumn("rank", F.row_number().over(
        Window.partitionBy("pos").orderBy(F.desc("probability"), "user_id"))).where(F.col("rank") <= size)
    return ranked.join(F.broadcast(categories), ranked.pos == categories.position).select(
        date, "category", "user_id", F.col("probability").alias("propensity"), F.col("rank").cast("int"), version)
