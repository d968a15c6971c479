"""Build the Spark driver's class-data-sharing archive (``make install``): the JVM's start, shared by every stage.

Every stage is a short-lived Spark driver that loads and links the same tens
of thousands of classes (Spark SQL, Delta, Parquet) before it touches any
data. The JVM can map them from an archive instead (JDK's dynamic AppCDS,
``-XX:ArchiveClassesAtExit`` once, then ``-XX:SharedArchiveFile``): this
script runs the data stages once, on a tiny generated lake, in one driver
started with the dump flag, so the archive holds what they load. A stage
started without it, or with an archive from another JVM or classpath, runs
the same, only slower (``-Xshare:auto``): ``jobs/core/classpath.py`` adds
the flag only when the file is there.

Usage: ``python scripts/class_archive.py ARCHIVE`` (``make install`` passes
``jars/spark-driver.jsa``).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DAYS = ("2024-10-01", "2024-10-02", "2024-10-03")


def workload(lake: str) -> None:
    """What the archive learns from, run inside spark-submit's driver: each data stage through the command line."""
    from jobs.cli import main

    common = ["--lake", lake]
    steps = [["ingest", "--source", f"{lake}/raw/events"],
             ["dedupe", "--from-date", DAYS[0], "--to-date", DAYS[-1]],
             ["sessionize", "--from-date", DAYS[0], "--to-date", DAYS[-1]],
             ["validate", "--date", DAYS[-1], "--table", "events", "--table", "sessions"],
             ["features", "--date", DAYS[-1], "--mode", "score", "--history-days", "2"],
             ["sql", "--engine", "spark", "SELECT count(*) FROM events"]]
    for step in steps:
        if main([*step, *common]) != 0:
            raise SystemExit(f"class archive: {step[0]} failed")


def build(archive: Path) -> None:
    from jobs.core.classpath import DELTA_CONF, delta_jars

    import pyspark

    work = Path(tempfile.mkdtemp(prefix="im-class-archive-"))
    try:
        lake = work / "lake"
        env = {**os.environ, "PYTHONPATH": str(ROOT), "IM_SHUFFLE_PARTITIONS": "2", "PYSPARK_PYTHON": sys.executable}
        subprocess.run([sys.executable, "-m", "jobs", "generate", "--lake", str(lake), "--users", "60", "--days",
                        str(len(DAYS)), "--start-date", DAYS[0]], cwd=ROOT, env=env, check=True,
                       stdout=subprocess.DEVNULL)
        partial = archive.with_name(archive.name + f".{os.getpid()}.tmp")
        command = [str(Path(pyspark.__file__).parent / "bin" / "spark-submit"), "--master", "local[2]",
                   "--driver-java-options", f"-XX:ArchiveClassesAtExit={partial} -Xlog:cds=off -Xlog:cds+dynamic=off",
                   "--jars", ",".join(delta_jars()),
                   *[arg for key, value in DELTA_CONF.items() for arg in ("--conf", f"{key}={value}")],
                   "--conf", "spark.sql.session.timeZone=UTC", "--conf", "spark.ui.enabled=false",
                   str(Path(__file__).resolve()), "--workload", str(lake)]
        started = time.monotonic()
        result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
        if result.returncode != 0 or not partial.is_file():
            partial.unlink(missing_ok=True)
            raise SystemExit(f"class archive: the workload failed (exit {result.returncode}):\n"
                             f"{(result.stdout + result.stderr)[-3000:]}")
        partial.replace(archive)
        print(f"class archive: {archive} ({archive.stat().st_size / 1e6:.0f} MB) in {time.monotonic() - started:.0f} s")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    if len(sys.argv) == 3 and sys.argv[1] == "--workload":
        workload(sys.argv[2])
    elif len(sys.argv) == 2:
        build(Path(sys.argv[1]).resolve())
    else:
        raise SystemExit(__doc__.strip().splitlines()[-2])
