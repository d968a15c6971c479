"""The evaluate stage's work (``jobs/evaluate/__init__.py`` says what it does)."""
from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
from pathlib import Path

import numpy as np
from pyspark.sql import functions as F

from jobs.core.config import PipelineConfig
from jobs.core.errors import PipelineError
from jobs.core.runs import record_run
from jobs.core.stage import open_stage_lake
from jobs.core.tables import EVENTS, USER_SEQUENCES
from jobs.evaluate import fallback
from models import baselines, oracle
from models.cutoffs import TEST, TRAIN, VALIDATION
from models.evaluation import (Origin, classification_views, inventory_forecast, marketing_segments, ranking)
from models.predict import load_version
from models.promotion import decide
from models.registry import Registry
from models.tracking import Tracking
from models.shallow import fit_shallow
from models.vocabulary import OOV, PAD


def run(args: argparse.Namespace, config: PipelineConfig) -> dict:
    from models.report import write_report  # matplotlib: only when a report is written, not for every CLI start

    registry = Registry(config.lake)
    version = _version(args, registry)
    metadata = registry.metadata(version)
    as_of = args.date or dt.date.fromisoformat(metadata["as_of_date"])
    lake = open_stage_lake(config, "evaluate", USER_SEQUENCES, made_by="features")
    with record_run(lake, "evaluate", as_of) as run_metrics:
        done = _already_evaluated(registry, version, metadata, as_of) if args.promote else None
        if done is not None:
            run_metrics.details = {"version": version, "already_decided": True, **metadata.get("metrics", {})}
            return done
        splits = _read_splits(lake, as_of, args.max_users)
        _refuse_seen_labels(version, metadata, splits[TEST])
        candidate = load_version(registry.version_dir(version))
        encode = candidate.encode
        train, validation = encode(splits[TRAIN]), encode(splits[VALIDATION])
        train_cutoffs = np.asarray(splits[TRAIN]["cutoff_date"].to_pylist())
        fit = baselines.fit_baselines(train, train_cutoffs == train_cutoffs.max())
        fit, decays = baselines.choose_decay(validation, fit, validation["label_categories"],
                                             _not_ranked(validation["seen"].shape))
        # Like the model's refit: the baselines then learn from train + validation, popularity from the
        # validation cutoff (the newest labels the model saw), with the decay chosen above.
        both = {k: np.concatenate([train[k], validation[k]]) for k in train}
        newest = np.r_[np.zeros(len(train_cutoffs), bool), np.ones(len(validation["seen"]), bool)]
        fit = dataclasses.replace(baselines.fit_baselines(both, newest), decay_days=fit.decay_days)
        shallow = fit_shallow(both, fit)
        champion = registry.champion()
        champion_model = load_version(registry.version_dir(champion)) if champion and champion != version else None
        origins = [_origin(lake, config, table, candidate, champion_model, fit, shallow, args.ceiling)
                   for table in _by_cutoff(splits[TEST])]
        compared = None
        if champion_model is not None:
            # Only origins whose labels the champion never trained on (none when its window is unknown).
            labels_end = _labels_end(registry.metadata(champion))
            compared = {"champion": [o.cutoff for o in origins if labels_end is not None and o.cutoff >= labels_end]}
        cutoffs = [o.cutoff for o in origins]
        results = ranking(origins, compared)
        metrics = {
            "version": version, "as_of_date": as_of.isoformat(), "test_cutoffs": [str(c) for c in cutoffs],
            "horizon_days": int(splits[TEST]["horizon_days"][0].as_py()), "code_version": metadata.get("code_version"),
            "test_users": {str(o.cutoff): len(o.users) for o in origins},
            "migrating_users": {str(o.cutoff): int(o.has_new.sum()) for o in origins},
            "baselines": {"decay_days": fit.decay_days, "validation_ndcg@10_by_decay": {str(k): v for k, v in decays.items()}},
            "ranking": results, **classification_views(origins),
            "inventory": inventory_forecast(origins), "marketing": marketing_segments(origins),
            "explanations": origins[-1].examples or [],
        }
        if args.promote:
            pending = registry.decision_for(version) or decide(version, champion, results, cutoffs)
            # The fallback's files land before the candidate's decision is recorded: a retry that finds the
            # decision also finds them (jobs/evaluate/fallback.py).
            backup = fallback.register(registry, version, metadata, shallow, candidate.vocabulary,
                                       _fallback_metrics(results)) \
                if fallback.wanted(registry, pending, metadata, as_of) else None
            metrics["promotion"] = settle_decision(registry, version, lambda: pending)
            if backup is not None:
                metrics["fallback"] = _settle_fallback(registry, backup, metrics["promotion"])
        else:
            metrics["promotion"] = None
        page = write_report(registry.version_dir(version) / "report", metrics)
        metadata.update(status="evaluated", metrics=_summary(metrics))
        registry.write_metadata(version, metadata)
        # On the version's MLflow run: test metrics, intervals, the decision, the report and the Data Docs link.
        Tracking(config.lake).log_evaluation(version, (metadata.get("mlflow") or {}).get("run_id"), metrics,
                                             registry.version_dir(version) / "report", _data_docs(config.lake))
        run_metrics.rows_in = sum(len(o.users) for o in origins)
        run_metrics.details = {"version": version, **_summary(metrics)}
    _print(metrics, page)
    return metrics


