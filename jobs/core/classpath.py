"""What the JVM needs beside pyspark: the Delta connector's jars and the session settings that enable it.

Kept free of pyspark imports, because the DAG file reads it when Airflow
parses it. ``make install`` resolves the jars into ``jars/`` with mvn from
``conf/jars/pom.xml``; ``$IM_SPARK_JARS_DIR`` points elsewhere (an image's
copy). Nothing is downloaded at run time.
"""
from __future__ import annotations

from pathlib import Path

from jobs.core.errors import PipelineError

DELTA_CONF = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
}


def jars_dir() -> Path:
    """``IM_SPARK_JARS_DIR`` (jobs/core/config.py), read when called: a deployment may set it after import."""
    from jobs.core.config import PipelineConfig

    return PipelineConfig().spark_jars_dir


def delta_jars(required: bool = True) -> list[str]:
    """The connector's jars; when ``required`` and they are missing, a one-line error saying how to get them."""
    jars = sorted(str(p) for p in jars_dir().glob("*.jar"))
    if required and not any(Path(j).name.startswith("delta-spark_") for j in jars):
        raise PipelineError(f"the Delta Spark connector's jars are not in {jars_dir()}: run `make install` "
                            "(it resolves them with mvn from conf/jars/pom.xml)")
    return jars


def driver_java_options(options: str) -> str:
    """``options`` plus the class-data-sharing archive when ``make install`` built it (scripts/class_archive.py).

    ``-Xshare:auto`` is the JVM's default: an archive that does not match this
    JVM or classpath is ignored, and the stage starts as it would without one;
    its log lines are off so that a mismatch does not flood every task's log.
    """
    from jobs.core.config import PipelineConfig

    archive = PipelineConfig().spark_class_archive
    if not archive.is_file() or "SharedArchiveFile" in options or "ArchiveClassesAtExit" in options:
        return options
    return f"{options} -XX:SharedArchiveFile={archive} -Xshare:auto -Xlog:cds=off -Xlog:cds+dynamic=off".strip()


def spark_submit_arguments() -> list[str]:
    """What spark-submit needs to run a stage against the lake: the jars and Delta's session settings."""
    arguments = ["--jars", ",".join(delta_jars())]
    for key, value in DELTA_CONF.items():
        arguments += ["--conf", f"{key}={value}"]
    return arguments
