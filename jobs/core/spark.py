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
import re
import sys

from pathlib import Path
from typing import Callable

from pyspark.sql import SparkSession

from jobs.core.classpath import DELTA_CONF, delta_jars, driver_java_options
from jobs.core.config import PipelineConfig

LOG4J_CONFIG = Path(__file__).resolve().parents[2] / "conf" / "log4j2.properties"


# The session's own settings: what a Spark Connect client may set on its server-side session too.
def session_conf(config: PipelineConfig) -> dict[str, str]:
    return {
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.shuffle.partitions": str(config.shuffle_partitions),
        "spark.sql.adaptive.enabled": "true",
        "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
        "spark.sql.sources.partitionOverwriteMode": "dynamic",
        # Ingest holds one day's classified rows in memory for its two outputs;
        # compressing that cache cost more time than it saved memory (bench/).
        "spark.sql.inMemoryColumnarStorage.compressed": "false",
        # Delta rebuilds a table's state from its log with a shuffle into this many partitions (default 50, sized
        # for huge logs): on this lake's small logs those tasks were most of the cost of every small read.
        "spark.databricks.delta.snapshotPartitions": str(config.shuffle_partitions),
        # VACUUM lists a table's folders in this many tasks (Spark's default: 10,000, one per folder at most for
        # huge tables); on this lake's tables that was a VACUUM of a few files spread over thousands of empty
        # tasks.
        "spark.sql.sources.parallelPartitionDiscovery.parallelism": str(config.shuffle_partitions),
    }


# The JIT of a driver whose input is small (``driver_jit_options``), and the options that choose one themselves.
QUICK_START_JIT = "-XX:TieredStopAtLevel=1"
_CHOOSES_A_JIT = re.compile(r"Tiered|CompilationMode|JVMCI|-Xint\b|-Xcomp\b")


def build_spark(config: PipelineConfig, app_name: str, remote: bool = True,
                input_bytes: Callable[[], int | None] | None = None) -> SparkSession:
    """Get or create the session for one job run: a client of ``config.spark_remote`` when it is set (and
    ``remote``), else a driver of its own, whose JIT ``input_bytes`` (what the stage will read) chooses."""
    if remote and connects(config):
        return _connect(config, app_name)
    builder = (
        SparkSession.builder.appName(f"interest-migration-{app_name}")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.ui.enabled", str(config.spark_ui).lower())
    )
    for key, value in {**session_conf(config), **DELTA_CONF}.items():
        builder = builder.config(key, value)
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
                                        f"{driver_jit_options(config, input_bytes)}"))
            .config("spark.log.structuredLogging.enabled", "false")
        )
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    # A limit query first scans one partition, then four times as many, and so on: for the GX sample
    # queries, which usually match nothing and so scan everything, that left all but one core idle.
    # Starting with every core's worth halved the predictions suite's sample query (bench/bench_score.py).
    spark.conf.set("spark.sql.limit.initialNumPartitions", str(spark.sparkContext.defaultParallelism))
    return spark


def driver_jit_options(config: PipelineConfig, input_bytes: Callable[[], int | None] | None) -> str:
    """``config.spark_driver_java_options``, plus the C1-only JIT when the stage's input is small.

    Measured on this project's 2-core machine (docs/performance.md, 2026-12-07, sixth session): on a tiny
    partition each data stage on a driver of its own took 2.1-5.4 s less with C1 only (ingest 18.2 -> 12.8 s);
    ingest of 220k landing lines (8.3 MB) 1.2 s more, of 1.46M lines (58 MB) 35% more (35 -> 47 s), since
    its generated code then never reaches C2. So the input's size on disk (``jobs.core.input_size``) chooses,
    against ``config.small_input_bytes``. C1 alone also gets a smaller code cache (48 MB instead of 240), ample
    for a small input. Options that already choose a JIT (here or in ``JAVA_TOOL_OPTIONS``) are left as they
    are, and so is a size that is unknown or cannot be taken. A spark-submit driver's JVM is started before
    Python runs: the DAG's spark-submit tasks keep the options they are given.
    """
    options = config.spark_driver_java_options
    chosen = _CHOOSES_A_JIT.search(f"{options} {os.environ.get('JAVA_TOOL_OPTIONS', '')}")
    if input_bytes is None or not config.small_input_bytes or chosen:
        return options
    try:
        size = input_bytes()
    except Exception:  # noqa: BLE001 - a size only chooses a JIT: the stage itself reports what is wrong
        size = None
    if size is None or size > config.small_input_bytes:
        return options
    return f"{options} {QUICK_START_JIT}".strip()


def connects(config: PipelineConfig) -> bool:
    """Whether ``build_spark`` gives a Spark Connect client: ``config.spark_remote`` is set and this process is not
    a driver that spark-submit started (that one already has its JVM)."""
    return bool(config.spark_remote) and not _launched_by_spark_submit()


def _connect(config: PipelineConfig, app_name: str) -> SparkSession:
    """A Spark Connect session on the long-lived driver at ``config.spark_remote``: no JVM of its own to start,
    and a driver whose JIT has already compiled Spark SQL and Delta. The server was started with the Delta
    connector (``jobs.core.connect_server``); the session's own settings are set on it here."""
    import socket
    from urllib.parse import urlparse

    from jobs.core.errors import PipelineError

    def unreachable(reason: str) -> PipelineError:
        return PipelineError(f"cannot reach the Spark Connect server at {config.spark_remote} (IM_SPARK_REMOTE): "
                             f"{reason}; start one with `python -m jobs connect-server`, or unset IM_SPARK_REMOTE to "
                             "run the stage on a driver of its own")

    # The client retries a refused connection for minutes; a server that is not there is said at once.
    address = urlparse(config.spark_remote)
    try:
        socket.create_connection((address.hostname or "localhost", address.port or 15002), timeout=10).close()
    except (OSError, ValueError) as error:
        raise unreachable(str(error) or type(error).__name__) from None
    try:
        spark = SparkSession.builder.remote(config.spark_remote).getOrCreate()  # the default session, which GX reuses
        for key, value in session_conf(config).items():
            spark.conf.set(key, value)
    except Exception as error:  # grpc's errors are pages long; the first line says what failed
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise unreachable(first[:300]) from None
    return spark


def is_remote(spark) -> bool:
    """Whether ``spark`` is a Spark Connect client session (no JVM in this process)."""
    return not hasattr(spark, "_jsparkSession")


def local_parallelism(spark: SparkSession) -> int | None:
    """The cores a local-mode driver runs tasks on (None on a cluster): its ``local[N]``, or every core for
    ``local[*]`` (a Spark Connect client cannot ask the server's SparkContext)."""
    master = spark.conf.get("spark.master", "")
    if not master.startswith("local"):
        return None
    if not is_remote(spark):
        return spark.sparkContext.defaultParallelism
    inside = master[master.find("[") + 1:master.find("]")] if "[" in master else "1"
    cores = inside.split(",")[0]
    return (os.cpu_count() or 1) if cores == "*" else int(cores)


def _launched_by_spark_submit() -> bool:
    """spark-submit starts Python from the JVM and hands it the gateway's port."""
    return "PYSPARK_GATEWAY_PORT" in os.environ