def settle_decision(registry: Registry, version: str, decide_now) -> dict:
    """The one promotion decision for ``version``, recorded, with the champion pointer moved when it says so.

    A retry (or a second evaluate) of a decided version reuses the recorded
    decision instead of deciding and appending again. The pointer moves only
    from the champion the decision was taken against, so a retry after a crash
    between the two writes completes the promotion, and never undoes a later one.
    """
    decision = registry.decision_for(version)
    if decision is None:
        decision = decide_now()
        registry.record_decision(decision)
    if decision["promoted"] and registry.champion() == decision["previous_champion"]:
        registry.set_champion(version, decision)
    return decision


def _settle_fallback(registry: Registry, backup: str, candidate_decision: dict) -> dict:
    """The fallback's own decision, recorded once, with the pointer moved from the champion it replaces."""
    return settle_decision(registry, backup, lambda: fallback.decision(backup, candidate_decision))


def _fallback_metrics(results: dict) -> dict:
    """The shallow baseline's pooled test metrics, as its version's metadata carries them."""
    return {"ndcg@10": round(results["all"]["pooled"]["shallow"]["ndcg@10"], 4),
            "migration_recall@10": round(results["migration"]["pooled"]["shallow"]["recall@10"], 4)}


def _already_evaluated(registry: Registry, version: str, metadata: dict, as_of: dt.date) -> dict | None:
    """A retried evaluate of a version already decided on this as-of date, with its report written: the recorded
    decision is settled (the champion pointer moved if the crash came between the two writes) and the report's
    metrics returned, without the minutes of scoring every origin again. ``None`` when anything is missing."""
    metrics_file = registry.version_dir(version) / "report" / "metrics.json"
    decision = registry.decision_for(version)
    if decision is None or metadata.get("status") != "evaluated" or not metrics_file.is_file():
        return None
    metrics = json.loads(metrics_file.read_text())
    if metrics.get("as_of_date") != as_of.isoformat():
        return None
    metrics["promotion"] = settle_decision(registry, version, lambda: decision)
    backup = fallback.registered_for(registry, version)
    if backup is not None:
        metrics["fallback"] = _settle_fallback(registry, backup, metrics["promotion"])
    # A crash (or an MLflow outage) after the report and before its run was complete: log it now.
    tracking, run_id = Tracking(registry.lake), (metadata.get("mlflow") or {}).get("run_id")
    if not tracking.evaluated(run_id):
        tracking.log_evaluation(version, run_id, metrics, metrics_file.parent, _data_docs(registry.lake))
    print(f"evaluate {version}: already decided on {as_of} ({decision['reason']}); "
          f"report: {metrics_file.parent / 'report.html'}")
    return metrics


def _version(args, registry: Registry) -> str:
    if args.version:
        return args.version
    if args.run_id:
        try:
            return registry.trained_in_run(args.run_id)
        except FileNotFoundError as error:
            raise PipelineError(str(error)) from error
    version = registry.latest()
    if version is None:
        raise PipelineError(f"no trained model under {registry.root}: run train first")
    return version


