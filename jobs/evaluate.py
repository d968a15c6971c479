"""``python -m jobs evaluate --date D``: a model version against baselines, the champion and the oracle.

On the test cutoff of ``user_sequences`` as of D: Recall/NDCG/HR@1,5,10 over
all users and over the migration subset (new categories only, seen ones not
ranked), calibration of both heads, and on generated data the oracle ceiling.
Writes ``metrics.json`` and ``report.html`` into the version's ``report/``
folder, then (unless ``--no-promote``) moves the champion pointer if and only
if the candidate's NDCG@10 beats the current champion's and every baseline's
on this same test cutoff. Every decision goes to ``model_decisions``.
"""
from __future__ import annotations

import argparse
import datetime as dt

import numpy as np
from pyspark.sql import functions as F

from jobs.config import PipelineConfig
from jobs.errors import PipelineError
from jobs.runs import record_run
from jobs.stage import open_stage_lake, require_date
from jobs.tables import EVENTS, USER_SEQUENCES
from models import baselines, oracle
from models.cutoffs import TEST, TRAIN
from models.encoding import multi_hot, window_counts
from models.metrics import calibration, ranking_metrics
from models.predict import load_version
from models.registry import Registry
from models.vocabulary import OOV, PAD

PROMOTION_METRIC = "ndcg@10"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--version", help="model version to evaluate (default: the latest trained)")
    parser.add_argument("--promote", action=argparse.BooleanOptionalAction, default=True,
                        help="move the champion pointer when the candidate wins (default on)")


def run(args: argparse.Namespace, config: PipelineConfig) -> dict:
    from models.report import write_report  # matplotlib: only when a report is written, not for every CLI start

    registry = Registry(config.lake)
    version = args.version or registry.latest()
    if version is None:
        raise PipelineError(f"no trained model under {registry.root}: run train first")
    metadata = registry.metadata(version)
    as_of = args.date or dt.date.fromisoformat(metadata["as_of_date"])
    lake = open_stage_lake(config, "evaluate", USER_SEQUENCES, made_by="features")
    with record_run(lake, "evaluate", as_of) as run_metrics:
        sequences = lake.read(USER_SEQUENCES, partitions={"as_of_date": [as_of.isoformat()]})
        test = sequences.where(F.col("split") == TEST).orderBy("user_id").toArrow()
        if test.num_rows == 0:
            raise PipelineError(f"no test sequences in user_sequences for as_of_date {as_of}: run features first")
        candidate = load_version(registry.version_dir(version))
        vocab = candidate.vocabulary
        categories = list(vocab.categories)
        index = vocab.index()
        cutoff = test["cutoff_date"][0].as_py()
        horizon = int(test["horizon_days"][0].as_py())

        relevant = np.minimum(multi_hot(test["label_categories"], index, vocab.size), 1)
        # "Seen" is the whole history window, as in the labels' new flags.
        seen = window_counts(test, "window_category_events", index, vocab.size)
        not_ranked = np.zeros(vocab.size, bool)
        not_ranked[[PAD, OOV]] = True
        exclude_all = np.broadcast_to(not_ranked, relevant.shape)
        exclude_seen = exclude_all | (seen > 0)
        new_relevant = relevant * (seen == 0)
        has_new = np.asarray(test["has_new_category"].to_numpy(zero_copy_only=False), dtype=float)

        probabilities, new_probability = candidate.predict(test)
        scores = {"model": probabilities}
        champion = registry.champion()
        if champion and champion != version:
            scores["champion"] = _align(load_version(registry.version_dir(champion)), test, categories)
        popularity, transitions = _fit_baselines(sequences, index, vocab.size)
        last = np.array([index.get(h[-1], OOV) for h in test["history_categories"].to_pylist()])
        users = test.num_rows
        scores["popularity"] = baselines.popularity_scores(popularity, users)
        scores["user_frequency"] = baselines.user_frequency_scores(seen, popularity)
        scores["markov"] = baselines.markov_scores(last, transitions, popularity)
        truth = config.lake / "ground_truth"
        if oracle.available(truth):
            truth_probabilities, known = oracle.engagement_probabilities(
                truth, test["user_id"].to_pylist(), cutoff, horizon)
            if known.all():
                scores["oracle"] = _from_truth_order(truth_probabilities, categories, vocab.size)
                scores["behaviour_oracle"] = _behaviour_oracle(lake, truth, test, cutoff, horizon, categories,
                                                               vocab.size)

        all_users = {name: ranking_metrics(s, relevant, exclude_all) for name, s in scores.items()}
        migration_methods = {k: v for k, v in scores.items() if k != "user_frequency"}
        migration = {(f"{name}_new" if name in ("popularity", "markov") else name):
                     ranking_metrics(s, new_relevant, exclude_seen) for name, s in migration_methods.items()}
        ranked = ~exclude_all[0]
        metrics = {
            "version": version, "as_of_date": as_of.isoformat(), "test_cutoff": str(cutoff), "horizon_days": horizon,
            "code_version": metadata.get("code_version"), "test_users": users,
            "migrating_users": int(has_new.sum()),
            "ranking": {"all": all_users, "migration": migration},
            "calibration": {
                "category": calibration(probabilities[:, ranked], relevant[:, ranked]),
                "new_category": calibration(new_probability, has_new),
            },
        }
        decision = _decide(registry, version, champion, all_users, cutoff) if args.promote else None
        metrics["promotion"] = decision
        page = write_report(registry.version_dir(version) / "report", metrics)
        metadata.update(status="evaluated", metrics=_summary(metrics))
        registry.write_metadata(version, metadata)
        if decision is not None:
            registry.record_decision(decision)
            if decision["promoted"]:
                registry.set_champion(version, decision)
        run_metrics.rows_in = users
        run_metrics.details = {"version": version, **_summary(metrics)}
    _print(metrics, page)
    return metrics


