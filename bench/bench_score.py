"""Scoring throughput at scale: users scored per second, and peak memory.

    python bench/bench_score.py --users 1000000

Makes a scratch lake whose champion has the default architecture (32 wide,
one block, L = 50, the generator's 36 categories). Its weights are random
unless ``--model-from LAKE`` copies that lake's trained champion: the work per
user is the same either way. It then writes ``--users`` score-time sequences
with full-length histories (random, like bench_train.py, so every user costs
the most a user can) into the lake's ``user_sequences`` table through
delta-spark, as the score-mode snapshot ``features --mode score`` writes, and
times ``jobs.score.driver.score_sequences`` on them as the nightly ``score
--from-features`` runs it: the Python workers reading the snapshot's files
and scoring them, the demand forecast and marketing segments, the
predictions' expectation suite and the Delta commits of all three tables.
The predictions table exists beforehand (empty), as on every night after the
first; ``--first-run`` times the run that creates it.
``--through-spark`` feeds the same rows through ``mapInArrow`` instead (the
path of ``score`` without ``--from-features``).

Building the sequences from ``events`` is not included here. It is the same
code as ``features``, and its cost depends on each user's events: time the
whole command on a generated lake for that (``time python -m jobs score``).

Peak memory is sampled over this process and its children: Spark's JVM and
its Python workers, each holding one copy of the model.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute  # noqa: F401  (pa.compute, in real_sequences)
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from bench_ingest_pipeline import PeakMemory  # noqa: E402
from bench_train import random_shard  # noqa: E402
from jobs.core.config import PipelineConfig  # noqa: E402
from jobs.generate.world import CATEGORIES  # noqa: E402
from jobs.core.runs import record_run  # noqa: E402
from jobs.score.driver import ScoreOptions, feature_sequences, score_sequences  # noqa: E402
from jobs.score.schemas import PREDICTIONS_SCHEMA  # noqa: E402
from jobs.core.stage import open_stage_lake  # noqa: E402
from jobs.core.tables import PARTITIONS, USER_INTEREST_PREDICTIONS, USER_SEQUENCES  # noqa: E402
from models.encoding import INPUT_COLUMNS  # noqa: E402
from models.registry import Registry  # noqa: E402
from models.vocabulary import Vocabulary  # noqa: E402

SCORE_DATE = dt.date(2024, 11, 28)
ROWS_PER_FILE = 50_000


def make_champion(lake: Path, length: int, model_from: Path | None) -> str:
    """A registered champion: a trained one copied from ``model_from``, or the default architecture untrained."""
    registry = Registry(lake)
    if model_from is not None:
        source = Registry(model_from)
        champion = source.champion()
        if champion is None:
            sys.exit(f"no champion under {model_from}")
        shutil.copytree(source.version_dir(champion), registry.version_dir(champion))
        registry.set_champion(champion, {"reason": f"copied from {model_from} by the bench"})
        return champion
    import tf_keras as keras  # noqa: F401

    from models.transformer import ModelConfig, build_model

    vocabulary = Vocabulary(tuple(CATEGORIES))
    config = ModelConfig(vocabulary_size=vocabulary.size, sequence_length=length)
    version = registry.new_version(SCORE_DATE)
    folder = registry.version_dir(version)
    build_model(config).save(str(folder / "saved_model"), include_optimizer=False)
    vocabulary.save(folder / "vocabulary.json")
    registry.write_metadata(version, {"version": version, "model": config.to_json(),
                                      "training_window": {"history_days": 28, "horizon_days": 7}})
    registry.set_champion(version, {"reason": "untrained, default architecture, for the bench"})
    return version


def real_sequences(lake: Path) -> pa.Table:
    """The histories of the lake's newest user_sequences snapshot at its latest cutoff: real lengths and mixes."""
    from deltalake import DeltaTable

    table = DeltaTable(str(lake / "user_sequences"))
    as_of = max(pa.table(table.to_pyarrow_dataset().to_table(columns=["as_of_date"]))["as_of_date"].to_pylist())
    rows = table.to_pyarrow_table(filters=[("as_of_date", "=", as_of)], columns=["cutoff_date", *INPUT_COLUMNS])
    latest = max(rows["cutoff_date"].to_pylist())
    return rows.filter(pa.compute.equal(rows["cutoff_date"], pa.scalar(latest))).select(list(INPUT_COLUMNS))


def write_sequences(folder: Path, users: int, length: int, source: pa.Table | None) -> None:
    """``users`` score-time rows in Parquet files of ROWS_PER_FILE, so Spark splits them across its cores:
    random full-length histories, or ``source``'s rows repeated under new user ids."""
    folder.mkdir(parents=True)
    for i, start in enumerate(range(0, users, ROWS_PER_FILE)):
        rows = min(ROWS_PER_FILE, users - start)
        if source is None:
            table = random_shard(rows, length, seed=i).select(list(INPUT_COLUMNS))
        else:
            table = source.take(np.arange(start, start + rows) % source.num_rows)
        ids = pa.array([f"u{n:08d}" for n in range(start, start + rows)])
        pq.write_table(table.add_column(0, "user_id", ids), folder / f"part-{i:05d}.parquet")