def _refuse_seen_labels(version: str, metadata: dict, test) -> None:
    """A version is never judged on a test origin whose labels it trained on (``--date`` earlier than its own)."""
    labels_end = _labels_end(metadata)
    earliest = min(test["cutoff_date"].to_pylist())
    if labels_end is not None and earliest < labels_end:
        raise PipelineError(f"version {version} trained on labels up to {labels_end}, after the test origin "
                            f"{earliest} of this --date: evaluate it on its own as-of date or a later one")


def _read_splits(lake, as_of: dt.date, max_users: int) -> dict:
    """Train, validation and test rows as Arrow, for a stable hash sample of users when there are many."""
    sequences = lake.read(USER_SEQUENCES, partitions={"as_of_date": [as_of.isoformat()]})
    counts = {r["split"]: (r["rows"], r["cutoffs"]) for r in sequences.groupBy("split").agg(
        F.count(F.lit(1)).alias("rows"), F.count_distinct("cutoff_date").alias("cutoffs")).collect()}
    if not counts.get(TEST, (0, 0))[0] or not counts.get(TRAIN, (0, 0))[0] or not counts.get(VALIDATION, (0, 0))[0]:
        raise PipelineError(f"user_sequences for as_of_date {as_of} lacks train, validation or test rows: "
                            f"run features --date {as_of} --mode train first")
    per_cutoff = max(rows / cutoffs for rows, cutoffs in counts.values())
    fraction = min(1.0, max_users / per_cutoff)
    if fraction < 1:
        sequences = sequences.where(F.pmod(F.xxhash64("user_id"), F.lit(1_000_000)) < F.lit(int(fraction * 1_000_000)))
    return {split: sequences.where(F.col("split") == split).orderBy("cutoff_date", "user_id").toArrow()
            for split in (TRAIN, VALIDATION, TEST)}


def _by_cutoff(table) -> list:
    cutoffs = sorted(set(table["cutoff_date"].to_pylist()))
    import pyarrow.compute as pc

    return [table.filter(pc.equal(table["cutoff_date"], c)) for c in cutoffs]


def _origin(lake, config, table, candidate, champion_model, fit, shallow, with_ceiling: bool = False) -> Origin:
    """Every method's scores for one test cutoff's users."""
    encoded = candidate.encode(table)
    categories = list(candidate.vocabulary.categories)
    size = candidate.vocabulary.size
    explained: dict = {}
    probabilities, new_probability = candidate.predict_encoded(encoded, explained=explained)
    cutoff = table["cutoff_date"][0].as_py()
    horizon = int(table["horizon_days"][0].as_py())
    scores = {"model": probabilities.astype(np.float64),
              "popularity": baselines.popularity_scores(fit, table.num_rows),
              "user_frequency": baselines.user_frequency_scores(encoded, fit),
              "recency_frequency": baselines.recency_scores(encoded, fit),
              "markov": baselines.markov_scores(encoded, fit),
              "focus_transition": baselines.focus_transition_scores(encoded, fit),
              "shallow": shallow.scores(encoded)}
    if champion_model is not None:
        scores["champion"] = _champion_scores(lake, table, champion_model, scores["popularity"], categories)
    scores.update(_oracles(lake, config, table, cutoff, horizon, categories, size, with_ceiling))
    users = np.asarray(table["user_id"].to_pylist())
    return Origin(cutoff, users, encoded["label_categories"], encoded["window_events"] > 0,
                  encoded["window_events"].sum(axis=1), _last_horizon_users(lake, users, cutoff, horizon, candidate),
                  scores, new_probability, encoded["label_has_new"][:, 0] > 0, _examples(candidate, users, encoded, probabilities, new_probability,
                                                     explained))


