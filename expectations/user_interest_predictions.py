"""``user_interest_predictions`` for one score date: what marketing and inventory read, gated before publishing.

Every check is critical: a partition that fails any of them is not published,
and the previous score dates stay as they were. Exactly one row per active
user (unique, and as many rows as users active in the window), every
probability a probability, and every top list sorted and of the expected
length.
"""
from __future__ import annotations

import great_expectations as gx
import great_expectations.expectations as gxe
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from expectations.common import CRITICAL, contract
from expectations.params import SuiteParams

COLUMNS = {
    "score_date": "DateType", "user_id": "StringType", "top_categories": "ArrayType",
    "current_top_category": "StringType", "migration_probability": "DoubleType", "explanation": "StringType",
    "model_version": "StringType",
    "scored_at": "TimestampType",
}
# Why a row's top list is wrong, null when it is right: a column of the batch (``prepare``), so that GX
# counts its non-null values in the same pass as the null checks. As an UnexpectedRowsExpectation these
# conditions were a query GX ran twice (its row count, then its rows), a third of the suite's time.
# Without lambda functions (exists, array_sort's default comparator), which Spark interprets row by row
# (sort_array puts a null first, array_max a NaN last).
TOP_LIST_PROBLEM = "top_list_problem"
_PROBLEM = """
CASE
  WHEN size(top_categories) <> {top_k} THEN concat(size(top_categories), ' categories, not {top_k}')
  WHEN sort_array(top_categories.category)[0] IS NULL THEN 'a null category'
  WHEN sort_array(top_categories.probability)[0] IS NULL THEN 'a null probability'
  WHEN isnan(array_max(top_categories.probability)) THEN 'a NaN probability'
  WHEN array_min(top_categories.probability) < 0 OR array_max(top_categories.probability) > 1
    THEN 'a probability outside [0, 1]'
  WHEN top_categories.probability <> sort_array(top_categories.probability, false)
    THEN 'probabilities not highest first'
END
"""


def prepare(frame: DataFrame, params: SuiteParams) -> DataFrame:
    """The batch the suite validates: the partition's rows and their TOP_LIST_PROBLEM."""
    return frame.withColumn(TOP_LIST_PROBLEM, F.expr(_PROBLEM.format(top_k=params.top_k)))


def build_suite(params: SuiteParams) -> gx.ExpectationSuite:
    expectations = [
        *contract(COLUMNS, ["score_date", "user_id", "top_categories", "migration_probability", "model_version"]),
        # Every user id distinct, as a proportion of distinct values (a count-distinct in the same pass as the
        # other aggregates) rather than ExpectColumnValuesToBeUnique, which GX runs as a window over every row
        # sorted by user, which sorts every row of the partition.
        gxe.ExpectColumnProportionOfUniqueValuesToBeBetween(column="user_id", min_value=1.0, max_value=1.0,
                                                            severity=CRITICAL, description="one row per user"),
        gxe.ExpectColumnValuesToBeBetween(column="migration_probability", min_value=0, max_value=1,
                                          severity=CRITICAL, description="a probability"),
        gxe.ExpectColumnValuesToBeNull(column=TOP_LIST_PROBLEM, severity=CRITICAL,
                                       description=f"{params.top_k} categories per user, probabilities in [0, 1], "
                                                   "highest first (the column says what is wrong)"),
    ]
    if params.expected_rows is not None:
        expectations.append(gxe.ExpectTableRowCountToEqual(
            value=params.expected_rows, severity=CRITICAL,
            description=f"one row per user active in the window ({params.expected_rows:,})"))
    return gx.ExpectationSuite(name="user_interest_predictions", expectations=expectations)