def write_snapshot(spark, lake, folder: Path, length: int, history_days: int, files: int):
    """The sequences under ``folder`` as the score-mode snapshot for SCORE_DATE, in ``files`` files per
    partition like features writes (one per shuffle partition)."""
    from pyspark.sql import functions as F

    cutoff = SCORE_DATE + dt.timedelta(days=1)
    rows = spark.read.parquet(str(folder)).repartition(files).select(
        "*", F.lit(length).alias("sequence_length"), F.lit(history_days).alias("history_days"),
        F.lit(SCORE_DATE).alias("as_of_date"), F.lit(cutoff).alias("cutoff_date"))
    lake.overwrite_partitions(USER_SEQUENCES, rows, PARTITIONS[USER_SEQUENCES],
                              {"as_of_date": [SCORE_DATE.isoformat()], "cutoff_date": [cutoff.isoformat()]})
    return feature_sequences(lake, cutoff, length, history_days)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--length", type=int, default=50)
    parser.add_argument("--model-from", type=Path, help="copy this lake's champion instead of an untrained model")
    parser.add_argument("--sequences-from", type=Path,
                        help="repeat this lake's latest real sequences (its user_sequences) instead of random "
                             "full-length ones: real history lengths, and probabilities like production's when "
                             "the model comes from the same lake")
    parser.add_argument("--batch-rows", type=int, default=4096)
    parser.add_argument("--through-spark", action="store_true",
                        help="score the snapshot read through Spark (mapInArrow) instead of the workers reading its files")
    parser.add_argument("--first-run", action="store_true",
                        help="score into a lake without a predictions table (the first score ever creates it)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch lake and print its path")
    options = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="bench-score-"))
    try:
        lake_root = scratch / "lake"
        champion = make_champion(lake_root, options.length, options.model_from)
        started = time.perf_counter()
        source = real_sequences(options.sequences_from) if options.sequences_from else None
        write_sequences(scratch / "sequences", options.users, options.length, source)
        print(f"wrote {options.users:,} sequences in {time.perf_counter() - started:.0f}s", file=sys.stderr)
        config = PipelineConfig().with_overrides(lake=lake_root)
        # As the score stage opens it: Great Expectations is imported while Spark starts, not while scoring.
        lake = open_stage_lake(config, "bench-score", validates=True)
        spark = lake.spark
        history_days = int(Registry(lake_root).metadata(champion)["training_window"]["history_days"])
        sequences = write_snapshot(spark, lake, scratch / "sequences", options.length, history_days,
                                   config.shuffle_partitions)
        if not options.first_run:
            # The nightly steady state: the predictions table exists (scored on earlier dates), so the commit
            # replaces a partition of it instead of creating the table.
            lake.append(USER_INTEREST_PREDICTIONS, spark.createDataFrame([], PREDICTIONS_SCHEMA),
                        PARTITIONS[USER_INTEREST_PREDICTIONS])
        if options.through_spark:
            cutoff = (SCORE_DATE + dt.timedelta(days=1)).isoformat()
            sequences = lake.read(USER_SEQUENCES, partitions={"as_of_date": [SCORE_DATE.isoformat()],
                                                              "cutoff_date": [cutoff]})
        started = time.perf_counter()
        with PeakMemory() as memory, record_run(lake, "score", SCORE_DATE) as metrics:
            rows = score_sequences(lake, config, Registry(lake_root), champion, sequences, SCORE_DATE,
                                   options.users, ScoreOptions(batch_rows=options.batch_rows), metrics)
        seconds = time.perf_counter() - started
        print(json.dumps({
            "users": options.users, "history_length": options.length, "model_version": champion,
            "trained_model": options.model_from is not None,
            "sequences": f"{source.num_rows:,} real ones repeated" if source is not None else "random, full length",
            "read_by": "Spark (mapInArrow)" if options.through_spark else "the Python workers (SequenceFiles)",
            "predictions_table": "created by this run" if options.first_run else "existed (empty)",
            "rows": rows, "seconds": round(seconds, 1),
            "users_per_second": round(options.users / seconds),
            "peak_rss_gb": round(memory.peak / 2**30, 2), "peak_anonymous_gb": round(memory.peak_anonymous / 2**30, 2),
            "at_peak_gb": memory.at_peak,
            "spark_master": config.spark_master, "driver_memory": config.spark_driver_memory, "cpus": os.cpu_count(),
        }, indent=1))
        spark.stop()
    finally:
        if options.keep:
            print(f"scratch lake kept at {scratch}", file=sys.stderr)
        else:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
