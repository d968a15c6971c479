"""Run one suite on one Spark DataFrame through a file-backed GX context, and read the result.

The context lives in ``<lake>/_gx`` so suites, validation results and Data
Docs persist across runs and sit beside the tables they describe. Everything
is computed by GX's Spark execution engine on the cluster; only metrics and a
few sample values come back to the driver.
"""
from __future__ import annotations

import datetime as dt
import math
import os
from pathlib import Path
from urllib.parse import unquote, urlparse

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")  # no phoning home from a batch job

import great_expectations as gx  # noqa: E402
from great_expectations.checkpoint import UpdateDataDocsAction  # noqa: E402
from great_expectations.core.run_identifier import RunIdentifier  # noqa: E402
from great_expectations.data_context.types.base import ProgressBarsConfig  # noqa: E402
from pyspark.sql import DataFrame  # noqa: E402

from jobs.core.quality.report import Failure, ValidationReport  # noqa: E402

DATA_SOURCE = "lake"
BATCH = "partition"
UNSAMPLED = {"result_format": "BASIC", "partial_unexpected_count": 0}
SAMPLED = {"result_format": "BASIC"}
# The Data Docs index links the newest results only. GX's index builder reads every result it links, and each
# validation rebuilds the index: with a year of nights (thousands of results) every validation would grow
# slower (bench/bench_data_docs.py). Older pages stay on disk until maintain's retention removes them.
DATA_DOCS_SITE = "local_site"
INDEX_RESULTS_LIMIT = 500
_VIEWS = "jobs.core.quality.docs_views"
# How the lake's Data Docs site builds its pages: GX's defaults, but the index links the newest results only, the
# pages' templates are compiled once (docs_views), and no profiling section (this project profiles nothing; the
# section would list every stored result once more per build).
DATA_DOCS_BUILDERS = {
    "site_index_builder": {"class_name": "DefaultSiteIndexBuilder", "validation_results_limit": INDEX_RESULTS_LIMIT,
                           "view": {"module_name": _VIEWS, "class_name": "CachedJinjaIndexPageView"}},
    "site_section_builders": {
        "expectations": {"view": {"module_name": _VIEWS, "class_name": "CachedJinjaPageView"}},
        "validations": {"view": {"module_name": _VIEWS, "class_name": "CachedJinjaPageView"}},
        "profiling": "None",
    },
}
_HIDDEN_KWARGS = {"batch_id", "column", "row_condition", "condition_parser", "partition_object", "column_list",
                  "column_A", "column_B", "unexpected_rows_query", "result_format"}


def open_context(root: Path):
    root.mkdir(parents=True, exist_ok=True)
    context = gx.get_context(mode="file", project_root_dir=str(root))
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    site = dict(context.list_data_docs_sites().get(DATA_DOCS_SITE) or {})
    if site and {k: site.get(k) for k in DATA_DOCS_BUILDERS} != DATA_DOCS_BUILDERS:  # once per lake: it saves the file
        context.update_data_docs_site(DATA_DOCS_SITE, {**site, **DATA_DOCS_BUILDERS})
    _drop_comments(root / "gx" / "uncommitted" / "config_variables.yml")
    return context


def _drop_comments(variables: Path) -> None:
    """Keep only the settings of GX's config variables file (its scaffold is a page of comments around one id).

    GX parses that file again at every read of a context variable, about eighty times a suite run, with
    ruamel's pure-Python parser, which scans every comment character: half a second of each run (cProfile).
    Replaced atomically, once per lake: another stage may be reading it."""
    import os

    try:
        text = variables.read_text(encoding="utf-8")
    except OSError:
        return
    kept = "".join(line for line in text.splitlines(keepends=True) if line.strip() and not line.lstrip().startswith("#"))
    if kept != text:
        partial = variables.with_name(f".{variables.name}.{os.getpid()}")
        partial.write_text(kept, encoding="utf-8")
        os.replace(partial, variables)


