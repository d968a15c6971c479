"""The shapes of what scoring writes: the predictions table, and the files its Python workers write.

Spark's types, from which the workers take the Arrow schemas they write with: one definition for both
sides. Importing this module starts nothing (no Spark session, no JVM).
"""
from __future__ import annotations

from pyspark.sql.pandas.types import to_arrow_schema
from pyspark.sql.types import (ArrayType, DateType, DoubleType, IntegerType, LongType, StringType, StructField,
                               StructType, TimestampType)

PREDICTIONS_SCHEMA = StructType([
    StructField("score_date", DateType(), False),
    StructField("user_id", StringType()),
    StructField("top_categories", ArrayType(StructType([StructField("category", StringType()),
                                                         StructField("probability", DoubleType())]))),
    StructField("current_top_category", StringType()),
    StructField("migration_probability", DoubleType()),
    # Why, in a line a marketer reads: each top category's share from the user's own habits against the
    # sequence model, and the recent categories that drove it (models/explain.py).
    StructField("explanation", StringType()),
    StructField("model_version", StringType(), False),
    StructField("scored_at", TimestampType(), False),
])
# A prediction file's columns: the partition column is in the Delta log, not in the files.
PREDICTION_FILE_ARROW = to_arrow_schema(StructType(PREDICTIONS_SCHEMA.fields[1:]))
# Each user's segment prospects, flat: the categories new to them at or above the propensity threshold,
# as positions among the ranked categories.
PROSPECTS_SCHEMA = StructType([StructField("user_id", StringType()), StructField("pos", IntegerType()),
                               StructField("probability", DoubleType())])
# Per task and category: expected users, expected new users and users new to the category.
DEMAND_SCHEMA = StructType([StructField("pos", IntegerType()), StructField("expected_users", DoubleType()),
                            StructField("expected_new_users", DoubleType()), StructField("users_new", LongType())])
TASK_SCHEMA = StructType([StructField("partition", IntegerType()), StructField("users", LongType())])
