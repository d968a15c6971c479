"""The promotion gate: the champion moves only when the candidate beats it and every baseline on NDCG@10."""
from __future__ import annotations

import datetime as dt

from jobs.evaluate import _decide
from models.registry import Registry

CUTOFF = dt.date(2024, 10, 18)


def _results(model, champion=None, popularity=0.2, user_frequency=0.5, markov=0.4):
    out = {"model": model, "popularity": popularity, "user_frequency": user_frequency, "markov": markov}
    if champion is not None:
        out["champion"] = champion
    return {k: {"ndcg@10": v} for k, v in out.items()}


def test_first_candidate_that_beats_every_baseline_is_promoted(tmp_path):
    decision = _decide(Registry(tmp_path), "v2", None, _results(0.55), CUTOFF)
    assert decision["promoted"] and decision["best_baseline"] == "user_frequency"
    assert "no champion before" in decision["reason"]


def test_candidate_below_a_baseline_is_not_promoted(tmp_path):
    decision = _decide(Registry(tmp_path), "v2", None, _results(0.45), CUTOFF)
    assert not decision["promoted"] and "best baseline user_frequency 0.5000" in decision["reason"]


def test_candidate_must_also_beat_the_champion(tmp_path):
    decision = _decide(Registry(tmp_path), "v2", "v1", _results(0.55, champion=0.6), CUTOFF)
    assert not decision["promoted"] and "champion v1 0.6000" in decision["reason"]
    decision = _decide(Registry(tmp_path), "v2", "v1", _results(0.65, champion=0.6), CUTOFF)
    assert decision["promoted"] and decision["previous_champion"] == "v1"


def test_decisions_are_recorded_and_the_pointer_moves_atomically(spark, tmp_path):
    registry = Registry(tmp_path)
    for candidate, value in (("v1", 0.55), ("v2", 0.45)):
        decision = _decide(registry, candidate, registry.champion(), _results(value), CUTOFF)
        registry.record_decision(decision)
        if decision["promoted"]:
            registry.set_champion(candidate, decision)
    assert registry.champion() == "v1"
    rows = spark.read.parquet(str(tmp_path / "model_decisions")).orderBy("decided_at").collect()
    assert [(r["candidate"], r["promoted"]) for r in rows] == [("v1", True), ("v2", False)]