def run_suite(root: Path, table: str, run_date: dt.date, frame: DataFrame, suite: gx.ExpectationSuite,
              cache: bool = True) -> ValidationReport:
    """Validate ``frame`` with ``suite``; results and Data Docs go to the context under ``root``.

    The first pass takes no samples of unexpected values: each sample is one more query over the batch,
    which scans all of it when nothing is unexpected, the usual case. Only when an expectation finds
    unexpected rows is the suite run again with samples (GX's BASIC result format), so that the report
    and Data Docs show them.

    ``cache``: GX persists the batch (every column) before its first metric, and never unpersists it;
    worth it when many expectations read the same columns, not when each reads one of a wide frame.
    """
    context = open_context(root)
    source = context.data_sources.add_or_update_spark(name=DATA_SOURCE, persist=cache)
    asset = next((a for a in source.assets if a.name == table), None) or source.add_dataframe_asset(name=table)
    batch = next((b for b in asset.batch_definitions if b.name == BATCH), None) \
        or asset.add_batch_definition_whole_dataframe(BATCH)
    suite = context.suites.add_or_update(suite)
    definition = context.validation_definitions.add_or_update(gx.ValidationDefinition(name=table, data=batch, suite=suite))
    try:
        result = _run(context, table, definition, frame, run_date, UNSAMPLED)
        if any(not outcome.success and (outcome.result or {}).get("unexpected_count")
               for validation in result.run_results.values() for outcome in validation.results):
            result = _run(context, table, definition, frame, run_date, SAMPLED)
    finally:
        if cache:  # GX's persist outlives the stage on a shared driver (a Spark Connect server)
            frame.unpersist()
    report = ValidationReport(table=table, run_date=run_date, docs_path=_docs_path(context))
    for validation in result.run_results.values():
        for outcome in validation.results:
            report.evaluated += 1
            config = outcome.expectation_config
            if config.type == "expect_column_kl_divergence_to_be_less_than":
                report.category_divergence = _divergence(outcome.result.get("observed_value"))
            if not outcome.success:
                report.failures.append(_failure(outcome))
    return report


def _run(context, table: str, definition, frame: DataFrame, run_date: dt.date, result_format: dict):
    checkpoint = context.checkpoints.add_or_update(gx.Checkpoint(
        name=table, validation_definitions=[definition], actions=[UpdateDataDocsAction(name="update_data_docs")],
        result_format=result_format,
    ))
    return checkpoint.run(
        batch_parameters={"dataframe": frame},
        run_id=RunIdentifier(run_name=f"{table}_{run_date.isoformat()}", run_time=dt.datetime.now(dt.timezone.utc)),
    )


def _failure(outcome) -> Failure:
    config = outcome.expectation_config
    kwargs = config.kwargs
    column = kwargs.get("column") or ",".join(kwargs.get("column_list") or []) or (
        f"{kwargs['column_A']}>{kwargs['column_B']}" if "column_A" in kwargs else None)
    severity = getattr(getattr(config, "severity", None), "value", None) or str(getattr(config, "severity", "critical"))
    return Failure(expectation=config.type, column=column, severity=severity,
                   observed=_observed(outcome), expected=_expected(config))


def _observed(outcome) -> str:
    if outcome.exception_info and outcome.exception_info.get("raised_exception"):
        return f"error {outcome.exception_info.get('exception_message')}"
    result = outcome.result or {}
    if result.get("unexpected_count") is not None:
        sample = ", ".join(str(v) for v in (result.get("partial_unexpected_list") or [])[:3])
        percent = result.get("unexpected_percent") or 0.0
        return f"{result['unexpected_count']:,} unexpected rows ({percent:.3g}%)" + (f", e.g. {sample}" if sample else "")
    observed = result.get("observed_value")
    if observed is None and "details" in result:
        return "infinite divergence (a value absent from the reference)"
    return str(observed)


def _expected(config) -> str:
    kwargs = config.kwargs
    shown = {k: v for k, v in kwargs.items() if k not in _HIDDEN_KWARGS and v is not None}
    if config.type == "unexpected_rows_expectation":
        return config.description or "no rows from the query"
    text = ", ".join(f"{k}={v}" for k, v in shown.items()) or "none"
    return f"{text} ({config.description})" if config.description else text


def _divergence(value) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _docs_path(context) -> str | None:
    for site in context.get_docs_sites_urls():
        url = site.get("site_url")
        if url:
            return unquote(urlparse(url).path)
    return None
