"""Throughput and peak memory of ingest -> dedupe -> sessionize on generated events.

    python bench/bench_ingest_pipeline.py --events 10000000 --days 3 [--range]
    python bench/bench_ingest_pipeline.py --events 336000 --days 84 --range   # 12 weeks of 4,000 a day

Generates the landing files first (not timed), then runs each stage inside one
Python process with one SparkSession: for each day in order, as the Airflow
workers would per task minus JVM start-up, or with ``--range`` as a backfill
does, each stage once over every date (ingest of the whole landing folder,
dedupe and sessionize with --from-date/--to-date). Prints events/s per stage, total
wall time, the cost per event and the peak resident memory of Python and
Spark's JVM together (sampled every 0.2 s).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from jobs.cli import RANGE_STAGES, _date_range, build_parser  # noqa: E402
from jobs.core.config import PipelineConfig  # noqa: E402


class PeakMemory:
    """Peak memory of this process and its children (Spark's JVM), sampled in a thread.

    Reports resident memory (RSS) and its anonymous part: RSS also counts pages
    of files Spark memory-maps (blocks over 2 MB are read that way), which the
    kernel can drop at any time; anonymous memory is what the processes own.
    """

    def __init__(self, interval: float = 0.2):
        self.interval, self._stop = interval, threading.Event()
        self.peak = self.peak_anonymous = 0
        self.at_peak: dict[str, float] = {}

    def __enter__(self):
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def _sample(self):
        me = psutil.Process()
        while not self._stop.is_set():
            rss = anonymous = 0
            parts = {}
            for proc in [me, *me.children(recursive=True)]:
                try:
                    if _unexeced_fork_of_a_jvm(proc):
                        continue
                    proc_rss = proc.memory_info().rss
                    proc_anon = _anonymous_bytes(proc.pid)
                    rss += proc_rss
                    anonymous += proc_anon
                    parts[f"{proc.name()}-{proc.pid}"] = round(proc_rss / 2**30, 2)
                except psutil.Error:
                    pass
            if rss > self.peak:
                self.peak, self.at_peak = rss, parts
            self.peak_anonymous = max(self.peak_anonymous, anonymous)
            time.sleep(self.interval)


def _unexeced_fork_of_a_jvm(proc: psutil.Process) -> bool:
    """A child the JVM forked to run a command (Hadoop's local file system runs ``chmod`` and the like),
    caught before its exec: it reports the JVM's whole RSS, but shares those pages with it. Counting
    it doubled the JVM at that instant (5.81 GB reported for 3.1 GB really held). Python workers
    forked by pyspark's daemon do own their memory, and are counted."""
    parent = proc.parent()
    return (parent is not None and parent.name() == "java" and proc.name() != "java"
            and proc.cmdline() == parent.cmdline())


def _anonymous_bytes(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def run_stage(stage: str, lake: Path, *extra: str) -> dict:
    args = build_parser(stage).parse_args([stage, "--lake", str(lake), *extra])
    config = PipelineConfig().with_overrides(lake=lake)
    if stage in RANGE_STAGES:  # as jobs.cli.main does
        args.dates = _date_range(args)
        args.date = args.dates[-1]
    return args._module.run(args, config)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--lake", type=Path, help="lake directory (default: a temporary one, removed after)")
    parser.add_argument("--keep", action="store_true", help="keep the generated lake")
    parser.add_argument("--range", action="store_true",
                        help="the backfill path: each stage once over every date (default: date by date)")
    parser.add_argument("--validate", action="store_true",
                        help="keep the stages' quality gates on (default: off, to measure the stages alone)")
    options = parser.parse_args()
    os.environ["IM_VALIDATE_WRITES"] = "1" if options.validate else "0"
    lake = options.lake or Path(tempfile.mkdtemp(prefix="bench-lake-"))
    start = dt.date(2024, 11, 1)
    try:
        t = time.perf_counter()
        generated = run_stage("generate", lake, "--events", str(options.events), "--days", str(options.days),
                              "--start-date", start.isoformat())
        print(f"generation (not timed in the totals): {time.perf_counter() - t:.1f}s")
        seconds = {"ingest": 0.0, "dedupe": 0.0, "sessionize": 0.0}
        rows = {"ingest": 0, "dedupe": 0, "sessionize": 0}
        with PeakMemory() as memory:
            run_stage("sql", lake, "SELECT 1")  # warm the imports; Spark starts in the first stage
            last = (start + dt.timedelta(days=options.days - 1)).isoformat()
            passes = ([{"ingest": ["--source", str(lake / "raw" / "events")],
                        **{stage: ["--from-date", start.isoformat(), "--to-date", last]
                           for stage in ("dedupe", "sessionize")}}] if options.range else
                      [{stage: ["--date", (start + dt.timedelta(days=d)).isoformat()] for stage in seconds}
                       for d in range(options.days)])
            for arguments in passes:
                for stage in seconds:
                    t = time.perf_counter()
                    result = run_stage(stage, lake, *arguments[stage])
                    seconds[stage] += time.perf_counter() - t
                    rows[stage] += result.get("rows_in", result.get("events", 0))
        total = sum(seconds.values())
        lines = generated["lines"]
        report = {
            "input_lines": lines,
            "days": options.days,
            "path": "range" if options.range else "date by date",
            "seconds": {k: round(v, 1) for k, v in seconds.items()},
            "rows_per_second": {k: round(rows[k] / seconds[k]) for k in seconds},
            "total_seconds": round(total, 1),
            "microseconds_per_event": round(total / lines * 1e6, 2),
            "peak_rss_gb": round(memory.peak / 2**30, 2),
            "peak_anonymous_gb": round(memory.peak_anonymous / 2**30, 2),
            "rss_by_process_at_peak_gb": memory.at_peak,
            "cpus": psutil.cpu_count(),
        }
        print(json.dumps(report, indent=1))
    finally:
        if not options.keep and not options.lake:
            shutil.rmtree(lake, ignore_errors=True)


if __name__ == "__main__":
    main()
