"""Run a Spark Connect server with the lake's Delta connector: one long-lived driver for many short stages.

Each stage run on a driver of its own pays for a JVM, a session and a cold
JIT before its first row (about 20 of a small stage's 35 s here: docs/
performance.md). With ``IM_SPARK_REMOTE=sc://HOST:PORT`` a stage is a thin
Spark Connect client of this server instead: its queries, Delta commits and
Great Expectations metrics run on a driver that is already warm. ``make run``
starts one for its whole run; the nightly DAG runs its Spark tasks as clients
when ``IM_SPARK_REMOTE`` is set (docs/operations.md).

The server is Spark's own (``org.apache.spark.sql.connect.service.SparkConnectServer``,
in pyspark's jars), started by pyspark's ``spark-submit`` in the foreground, so
whoever starts it (a shell's trap, a process supervisor, a container) stops it.
It listens on the loopback interface unless ``--host`` says otherwise: anyone
who reaches the port can read and write every table of the lake.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from jobs.core.config import PipelineConfig
from jobs.core.errors import PipelineError

SERVER_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"
DEFAULT_PORT = 15002
LOG4J_CONFIG = Path(__file__).resolve().parents[1] / "conf" / "log4j2.properties"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1",
                        help="interface to listen on (default the loopback: the lake is open to any client)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"gRPC port (default {DEFAULT_PORT})")
    parser.add_argument("--conf", action="append", default=[], metavar="KEY=VALUE",
                        help="one more Spark setting for the server (repeatable), e.g. spark.cores.max=8 on a cluster")
    parser.add_argument("--dry-run", action="store_true", help="print the spark-submit command and exit")
    parser.add_argument("--ready-within", type=float, metavar="SECONDS",
                        help="start nothing: wait until a server on --host/--port answers a query with Delta's "
                             "extension on, for at most SECONDS (exit 1 if none does)")


def server_command(config: PipelineConfig, host: str, port: int, extra: list[str] = ()) -> list[str]:
    """The spark-submit command line of the server: the stages' master, memory, JVM options and Delta
    connector (jobs/core/classpath.py), and the session settings they would set on a driver of their own."""
    import pyspark

    from jobs.core.classpath import DELTA_CONF, delta_jars, driver_java_options
    from jobs.core.spark import session_conf

    java = driver_java_options(f"-Dlog4j2.configurationFile={LOG4J_CONFIG.as_uri()} "
                               f"{config.spark_driver_java_options}")
    conf = {**session_conf(config), **DELTA_CONF,
            "spark.connect.grpc.binding.address": host, "spark.connect.grpc.binding.port": str(port),
            "spark.ui.enabled": str(config.spark_ui).lower(), "spark.ui.showConsoleProgress": "false",
            "spark.log.structuredLogging.enabled": "false", "spark.driver.extraJavaOptions": java}
    command = [str(Path(pyspark.__file__).parent / "bin" / "spark-submit"), "--class", SERVER_CLASS,
               "--name", "interest-migration-connect", "--master", config.spark_master,
               "--driver-memory", config.spark_driver_memory, "--jars", ",".join(delta_jars())]
    for setting in extra:
        key, equals, value = setting.partition("=")
        if not equals or not key.strip():
            raise PipelineError(f"--conf takes KEY=VALUE, got {setting!r}")
        conf[key.strip()] = value
    for key, value in conf.items():
        command += ["--conf", f"{key}={value}"]
    return command


def wait_until_ready(host: str, port: int, seconds: float) -> None:
    """Return once a Spark Connect session on ``host:port`` runs a query and has Delta's extension; a one-line
    error after ``seconds``. The first query also warms the server up."""
    import socket
    import time

    deadline = time.monotonic() + seconds
    while True:
        try:
            socket.create_connection((host, port), timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                raise PipelineError(f"no Spark Connect server answered on {host}:{port} within {seconds:g} s") from None
            time.sleep(0.5)
    from jobs.core.lake.delta_spark import delta_spark_available
    from jobs.core.spark import build_spark

    spark = build_spark(PipelineConfig(spark_remote=f"sc://{host}:{port}"), "ready")
    try:
        spark.range(1).count()
        if not delta_spark_available(spark):
            raise PipelineError(f"the Spark Connect server on {host}:{port} has no Delta extension: start it with "
                                "`python -m jobs connect-server`")
    finally:
        spark.stop()


def run(args: argparse.Namespace, config: PipelineConfig) -> None:
    if args.ready_within is not None:
        wait_until_ready(args.host, args.port, args.ready_within)
        print(f"Spark Connect server ready on sc://{args.host}:{args.port}")
        return
    command = server_command(config, args.host, args.port, args.conf)
    if args.dry_run:
        print(" ".join(command))
        return
    env = {**os.environ, "SPARK_LOCAL_IP": os.environ.get("SPARK_LOCAL_IP", "127.0.0.1"),
           # The server's Python workers (scoring's mapInArrow) run this environment's interpreter.
           "PYSPARK_PYTHON": os.environ.get("PYSPARK_PYTHON", sys.executable)}
    env.pop("IM_SPARK_REMOTE", None)
    print(f"Spark Connect server for {config.lake} on sc://{args.host}:{args.port} (master {config.spark_master}); "
          f"stages use it with IM_SPARK_REMOTE=sc://{args.host}:{args.port}", flush=True)
    os.execve(command[0], command, env)
