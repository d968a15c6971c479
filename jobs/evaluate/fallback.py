"""The fallback champion: publish the shallow baseline while no trained model has beaten it.

A lake whose first candidates tie or trail the baselines used to publish
nothing: no predictions, no demand forecast, no audiences, night after night.
What a team would do by hand instead is serve the strongest simple model
until the sequence model earns its place; this does it, visibly:

- when ``evaluate`` does not promote its candidate and there is no champion,
  or the champion is an earlier fallback with an older as-of date, the
  logistic regression fitted beside the candidate (``models.shallow``, on the
  same train + validation cutoffs, so the test origins stay unseen) is
  registered as a version of its own (``models/shallow_model.py``, with
  ``fallback_for`` naming the candidate) and becomes the champion;
- its ``model_decisions`` row says so (``best_baseline`` "shallow", the reason
  starting "fallback"), with the candidate's decision just before it;
- a trained champion is never replaced by a fallback: it beat the baselines
  when it was promoted, and a candidate replaces it only through the gate.

Retries publish nothing twice: the fallback's files are written before the
candidate's decision is recorded, a retried ``evaluate`` reuses the version
registered for that candidate, and each decision is recorded once
(``settle_decision``).
"""
from __future__ import annotations

import datetime as dt
import shutil

from models.registry import FALLBACK_FOR, Registry, code_version, is_fallback
from models.tracking import Tracking


def wanted(registry: Registry, decision: dict, candidate_metadata: dict, as_of: dt.date) -> bool:
    """Whether this decision (not yet promoting its candidate) should leave a fallback champion.

    Only an evaluation on the candidate's own as-of date: the regression is then fitted on the cutoffs the
    candidate trained on, and the candidate's training window (which the fallback inherits) is its own.
    """
    if decision["promoted"] or is_fallback(candidate_metadata):
        return False
    if as_of.isoformat() != candidate_metadata["as_of_date"]:
        return False
    champion = decision["previous_champion"]
    if champion is None:
        return True
    theirs = registry.metadata(champion)
    return is_fallback(theirs) and theirs["as_of_date"] < candidate_metadata["as_of_date"]


def registered_for(registry: Registry, candidate: str) -> str | None:
    """The fallback version already registered beside ``candidate`` (a retried evaluate reuses it)."""
    for version in registry.versions():
        if registry.metadata(version).get(FALLBACK_FOR) == candidate:
            return version
    return None


def register(registry: Registry, candidate: str, candidate_metadata: dict, shallow, vocabulary,
             metrics: dict) -> str:
    """The fitted ``shallow`` as a version of its own (files, then metadata last: only a whole version lists)."""
    from models.shallow_model import KIND, build_shallow_model, model_config, set_fitted

    existing = registered_for(registry, candidate)
    if existing is not None:
        return existing
    as_of = dt.date.fromisoformat(candidate_metadata["as_of_date"])
    version = registry.new_version(as_of)
    folder = registry.version_dir(version)
    config = model_config(vocabulary.size, int(candidate_metadata["model"]["sequence_length"]))
    model = build_shallow_model(config)
    set_fitted(model, shallow)
    staging = folder / "saved_model.partial"
    shutil.rmtree(staging, ignore_errors=True)
    model.save(str(staging), include_optimizer=False)
    staging.rename(folder / "saved_model")
    vocabulary.save(folder / "vocabulary.json")
    metadata = {
        "version": version, "as_of_date": as_of.isoformat(), "status": "fallback", "code_version": code_version(),
        "model": config, "vocabulary_size": vocabulary.size, FALLBACK_FOR: candidate,
        "training": {"kind": KIND, "fitted_by": "evaluate", "decay_days": shallow.fit.decay_days},
        "calibration": None,  # a logistic regression's probabilities (its unseen cells weighted back)
        "training_window": candidate_metadata["training_window"],
        "metrics": metrics,
    }
    metadata["files"] = registry.file_hashes(version)
    registry.write_metadata(version, metadata)  # whole: a retried evaluate finds it (registered_for)
    # A run and registered model version of its own in MLflow, like a trained version's (models/tracking.py).
    metadata["mlflow"] = Tracking(registry.lake).log_training(version, folder, metadata, None, metrics)
    registry.write_metadata(version, metadata)
    return version


def decision(fallback: str, candidate_decision: dict) -> dict:
    """The ``model_decisions`` row that makes ``fallback`` the champion."""
    shallow_value = candidate_decision["best_baseline_value"] if candidate_decision["best_baseline"] == "shallow" \
        else None
    return {
        "decided_at": dt.datetime.now(dt.timezone.utc), "candidate": fallback,
        "previous_champion": candidate_decision["previous_champion"], "promoted": True,
        "metric": candidate_decision["metric"], "candidate_value": shallow_value, "champion_value": None,
        "best_baseline": "shallow", "best_baseline_value": shallow_value,
        "test_cutoff": candidate_decision["test_cutoff"], "test_origins": candidate_decision["test_origins"],
        "reason": (f"fallback {fallback}: the shallow baseline fitted beside {candidate_decision['candidate']}, "
                   f"which was not promoted ({candidate_decision['reason']}); served until a trained model beats it"),
    }