def _examples(candidate, users, encoded, probabilities, new_probability, explained, count: int = 5) -> list[dict]:
    """For the report: the users most likely to move into a new category, each with their three most likely
    new categories explained (what a marketing segment would target them for)."""
    from models.explain import explain, habit_at_zero

    if "habit_logit" not in explained:
        return []
    rows = np.argsort(-new_probability, kind="stable")[:count]
    ranked = probabilities[rows].copy()
    ranked[:, [PAD, OOV]] = -1
    ranked[encoded["window_events"][rows] > 0] = -1
    top = np.argsort(-ranked, axis=1, kind="stable")[:, :3]
    names = np.array(["", "(other)", *candidate.vocabulary.categories], dtype=object)
    lines = explain(top, np.take_along_axis(ranked, top, axis=1), names, explained["habit_logit"][rows],
                    explained["sequence_logit"][rows], habit_at_zero(candidate.model),
                    encoded["window_events"][rows] > 0, encoded["categories"][rows],
                    explained["attention"][rows] if "attention" in explained else None).to_pylist()
    return [{"user_id": str(users[r]), "migration_probability": round(float(new_probability[r]), 4),
             "explanation": line} for r, line in zip(rows, lines)]


def _last_horizon_users(lake, users: np.ndarray, cutoff: dt.date, horizon: int, candidate) -> np.ndarray:
    """(size,) how many of these users engaged with each category in the horizon before the cutoff: the naive forecast."""
    start = dt.datetime.combine(cutoff - dt.timedelta(days=horizon), dt.time(), dt.timezone.utc)
    end = dt.datetime.combine(cutoff, dt.time(), dt.timezone.utc)
    dates = [(cutoff - dt.timedelta(days=d)).isoformat() for d in range(horizon + 2)]
    wanted = lake.spark.createDataFrame([(u,) for u in users.tolist()], "user_id string")
    rows = (lake.read(EVENTS, partitions={"event_date": dates})
            .where((F.col("event_ts") >= F.lit(start)) & (F.col("event_ts") < F.lit(end)))
            .join(F.broadcast(wanted), "user_id").groupBy("category")
            .agg(F.count_distinct("user_id").alias("users")).collect())
    index = candidate.vocabulary.index()
    out = np.zeros(candidate.vocabulary.size)
    for row in rows:
        out[index.get(row["category"], OOV)] += row["users"]
    return out


def _oracles(lake, config, table, cutoff: dt.date, horizon: int, categories: list[str], size: int,
             with_ceiling: bool = False) -> dict:
    """On generated data only: ``oracle_latent_focus`` knows each user's true focus the day before the cutoff
    and their parameters; ``oracle_user_parameters`` knows the parameters (stable interests, activity and move
    rates) and infers the focus from behaviour. Neither is a behaviour-only ceiling: both know more. With
    ``with_ceiling``, ``oracle_generator_process`` knows only the generator's world and process and infers
    everything about each user from their events (models/ceiling.py): the behaviour-only ceiling."""
    truth = config.lake / "ground_truth"
    if not oracle.available(truth):
        return {}
    ids = table["user_id"].to_pylist()
    probabilities, known = oracle.engagement_probabilities(truth, ids, cutoff, horizon)
    if not known.all():
        return {}
    cutoff_ts = dt.datetime.combine(cutoff, dt.time(), dt.timezone.utc)
    events = (lake.read(EVENTS).where((F.col("event_date") <= F.lit(cutoff)) & (F.col("event_ts") < F.lit(cutoff_ts)))
              .join(F.broadcast(lake.spark.createDataFrame([(u,) for u in ids], "user_id string")), "user_id")
              .select("user_id", "session_id", "event_ts", "category", "event_type").toArrow())
    belief = oracle.filtered_focus(truth, ids, events, cutoff)
    filtered, _ = oracle.engagement_probabilities(truth, ids, cutoff, horizon, focus_belief=belief)
    scores = {"oracle_latent_focus": _from_truth_order(probabilities, categories, size),
              "oracle_user_parameters": _from_truth_order(filtered, categories, size)}
    if with_ceiling:
        from models import ceiling

        # What the model sees: its sequences' history window (on a young lake shorter than the lake's history).
        behaviour = ceiling.engagement_probabilities(truth, ids, events, cutoff, horizon,
                                                     history_days=int(table["history_days"][0].as_py()))
        scores["oracle_generator_process"] = _from_truth_order(behaviour, categories, size)
    return scores


