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
    """Row count against the trailing mean: warning outside ±50 %, critical outside ±90 % (defaults)."""
    mean = params.trailing_mean
    if mean is None:
        return []
    bounds = []
    for fraction, severity in ((params.volume_warning_fraction, WARNING), (params.volume_critical_fraction, CRITICAL)):
        bounds.append(gxe.ExpectTableRowCountToBeBetween(
            min_value=int(mean * (1 - fraction)), max_value=int(mean * (1 + fraction)) + 1, severity=severity,
            description=f"row count within ±{fraction:.0%} of the trailing {len(params.trailing_rows)}-partition mean "
                        f"({mean:,.0f})",
        ))
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
