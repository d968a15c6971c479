"""Expectations shared by several suites: the table contract, volume and category drift."""
from __future__ import annotations

import great_expectations.expectations as gxe

from expectations.params import SuiteParams
from jobs.core import tables

CRITICAL, WARNING = "critical", "warning"
EVENT_TYPES = list(tables.EVENT_TYPES)


def contract(columns: dict[str, str], not_null: list[str], row_condition: str | None = None) -> list:
    """The contract's columns with their Spark types, and non-null keys (all critical).

    Extra columns are allowed (the contract says: add columns freely).
    ``row_condition`` (Spark SQL) limits the null checks to some rows.
    """
    condition = {"row_condition": row_condition, "condition_parser": "spark"} if row_condition else {}
    return [
        gxe.ExpectTableColumnsToMatchSet(column_set=list(columns), exact_match=False, severity=CRITICAL),
        *[gxe.ExpectColumnValuesToBeOfType(column=name, type_=type_, severity=CRITICAL) for name, type_ in columns.items()],
        *[gxe.ExpectColumnValuesToNotBeNull(column=name, severity=CRITICAL, **condition) for name in not_null],
    ]


def volume(params: SuiteParams) -> list:
    """Row count against the trailing partitions' median.

    Outside ±50 % of it (default) is a warning: real histories have ramp-ups,
    sales and closed days, which are reported, with the date, and do not stop.
    Only an outage stops a run: fewer rows than 10 % of the steady partitions'
    median (default) against a steady baseline (``SuiteParams.steady_baseline``:
    a full trailing week, at most two of its partitions far below the rest, so
    a multi-day outage stops every day of it and a store whose weekends are
    quiet is still checked). The operator's
    acknowledgement of the date (``volume_acknowledged``) makes that a warning
    too. The median, not the mean: one closed day in the window does not move
    the bar for the others.
    """
    return [gxe.ExpectTableRowCountToBeBetween(min_value=low, max_value=high, severity=severity,
                                               description=description)
            for low, high, severity, description in volume_bounds(params)]


def volume_bounds(params: SuiteParams) -> list[tuple[int, int | None, str, str]]:
    """(least rows, most rows or None, severity, description) of ``volume``'s checks: also what a multi-date
    run applies to each of its dates (jobs/core/quality/gate.py)."""
    median = params.trailing_median
    if median is None:
        return []
    n = len(params.trailing_rows)
    bounds = [(int(median * (1 - params.volume_warning_fraction)),
               int(median * (1 + params.volume_warning_fraction)) + 1, WARNING,
               f"row count within ±{params.volume_warning_fraction:.0%} of the trailing {n}-partition median "
               f"({median:,.0f})")]
    if params.steady_baseline:
        acknowledged, steady = params.volume_acknowledged, params.steady_median
        bounds.append((int(steady * (1 - params.volume_critical_fraction)), None,
                       WARNING if acknowledged else CRITICAL,
                       f"row count above {1 - params.volume_critical_fraction:.0%} of the median of the "
                       f"{len(params.steady_rows)} steady trailing partitions ({steady:,.0f}): below is an outage"
                       + (" (acknowledged by the operator for this date)" if acknowledged else "")))
    return bounds


def category_drift(params: SuiteParams) -> list:
    """KL divergence of the category mix from the trailing window's (warning).

    A category absent from the reference gets a small held-out weight rather
    than an infinite divergence, so a new category shows up as drift with a
    number that can be recorded and compared.
    """
    if not params.reference_category_mix:
        return []
    values = sorted(params.reference_category_mix)
    total = sum(params.reference_category_mix.values())
    return [gxe.ExpectColumnKLDivergenceToBeLessThan(
        column="category",
        partition_object={"values": values, "weights": [params.reference_category_mix[v] / total for v in values]},
        threshold=params.max_category_divergence,
        tail_weight_holdout=0.001,
        severity=WARNING,
        description="category mix close to the trailing window's (KL divergence)",
    )]