def _behaviour_oracle(lake, truth, test, cutoff: dt.date, horizon: int, categories: list[str], size: int):
    """The oracle from ``oracle.filtered_focus``: the best a model that sees only behaviour could do."""
    ids = test["user_id"].to_pylist()
    cutoff_ts = dt.datetime.combine(cutoff, dt.time(), dt.timezone.utc)
    events = (lake.read(EVENTS).where((F.col("event_date") <= F.lit(cutoff)) & (F.col("event_ts") < F.lit(cutoff_ts)))
              .join(F.broadcast(lake.spark.createDataFrame([(u,) for u in ids], "user_id string")), "user_id")
              .select("user_id", "session_id", "event_ts", "category", "event_type").toArrow())
    belief = oracle.filtered_focus(truth, ids, events, cutoff)
    probabilities, _ = oracle.engagement_probabilities(truth, ids, cutoff, horizon, focus_belief=belief)
    return _from_truth_order(probabilities, categories, size)


def _align(model, test, categories: list[str]) -> np.ndarray:
    """Another version's probabilities in this vocabulary's column order (absent categories score 0)."""
    probabilities, _ = model.predict(test)
    theirs = model.vocabulary.index()
    out = np.zeros((test.num_rows, len(categories) + 2))
    for column, category in enumerate(categories, start=2):
        if category in theirs:
            out[:, column] = probabilities[:, theirs[category]]
    return out


def _from_truth_order(values: np.ndarray, categories: list[str], size: int) -> np.ndarray:
    from jobs.generate.world import CATEGORY_INDEX

    out = np.zeros((values.shape[0], size))
    for column, category in enumerate(categories, start=2):
        if category in CATEGORY_INDEX:
            out[:, column] = values[:, CATEGORY_INDEX[category]]
    return out


