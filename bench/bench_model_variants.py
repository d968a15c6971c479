"""The seeds' alternatives compared: Transformer or LSTM encoder, trained from scratch or warm-started.

    python bench/bench_model_variants.py --users 20000 --days 42 --lake variants-lake

Builds a generated lake with the pipeline's own stages (generate, ingest,
dedupe, sessionize with validation off: the data, not the gates, is measured
here), then:

1. for each encoder a warm-start variant uses, trains a version from scratch
   on the as-of date one horizon before the last: the champion its warm
   start fine-tunes (an LSTM cannot start from a Transformer's weights);
2. on the last as-of date trains four versions: {transformer, lstm} x
   {scratch, warm start}; each chooses its epoch count on validation;
3. evaluates each with ``evaluate --no-promote`` on the same rolling test
   origins and prints, per variant, the validation NDCG@10 (what the default
   is chosen on) beside the test results: pooled NDCG@10 and migration
   Recall@10 with the paired 95% intervals against the strongest baselines,
   and NDCG@10 per origin against recency-decayed frequency's.

Training and evaluation run as ``python -m jobs`` subprocesses, as in
production. A lake given with ``--lake`` is reused if it already has events
(so that a second run only trains and evaluates), and each variant's result
is kept there (``bench_variant_results.json``), so a run with ``--variants``
adds to the comparison rather than replacing it.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

VARIANTS = {"transformer_scratch": ["--encoder", "transformer"],
            "transformer_warm": ["--encoder", "transformer", "--warm-start"],
            "lstm_scratch": ["--encoder", "lstm"],
            "lstm_warm": ["--encoder", "lstm", "--warm-start"]}


def jobs(*args: str) -> str:
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "jobs", *args], cwd=ROOT, capture_output=True, text=True,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "IM_VALIDATE_WRITES": "0"})
    if result.returncode != 0:
        raise SystemExit(f"jobs {' '.join(args)} failed:\n{result.stderr[-3000:]}")
    print(f"  jobs {args[0]} {' '.join(a for a in args[1:] if not a.startswith('/'))[:90]}: "
          f"{time.perf_counter() - started:.0f}s", flush=True)
    return result.stdout


def build_lake(lake: Path, users: int, days: int, start: dt.date) -> None:
    if (lake / "events").exists():
        print(f"reusing the events in {lake}")
        return
    common = ["--lake", str(lake)]
    jobs("generate", *common, "--users", str(users), "--days", str(days), "--start-date", start.isoformat())
    last = (start + dt.timedelta(days=days - 1)).isoformat()
    # One ingest over every landing folder: its ingest_date= folders give each file its date.
    jobs("ingest", *common, "--source", str(lake / "raw" / "events"), "--no-validate")
    for stage in ("dedupe", "sessionize"):
        jobs(stage, *common, "--date", last, "--previous-days", str(days - 1), "--no-validate")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--days", type=int, default=42)
    parser.add_argument("--horizon-days", type=int, default=7)
    parser.add_argument("--lake", type=Path, required=True)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    options = parser.parse_args()
    start = dt.date(2024, 10, 1)
    lake = options.lake.resolve()
    build_lake(lake, options.users, options.days, start)
    common = ["--lake", str(lake)]
    as_of = start + dt.timedelta(days=options.days - 1)
    earlier = as_of - dt.timedelta(days=options.horizon_days)
    horizon = ["--horizon-days", str(options.horizon_days)]
    from models.registry import Registry

    registry = Registry(lake)
    names = options.variants.split(",")
    sources = _warm_start_sources(lake, registry, {_encoder(n) for n in names if "--warm-start" in VARIANTS[n]},
                                  earlier, horizon, options.epochs)
    jobs("features", *common, "--date", as_of.isoformat(), *horizon, "--no-validate")
    # Every variant's result is kept in the lake: a later run with --variants adds to the comparison.
    record = lake / "bench_variant_results.json"
    results = json.loads(record.read_text()) if record.exists() else {}
    for name in names:
        if "--warm-start" in VARIANTS[name]:  # a warm start fine-tunes a champion of its own architecture
            registry.set_champion(sources[_encoder(name)], {"reason": "bench_model_variants: the warm start's source"})
        before = set(registry.versions())
        jobs("train", *common, "--date", as_of.isoformat(), "--epochs", str(options.epochs), *VARIANTS[name])
        version = (set(registry.versions()) - before).pop()
        jobs("evaluate", *common, "--date", as_of.isoformat(), "--version", version, "--no-promote")
        metadata = registry.metadata(version)
        metrics = json.loads((registry.version_dir(version) / "report" / "metrics.json").read_text())
        results[name] = _summary(version, metadata, metrics)
        record.write_text(json.dumps(results))
    from models.encoding import INPUTS_VERSION

    # Chosen among the variants of this input set only: a kept result of an older one is shown, not chosen.
    current = [n for n in results if results[n].get("inputs_version", 1) == INPUTS_VERSION]
    chosen = max(current, key=lambda n: results[n]["validation_ndcg@10"])
    print(json.dumps({"users": options.users, "days": options.days, "as_of": str(as_of), "variants": results,
                      "chosen_on_validation": chosen}, indent=1))


def _encoder(variant: str) -> str:
    return VARIANTS[variant][VARIANTS[variant].index("--encoder") + 1]


def _warm_start_sources(lake: Path, registry, encoders: set[str], earlier: dt.date, horizon: list[str],
                        epochs: int) -> dict[str, str]:
    """Per encoder, a version trained from scratch one horizon earlier: what its warm start fine-tunes.
    Recorded in the lake, so a second run of the bench reuses them."""
    from models.encoding import INPUTS_VERSION

    record = lake / "bench_warm_start_sources.json"
    sources = json.loads(record.read_text()) if record.exists() else {}
    # A source trained on another input set cannot be warm-started from (jobs/train.py refuses): train anew.
    sources = {encoder: version for encoder, version in sources.items()
               if registry.metadata(version)["model"].get("inputs_version", 1) == INPUTS_VERSION}
    missing = sorted(encoders - set(sources))
    if missing:
        jobs("features", "--lake", str(lake), "--date", earlier.isoformat(), *horizon, "--no-validate")
    for encoder in missing:
        before = set(registry.versions())
        jobs("train", "--lake", str(lake), "--date", earlier.isoformat(), "--epochs", str(epochs),
             "--encoder", encoder)
        sources[encoder] = (set(registry.versions()) - before).pop()
        record.write_text(json.dumps(sources))
    return sources


def _summary(version: str, metadata: dict, metrics: dict) -> dict:
    overall, migration = metrics["ranking"]["all"], metrics["ranking"]["migration"]
    round_ = lambda i: {k: round(i[k], 4) for k in ("difference", "low", "high")}  # noqa: E731
    return {
        "version": version, "inputs_version": metadata["model"].get("inputs_version", 1),
        "validation_ndcg@10": metadata["training"]["validation_ndcg@10"],
        "best_epoch": metadata["training"]["best_epoch"], "train_seconds": metadata["training"]["wall_seconds"],
        "sequences_per_second": metadata["training"]["sequences_per_second"],
        "test_ndcg@10": {m: round(v["ndcg@10"], 4) for m, v in overall["pooled"].items()},
        "test_migration_recall@10": {m: round(v["recall@10"], 4) for m, v in migration["pooled"].items()},
        "ndcg@10_minus": {m: round_(i) for m, i in overall["intervals"].items()},
        "migration_recall@10_minus": {m: round_(i) for m, i in migration["intervals"].items()},
        "ndcg@10_ratio_to_recency_by_origin": {
            origin: round(rows["model"]["ndcg@10"] / rows["recency_frequency"]["ndcg@10"], 4)
            for origin, rows in overall["per_origin"].items()},
        "calibration": {head: round(v["ece_acted_on"], 4) for head, v in metrics["calibration"].items()},
    }


if __name__ == "__main__":
    main()
