"""Wall time of each nightly data stage on a tiny partition, as the DAG runs it: a fresh `python -m jobs STAGE`.

    python bench/bench_stage_fixed_cost.py [--repeats 3] [--mode connect|driver|both] [--profile DIR]
                                           [--stage ingest --stage features ...]

Builds a lake of 300 generated users over 8 days (about 1,300 events a day; the history loaded with the
backfill path, not timed), then runs the last date's stages in the nightly order (ingest, dedupe,
sessionize, validate of events and sessions, features in score mode), each ``--repeats`` times (a re-run
replaces the same partition, so every repeat does the same work), as a client of a warm Spark Connect
server (``connect``: the server is started once and warmed by the history load, as ``make run`` does)
and/or on a driver of its own (``driver``: JVM start included). Prints each stage's times and best.
``--profile DIR`` also writes a cProfile of each stage's last run there (``python -m cProfile``).

The issue's target: at most 15 s per stage on a tiny partition, JVM start included.
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
START, DAYS = dt.date(2024, 10, 1), 8
LAST = START + dt.timedelta(days=DAYS - 1)


def stages(lake: Path) -> list[tuple[str, list[str]]]:
    common = ["--lake", str(lake), "--date", LAST.isoformat()]
    return [("ingest", common), ("dedupe", [*common, "--previous-days", "1"]),
            ("sessionize", [*common, "--previous-days", "1"]),
            ("validate", [*common, "--table", "events", "--table", "sessions"]),
            ("features", [*common, "--mode", "score"])]


def jobs(env: dict, *args: str, profile: Path | None = None) -> float:
    command = [sys.executable, *(["-m", "cProfile", "-o", str(profile)] if profile else []), "-m", "jobs", *args]
    if profile:  # cProfile runs a script, not a module: the package's __main__
        command = [sys.executable, "-m", "cProfile", "-o", str(profile), str(ROOT / "jobs" / "__main__.py"), *args]
    started = time.perf_counter()
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    took = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"{' '.join(args[:1])} failed:\n{(result.stdout + result.stderr)[-3000:]}")
    return took


def build_history(env: dict, lake: Path) -> None:
    common = ["--lake", str(lake)]
    jobs(env, "generate", *common, "--users", "300", "--days", str(DAYS), "--start-date", START.isoformat())
    before = (LAST - dt.timedelta(days=1)).isoformat()
    # Every landing partition but the last, as a backfill loads a history.
    landing = lake / "raw" / "events"
    held = lake.parent / "held"
    held.mkdir()
    shutil.move(str(landing / f"ingest_date={LAST}"), held)
    jobs(env, "ingest", *common, "--source", str(landing), "--no-validate")
    shutil.move(str(held / f"ingest_date={LAST}"), landing)
    for stage in ("dedupe", "sessionize"):
        jobs(env, stage, *common, "--from-date", START.isoformat(), "--to-date", before, "--no-validate")


def measure(env: dict, lake: Path, repeats: int, profile: Path | None, label: str,
            only: list[str] | None = None) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {}
    for stage, args in stages(lake):
        if only and stage not in only:
            jobs(env, stage, *args)  # not measured, but the later stages read what it writes
            continue
        times[stage] = []
        for i in range(repeats):
            out = profile / f"{label}-{stage}.prof" if profile and i == repeats - 1 else None
            times[stage].append(jobs(env, stage, *args, profile=out))
        print(f"{label:8} {stage:11} " + ", ".join(f"{t:.1f}" for t in times[stage])
              + f"  best {min(times[stage]):.1f} s, median {statistics.median(times[stage]):.1f} s", flush=True)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--mode", choices=["connect", "driver", "both"], default="both")
    parser.add_argument("--profile", type=Path)
    parser.add_argument("--stage", action="append", choices=[name for name, _ in stages(Path("."))],
                        help="measure only this stage (repeatable; default: all five, in the nightly order)")
    args = parser.parse_args()
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="im-bench-fixed-"))
    lake = work / "lake"
    env = {**os.environ, "IM_SHUFFLE_PARTITIONS": "2", "TF_CPP_MIN_LOG_LEVEL": "2", "IM_LAKE": str(lake)}
    env.pop("IM_SPARK_REMOTE", None)
    server = None
    try:
        if args.mode in ("connect", "both"):
            port = 15100 + os.getpid() % 500
            log = open(work / "server.log", "w")
            server = subprocess.Popen([sys.executable, "-m", "jobs", "connect-server", "--port", str(port)], cwd=ROOT,
                                      env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            jobs(env, "connect-server", "--port", str(port), "--ready-within", "180")
            remote = {**env, "IM_SPARK_REMOTE": f"sc://127.0.0.1:{port}"}
            build_history(remote, lake)
            measure(remote, lake, args.repeats, args.profile, "connect", args.stage)
        else:
            build_history(env, lake)
        if args.mode in ("driver", "both"):
            measure(env, lake, args.repeats, args.profile, "driver", args.stage)
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=60)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
