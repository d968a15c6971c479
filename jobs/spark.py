"""The one place a SparkSession is built, so every job runs with the same settings.

Local mode by default; `spark-submit --master ...` (or ``IM_SPARK_MASTER``)
points the same code at a cluster. Time zone is UTC so that `event_date` is
the UTC date everywhere, and Parquet timestamps are written as INT64
microseconds, which is what the Delta protocol expects.
"""
from __future__ import annotations

import os
import sys

from pathlib import Path

from pyspark.sql import SparkSession

from jobs.config import PipelineConfig

LOG4J_CONFIG = Path(__file__).resolve().parent.parent / "conf" / "log4j2.properties"


def build_spark(config: PipelineConfig, app_name: str) -> SparkSession:
    """Get or create the session for one job run."""
    builder = (
        SparkSession.builder.appName(f"interest-migration-{app_name}")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", str(config.shuffle_partitions))
        .config("spark.sql.adaptive.enabled", "true")
        .config("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
        .config("spark.sql.sources.partitionOverwriteMode", "dynamic")
        .config("spark.ui.showConsoleProgress", "false")
        # Ingest holds one day's classified rows in memory for its two outputs;
        # compressing that cache cost more time than it saved memory (bench/).
        .config("spark.sql.inMemoryColumnarStorage.compressed", "false")
    )
    # Under spark-submit the JVM already runs with the command line's master and
    # memory; only a Python-launched session takes ours.
    if not _launched_by_spark_submit():
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        os.environ.setdefault("PYARROW_IGNORE_TIMEZONE", "1")  # pandas-on-Spark asks for it
        # Python workers use this interpreter (and so this environment's packages,
        # TensorFlow for barrier-mode training), not whatever `python3` is on PATH.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        builder = (
            builder.master(config.spark_master)
            .config("spark.driver.memory", config.spark_driver_memory)
            .config("spark.driver.extraJavaOptions",
                    f"-Dlog4j2.configurationFile={LOG4J_CONFIG.as_uri()} {config.spark_driver_java_options}")
            .config("spark.log.structuredLogging.enabled", "false")
        )
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    # A limit query first scans one partition, then four times as many, and so on: for the GX sample
    # queries, which usually match nothing and so scan everything, that left all but one core idle.
    # Starting with every core's worth halved the predictions suite's sample query (bench/bench_score.py).
    spark.conf.set("spark.sql.limit.initialNumPartitions", str(spark.sparkContext.defaultParallelism))
    return spark


def _launched_by_spark_submit() -> bool:
    """spark-submit starts Python from the JVM and hands it the gateway's port."""
    return "PYSPARK_GATEWAY_PORT" in os.environ