def _fit_baselines(sequences, index: dict[str, int], size: int) -> tuple[np.ndarray, np.ndarray]:
    """Popularity (latest train cutoff's labels) and Markov transitions (train histories), aggregated in Spark."""
    train = sequences.where(F.col("split") == TRAIN)
    latest = train.agg(F.max("cutoff_date")).first()[0]
    recent = train.where(F.col("cutoff_date") == latest)
    users = recent.count()
    counts = recent.select(F.explode("label_categories").alias("c")).groupBy("c").count().collect()
    popularity = np.zeros(size)
    for row in counts:
        popularity[index.get(row["c"], OOV)] += row["count"] / max(users, 1)
    popularity[[PAD, OOV]] = 0
    pairs = train.select(F.explode(F.arrays_zip(
        F.slice("history_categories", 1, F.size("history_categories") - 1).alias("a"),
        F.slice("history_categories", 2, F.size("history_categories")).alias("b"))).alias("p")
    ).groupBy(F.col("p.a").alias("a"), F.col("p.b").alias("b")).count().collect()
    pair_counts: dict[tuple[int, int], int] = {}
    for row in pairs:
        key = (index.get(row["a"], OOV), index.get(row["b"], OOV))
        pair_counts[key] = pair_counts.get(key, 0) + int(row["count"])
    transitions = baselines.transition_matrix(pair_counts, size)
    transitions[:, [PAD, OOV]] = 0
    return popularity, transitions


def _decide(registry: Registry, version: str, champion: str | None, results: dict, cutoff) -> dict:
    """Promote only if the candidate beats the champion and every baseline on NDCG@10."""
    value = results["model"][PROMOTION_METRIC]
    baseline_values = {k: v[PROMOTION_METRIC] for k, v in results.items() if k in ("popularity", "user_frequency", "markov")}
    best_name = max(baseline_values, key=baseline_values.get)
    champion_value = results["champion"][PROMOTION_METRIC] if "champion" in results else None
    beats_baselines = value > baseline_values[best_name]
    beats_champion = champion_value is None or value > champion_value
    promoted = beats_baselines and beats_champion
    if champion == version:
        promoted, reason = False, f"{version} is already the champion"
    elif promoted:
        reason = (f"promoted {version}: NDCG@10 {value:.4f} beats the best baseline ({best_name} "
                  f"{baseline_values[best_name]:.4f})" + (f" and champion {champion} ({champion_value:.4f})"
                                                           if champion_value is not None else "; no champion before"))
    else:
        losses = [] if beats_baselines else [f"best baseline {best_name} {baseline_values[best_name]:.4f}"]
        losses += [] if beats_champion else [f"champion {champion} {champion_value:.4f}"]
        reason = f"kept {champion or 'no champion'}: {version}'s NDCG@10 {value:.4f} does not beat " + " and ".join(losses)
    return {"decided_at": dt.datetime.now(dt.timezone.utc), "candidate": version, "previous_champion": champion,
            "promoted": promoted, "metric": PROMOTION_METRIC, "candidate_value": value,
            "champion_value": champion_value, "best_baseline": best_name,
            "best_baseline_value": baseline_values[best_name], "test_cutoff": cutoff, "reason": reason}


def _summary(metrics: dict) -> dict:
    pick = lambda subset, k: {m: round(v[k], 4) for m, v in metrics["ranking"][subset].items()}  # noqa: E731
    return {"ndcg@10": pick("all", "ndcg@10"), "migration_recall@10": pick("migration", "recall@10"),
            "category_ece": round(metrics["calibration"]["category"]["ece"], 4),
            "new_category_ece": round(metrics["calibration"]["new_category"]["ece"], 4)}


def _print(metrics: dict, page) -> None:
    summary = _summary(metrics)
    print(f"evaluate {metrics['version']} on test cutoff {metrics['test_cutoff']} "
          f"({metrics['test_users']:,} users, {metrics['migrating_users']:,} migrating):")
    print("  NDCG@10           " + "  ".join(f"{m} {v:.4f}" for m, v in summary["ndcg@10"].items()))
    print("  migration Rec@10  " + "  ".join(f"{m} {v:.4f}" for m, v in summary["migration_recall@10"].items()))
    print(f"  calibration ECE   category {summary['category_ece']:.4f}  new category {summary['new_category_ece']:.4f}")
    if metrics.get("promotion"):
        print(f"  {metrics['promotion']['reason']}")
    print(f"  report: {page}")
