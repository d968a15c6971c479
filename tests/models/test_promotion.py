"""The promotion gate: the champion moves only when the candidate wins by more than noise."""
from __future__ import annotations

import datetime as dt

import numpy as np

from models.evaluation import Origin, ranking
from models.promotion import decide
from models.registry import Registry

CUTOFFS = [dt.date(2024, 10, 16), dt.date(2024, 10, 17), dt.date(2024, 10, 18)]
USERS, SIZE = 400, 14


def _origins(model_skill: float, baseline_skill: float = 1.0, champion_skill: float | None = None,
             migration_skill: float | None = None, seed: int = 0) -> list[Origin]:
    """Methods whose scores are the truth times their skill plus unit noise, on the same users at three origins."""
    rng = np.random.default_rng(seed)
    origins = []
    for cutoff in CUTOFFS:
        relevant = (rng.random((USERS, SIZE)) < 0.15).astype(float)
        relevant[:, :2] = 0
        seen = rng.random((USERS, SIZE)) < 0.3
        noisy = lambda skill: relevant * skill + rng.normal(0, 1, relevant.shape)  # noqa: E731
        scores = {"model": noisy(model_skill), "popularity": noisy(0.0), "user_frequency": noisy(baseline_skill),
                  "recency_frequency": noisy(baseline_skill * 0.9), "markov": noisy(0.2), "shallow": noisy(0.5),
                  "focus_transition": noisy(baseline_skill if migration_skill is None else migration_skill)}
        if migration_skill is not None:  # the model is sharp on categories users have seen, weak on new ones
            scores["model"] = np.where(seen, scores["model"], noisy(0.5))
        if champion_skill is not None:
            scores["champion"] = noisy(champion_skill)
        origins.append(Origin(cutoff, np.array([f"u{i}" for i in range(USERS)]), relevant, seen,
                              np.ones(USERS), np.zeros(SIZE), scores, np.full(USERS, 0.5),
                              ((relevant > 0) & ~seen).any(axis=1)))
    return origins


def test_a_clear_winner_over_every_baseline_is_promoted():
    decision = decide("v2", None, ranking(_origins(model_skill=3.0)), CUTOFFS)
    assert decision["promoted"] and decision["best_baseline"] == "user_frequency"
    assert decision["baseline_low"] > 0 and "no champion before" in decision["reason"]
    assert decision["test_origins"] == "2024-10-16,2024-10-17,2024-10-18"


def test_a_lead_inside_the_noise_is_not_promoted():
    # Same skill as the best baseline: its pooled NDCG@10 may come out ahead, but not by more than noise.
    for seed in range(3):
        decision = decide("v2", None, ranking(_origins(model_skill=1.0, seed=seed)), CUTOFFS)
        assert not decision["promoted"] and "not significant" in decision["reason"]
        assert decision["baseline_low"] <= 0 <= decision["baseline_high"] or decision["baseline_high"] < 0


def test_the_candidate_must_beat_the_champion_by_more_than_noise_too():
    tied = decide("v2", "v1", ranking(_origins(model_skill=3.0, champion_skill=3.0)), CUTOFFS)
    assert not tied["promoted"] and "champion v1" in tied["reason"]
    better = decide("v2", "v1", ranking(_origins(model_skill=4.0, champion_skill=2.0)), CUTOFFS)
    assert better["promoted"] and better["previous_champion"] == "v1" and better["champion_low"] > 0


def test_an_interval_over_no_users_proves_nothing():
    origins = _origins(model_skill=3.0)
    for origin in origins:
        origin.relevant[:] = 0  # nobody engaged with anything: no row to rank
    decision = decide("v2", None, ranking(origins), CUTOFFS)
    assert not decision["promoted"] and "not significant" in decision["reason"]


def test_a_method_missing_at_an_origin_is_paired_on_the_others():
    origins = _origins(model_skill=3.0)
    del origins[1].scores["shallow"]
    interval = ranking(origins)["all"]["intervals"]["shallow"]
    assert interval["origins"] == [str(CUTOFFS[0]), str(CUTOFFS[2])] and interval["low"] > 0


def test_no_comparison_on_origins_the_champion_trained_on():
    origins = _origins(model_skill=4.0, champion_skill=1.0)
    decision = decide("v2", "v1", ranking(origins, {"champion": []}), CUTOFFS)
    assert not decision["promoted"] and "free of champion v1's training labels" in decision["reason"]


def test_a_candidate_significantly_worse_at_migration_is_not_promoted():
    origins = _origins(model_skill=6.0, baseline_skill=0.3, migration_skill=3.0)
    decision = decide("v2", None, ranking(origins), CUTOFFS)
    assert decision["baseline_low"] > 0 and decision["migration_high"] < 0
    assert not decision["promoted"] and "migration Recall@10 is below focus_transition" in decision["reason"]


def test_decisions_with_their_intervals_are_recorded_and_the_pointer_moves(spark, tmp_path):
    registry = Registry(tmp_path)
    for candidate, skill in (("2024-10-18.1", 3.0), ("2024-10-18.2", 1.0)):
        decision = decide(candidate, registry.champion(), ranking(_origins(model_skill=skill)), CUTOFFS)
        registry.record_decision(decision)
        if decision["promoted"]:
            registry.set_champion(candidate, decision)
    assert registry.champion() == "2024-10-18.1"
    rows = spark.read.format("delta").load(str(tmp_path / "model_decisions")).orderBy("decided_at").collect()
    assert [(r["candidate"], r["promoted"]) for r in rows] == [("2024-10-18.1", True), ("2024-10-18.2", False)]
    assert rows[0]["baseline_low"] > 0 and rows[0]["migration_baseline"] in ("focus_transition", "shallow", "markov",
                                                                             "popularity")


def test_latest_orders_run_numbers_as_numbers(tmp_path):
    registry = Registry(tmp_path)
    for version in ("2024-10-18.9", "2024-10-18.10", "2024-10-17.11"):
        registry.version_dir(version).mkdir(parents=True)
        registry.write_metadata(version, {"version": version})
    assert registry.latest() == "2024-10-18.10"
    registry.record_training_run("scheduled__2024-10-19T02:00:00+00:00", "2024-10-18.9")
    assert registry.trained_in_run("scheduled__2024-10-19T02:00:00+00:00") == "2024-10-18.9"
