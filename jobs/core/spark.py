"""The one place a SparkSession is built, so every job runs with the same settings.

Local mode by default; `spark-submit --master ...` (or ``IM_SPARK_MASTER``)
points the same code at a cluster. Time zone is UTC so that `event_date` is
the UTC date everywhere, and Parquet timestamps are written as INT64
microseconds, which is what the Delta protocol expects.

Delta tables are read and written through the Delta Spark connector, whose
jars ``make install`` resolved into ``jars/`` (``jobs/core/classpath.py``). A
session started from Python puts them on its own classpath; a job started by
spark-submit gets them from ``jobs.core.classpath.spark_submit_arguments()`` (the
DAG passes the same), because the driver's classpath is fixed before Python
starts.
"""
from __future__ import annotations

import os
import sys

from pathlib import Path

from pyspark.sql import SparkSession

from jobs.core.classpath import DELTA_CONF, delta_jars, driver_java_options
from jobs.core.config import PipelineConfig

LOG4J_CONFIG = Path(__file__).resolve().parents[2] / "conf" / "log4j2.properties"


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
        .config("spark.ui.enabled", str(config.spark_ui).lower())
        # Ingest holds one day's classified rows in memory for its two outputs;
        # compressing that cache cost more time than it saved memory (bench/).
        .config("spark.sql.inMemoryColumnarStorage.compressed", "false")
    )
    for key, value in DELTA_CONF.items():
        builder = builder.config(key, value)
    # Delta rebuilds a table's state from its log with a shuffle into this many partitions (default 50, sized
    # for huge logs): on this lake's small logs those tasks were most of the cost of every small read.
    builder = builder.config("spark.databricks.delta.snapshotPartitions", str(config.shuffle_partitions))
    # VACUUM lists a table's folders in this many tasks (Spark's default: 10,000, one per folder at most for
    # huge tables); on this lake's tables that was a VACUUM of a few files spread over thousands of empty tasks.
    builder = builder.config("spark.sql.sources.parallelPartitionDiscovery.parallelism",
                             str(config.shuffle_partitions))
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
            .config("spark.jars", ",".join(delta_jars()))
            .config("spark.driver.memory", config.spark_driver_memory)
            .config("spark.driver.extraJavaOptions",
                    driver_java_options(f"-Dlog4j2.configurationFile={LOG4J_CONFIG.as_uri()} "
                                        f"{config.spark_driver_java_options}"))
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
