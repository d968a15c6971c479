"""What a suite run costs as the lake's Great Expectations history grows: a year of nights is thousands of results.

    python bench/bench_data_docs.py [--results 0 1000 4000] [--repeats 3] [--no-index-limit]

Every validation rebuilds the Data Docs index (``UpdateDataDocsAction``), and GX's index builder reads every
validation result it lists. This bench validates a 1,000-row frame with a four-expectation suite in one
warm Spark session, after filling the context's results store with N copies of a real result (each under
its own run name, as N earlier nights' runs would be), and prints the wall time of ``run_suite`` for each N.
"""
from __future__ import annotations

import argparse
import datetime as dt
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from jobs.core.config import PipelineConfig  # noqa: E402


def fill(root: Path, copies: int) -> None:
    """``copies`` more results beside the first one, each as another night's run of the same suite, with the page
    its validation would have built (the index links the pages that exist, reading each one's result)."""
    results = root / "gx" / "uncommitted" / "validations"
    pages = root / "gx" / "uncommitted" / "data_docs" / "local_site" / "validations"
    original = next(results.rglob("*.json"))
    page = next(pages.rglob("*.html"))
    relative = original.relative_to(results).parts  # suite, run name, run time, batch id
    existing = sum(1 for _ in results.rglob("*.json"))
    for i in range(existing, existing + copies):
        day = dt.date(2020, 1, 1) + dt.timedelta(days=i // 10)
        folder = Path(relative[0]) / f"t_{day}_{i}" / f"{day.strftime('%Y%m%d')}T020000.000000Z"
        (results / folder).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(original, results / folder / relative[3])
        (pages / folder).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(page, pages / folder / page.name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=int, nargs="+", default=[0, 1000, 4000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-index-limit", action="store_true",
                        help="let the index link every result, as GX does by default (the behaviour before the limit)")
    args = parser.parse_args()

    import great_expectations as gx
    from pyspark.sql import functions as F

    from jobs.core.quality import gx_run
    from jobs.core.quality.gx_run import run_suite

    if args.no_index_limit:
        gx_run.INDEX_RESULTS_LIMIT = 0  # GX reads 0 as "no limit"
    from jobs.core.spark import build_spark

    spark = build_spark(PipelineConfig(shuffle_partitions=2), "bench-data-docs", remote=False)
    frame = spark.range(1000).select(F.col("id").alias("user_id"), (F.col("id") % 5).cast("string").alias("category"),
                                     F.lit("view").alias("event_type"))
    suite = gx.ExpectationSuite(name="bench", expectations=[
        gx.expectations.ExpectColumnValuesToNotBeNull(column="user_id"),
        gx.expectations.ExpectColumnValuesToBeInSet(column="event_type", value_set=["view", "cart"]),
        gx.expectations.ExpectTableRowCountToBeBetween(min_value=1, max_value=10 ** 6),
        gx.expectations.ExpectColumnValuesToNotBeNull(column="category")])
    root = Path(tempfile.mkdtemp(prefix="im-bench-docs-")) / "_gx"
    try:
        for _ in range(2):  # the context, the first result, and a warm JIT
            run_suite(root, "bench", dt.date(2024, 1, 1), frame, suite)
        for count in args.results:
            stored = sum(1 for _ in (root / "gx" / "uncommitted" / "validations").rglob("*.json"))
            fill(root, max(count - stored, 0))
            times = []
            for _ in range(args.repeats):
                started = time.perf_counter()
                report = run_suite(root, "bench", dt.date(2024, 1, 1), frame, suite)
                times.append(time.perf_counter() - started)
            assert not report.failures
            print(f"{max(count, stored):>6} stored results: run_suite " + ", ".join(f"{t:.2f}" for t in times)
                  + f" s (median {statistics.median(times):.2f} s)", flush=True)
    finally:
        shutil.rmtree(root.parent, ignore_errors=True)
        spark.stop()


if __name__ == "__main__":
    main()
