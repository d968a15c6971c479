"""Data-quality gates: run a table's expectation suite on a partition with Great Expectations.

``check_partition`` computes the suite's date-dependent bounds from the lake
(``params``), validates a Spark DataFrame through a file-backed GX context
kept in the lake (``gx_run``), rebuilds Data Docs, and returns a
``ValidationReport`` (``report``) whose ``raise_if_critical`` stops the run.
"""
from jobs.core.quality.gate import check_partition
from jobs.core.quality.report import DataQualityError, ValidationReport

__all__ = ["check_partition", "DataQualityError", "ValidationReport"]