def _champion_scores(lake, table, champion, fallback: np.ndarray, categories: list[str]) -> np.ndarray:
    """The champion's scores for these test users, from sequences built as scoring builds them for it.

    On a young lake each night's history is a day longer (models/cutoffs.py): the champion then gets its
    users' sequences over its own ``history_days``, as ``score`` would give it. A test user with no event in
    that shorter window is one the champion would not have scored: such rows get ``fallback`` (popularity).
    """
    history = champion.history_days
    if history is None or history == int(table["history_days"][0].as_py()):
        return _align(champion, table, categories)
    from jobs.features import build_sequences

    cutoff, horizon = table["cutoff_date"][0].as_py(), int(table["horizon_days"][0].as_py())
    dates = [(cutoff - dt.timedelta(days=d)).isoformat() for d in range(-horizon - 1, history + 2)]
    users = table["user_id"].to_pylist()
    events = (lake.read(EVENTS, partitions={"event_date": dates})
              .join(F.broadcast(lake.spark.createDataFrame([(u,) for u in users], "user_id string")), "user_id")
              .select("user_id", "event_id", "category", "event_type", "event_ts", "session_id"))
    rebuilt = build_sequences(events, cutoff, champion.sequence_length, history, horizon).toArrow()
    position = {u: i for i, u in enumerate(rebuilt["user_id"].to_pylist())}
    out = fallback.copy()
    present = [i for i, u in enumerate(users) if u in position]
    if present:
        import pyarrow as pa

        ordered = rebuilt.take(pa.array([position[users[i]] for i in present]))
        out[present] = _align(champion, ordered, categories)
    return out


def _align(model, table, categories: list[str]) -> np.ndarray:
    """Another version's probabilities in this vocabulary's column order (absent categories score 0)."""
    probabilities, _ = model.predict(table)
    theirs = model.vocabulary.index()
    out = np.zeros((table.num_rows, len(categories) + 2))
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


def _not_ranked(shape: tuple[int, int]) -> np.ndarray:
    out = np.zeros(shape, bool)
    out[:, [PAD, OOV]] = True
    return out


def _labels_end(metadata: dict) -> dt.date | None:
    """The first date after every label window the version trained on (older versions: from their window)."""
    window = metadata.get("training_window", {})
    if window.get("labels_end"):
        return dt.date.fromisoformat(window["labels_end"])
    if window.get("train_cutoffs") and window.get("horizon_days"):
        return dt.date.fromisoformat(window["train_cutoffs"][1]) + dt.timedelta(days=int(window["horizon_days"]))
    return None


def _data_docs(lake: Path) -> str | None:
    """The lake's Data Docs front page (the validations of the tables this version trained on), if built."""
    found = sorted((lake / "_gx").glob("**/data_docs/*/index.html"))
    return str(found[0]) if found else None


def _summary(metrics: dict) -> dict:
    ranking_ = metrics["ranking"]
    pick = lambda subset: {m: round(v[ranking_[subset]["metric"]], 4)  # noqa: E731
                           for m, v in ranking_[subset]["pooled"].items()}
    return {"ndcg@10": pick("all"), "migration_recall@10": pick("migration"),
            "category_ece": round(metrics["calibration"]["category"]["ece_acted_on"], 4),
            "new_category_ece": round(metrics["calibration"]["new_category"]["ece"], 4)}


def _print(metrics: dict, page) -> None:
    summary = _summary(metrics)
    ranking_ = metrics["ranking"]
    print(f"evaluate {metrics['version']} on test origins {', '.join(metrics['test_cutoffs'])} "
          f"({sum(metrics['test_users'].values()):,} user-origins, "
          f"{sum(metrics['migrating_users'].values()):,} moving into a new category):")
    for label, subset, key in (("NDCG@10          ", "all", "ndcg@10"),
                               ("migration Rec@10 ", "migration", "migration_recall@10")):
        print(f"  {label} " + "  ".join(f"{m} {v:.4f}" for m, v in summary[key].items()))
        print(f"  model minus ({label.strip()}) " + "  ".join(
            f"{m} {i['difference']:+.4f} [{i['low']:+.4f}, {i['high']:+.4f}]"
            for m, i in ranking_[subset]["intervals"].items()))
    print(f"  calibration ECE   category (acted-on cells) {summary['category_ece']:.4f}  "
          f"new category {summary['new_category_ece']:.4f}")
    if metrics.get("promotion"):
        print(f"  {metrics['promotion']['reason']}")
    if metrics.get("fallback"):
        print(f"  {metrics['fallback']['reason']}")
    print(f"  report: {page}")
