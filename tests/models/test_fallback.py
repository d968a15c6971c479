"""The fallback champion: the shallow baseline served as a model version (models/shallow_model.py,
jobs/evaluate/fallback.py)."""
from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np
import pyarrow as pa
import pytest

from jobs.evaluate import fallback
from models import baselines
from models.encoding import encode_sequences
from models.explain import explain, habit_at_zero
from models.predict import load_version
from models.registry import Registry
from models.shallow import fit_shallow
from models.shallow_model import build_shallow_model, model_config, set_fitted
from models.vocabulary import OOV, PAD
from tests.models.test_baselines import VOCAB, _table

LENGTH = 6


def _users(seed: int, count: int) -> list[dict]:
    """Histories of 1-9 steps (longer than LENGTH for some: the window keeps counts the sequence cut), several
    sessions, ages across the buckets, and labels that mix the user's categories with new ones."""
    rng = np.random.default_rng(seed)
    names = list(VOCAB.categories)
    users = []
    for _ in range(count):
        steps = [(str(rng.choice(names[:3] if rng.random() < 0.7 else names)), int(rng.integers(0, 9)),
                  bool(i == 0 or rng.random() < 0.3)) for i in range(int(rng.integers(1, 10)))]
        label = sorted({str(c) for c in rng.choice(names, int(rng.integers(0, 3)))})
        users.append({"steps": steps, "label": label})
    return users


def _encoded(seed: int, count: int) -> dict:
    """Encoded rows whose windows also hold older events than their histories (as real windows of weeks do)."""
    table = _table(_users(seed, count))
    rng = np.random.default_rng(seed)
    events = [[n + int(rng.integers(0, 3)) for n in row] for row in table["window_category_events"].to_pylist()]
    column = table.schema.get_field_index("window_category_events")
    return encode_sequences(table.set_column(column, "window_category_events", pa.array(events)), VOCAB, LENGTH)


@pytest.fixture(scope="module")
def fitted():
    train, test = _encoded(1, 400), _encoded(2, 120)
    fit = dataclasses.replace(baselines.fit_baselines(train, np.arange(400) >= 300), decay_days=2.0)
    return fit_shallow(train, fit), test


def _inputs(model, encoded: dict) -> dict:
    return {k: v for k, v in encoded.items() if k in model.input_names}


def test_the_keras_form_gives_the_regressions_probabilities(fitted):
    shallow, test = fitted
    model = build_shallow_model(model_config(VOCAB.size, LENGTH))
    set_fitted(model, shallow)
    out = model(_inputs(model, test))
    expected = shallow.scores(test)
    np.testing.assert_allclose(out["category"].numpy(), expected, atol=1e-5)
    # P(any new category): one minus the chance of none of the categories absent from the window.
    unseen = test["window_events"] == 0
    unseen[:, [PAD, OOV]] = False
    none_new = np.prod(np.where(unseen, 1 - expected, 1.0), axis=1)
    np.testing.assert_allclose(out["new_category"].numpy()[:, 0], 1 - none_new, atol=1e-5)
    # The two explanation parts add up to the logit, and a never-touched category's own part is habit_at_zero.
    logit = out["habit_logit"].numpy() + out["sequence_logit"].numpy()
    ranked = expected[:, 2:]
    np.testing.assert_allclose(logit[:, 2:], np.log(ranked / (1 - ranked)), atol=1e-3)
    never = (test["window_events"] == 0) & (test["seen"] == 0)
    never[:, [PAD, OOV]] = False
    np.testing.assert_allclose(out["habit_logit"].numpy()[never], habit_at_zero(model), atol=1e-4)


def _candidate(registry: Registry, as_of: str, number: int = 1) -> tuple[str, dict]:
    """A trained version's folder and metadata, as train leaves them (no model files: none is loaded here)."""
    version = f"{as_of}.{number}"
    registry.version_dir(version).mkdir(parents=True)
    metadata = {"version": version, "as_of_date": as_of, "model": {"sequence_length": LENGTH},
                "training_window": {"history_days": 4, "labels_end": as_of}}
    registry.write_metadata(version, metadata)
    return version, metadata


def test_a_registered_fallback_loads_scores_and_explains_like_the_regression(fitted, tmp_path):
    shallow, test = fitted
    registry = Registry(tmp_path)
    candidate, metadata = _candidate(registry, "2024-10-08")
    version = fallback.register(registry, candidate, metadata, shallow, VOCAB, {"ndcg@10": 0.5})
    assert version == "2024-10-08.2" and fallback.registered_for(registry, candidate) == version
    # A retried evaluate reuses the version registered for the same candidate.
    assert fallback.register(registry, candidate, metadata, shallow, VOCAB, {}) == version
    assert registry.versions() == [candidate, version] and registry.latest() == candidate
    # In MLflow like a trained version: a run with its test metric and model, and a registered version.
    from models.tracking import REGISTERED_MODEL, VERSION_TAG, Tracking

    tracked = registry.metadata(version)["mlflow"]
    client = Tracking(tmp_path).client
    run = client.get_run(tracked["run_id"])
    assert run.data.metrics["test.ndcg_at_10"] == 0.5 and run.data.tags["im.kind"] == "fallback"
    assert client.get_model_version(REGISTERED_MODEL, tracked["model_version"]).tags[VERSION_TAG] == version
    loaded = load_version(registry.version_dir(version))  # the file hashes are checked here
    explained: dict = {}
    probabilities, new = loaded.predict_encoded(test, explained=explained)
    np.testing.assert_allclose(probabilities, shallow.scores(test), atol=1e-5)
    assert np.all((0 <= new) & (new <= 1)) and not set(explained) & {"attention"}
    top = np.argsort(-probabilities, axis=1)[:, :3]
    lines = explain(top, np.take_along_axis(probabilities, top, axis=1), ["", "(other)", *VOCAB.categories],
                    explained["habit_logit"], explained["sequence_logit"], habit_at_zero(loaded.model),
                    test["window_events"] > 0, test["categories"]).to_pylist()
    assert all(line.count("(") == 3 for line in lines) and any("own habits" in line for line in lines)
    # Its files are hashed like a trained version's: one changed byte and it no longer loads.
    weights = next((registry.version_dir(version) / "saved_model" / "variables").glob("*.data-*"))
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="differ from registration"):
        load_version(registry.version_dir(version))


def _decision(promoted: bool, champion: str | None) -> dict:
    return {"promoted": promoted, "previous_champion": champion, "candidate": "x", "reason": "r",
            "best_baseline": "shallow", "best_baseline_value": 0.6, "metric": "ndcg@10",
            "test_cutoff": dt.date(2024, 10, 7), "test_origins": "2024-10-05,2024-10-06,2024-10-07"}


def test_a_fallback_replaces_no_champion_or_an_older_fallback_never_a_trained_model(fitted, tmp_path):
    shallow, _ = fitted
    registry = Registry(tmp_path)
    old_candidate, old_metadata = _candidate(registry, "2024-10-01")
    candidate, metadata = _candidate(registry, "2024-10-08")
    day, old_day = dt.date(2024, 10, 8), dt.date(2024, 10, 1)
    assert fallback.wanted(registry, _decision(False, None), metadata, day)
    assert not fallback.wanted(registry, _decision(True, None), metadata, day)
    # Evaluated on a later date: the regression would be fitted on cutoffs the candidate never saw.
    assert not fallback.wanted(registry, _decision(False, None), metadata, day + dt.timedelta(days=1))
    # A trained champion beat the baselines when it was promoted: only the gate replaces it.
    assert not fallback.wanted(registry, _decision(False, old_candidate), metadata, day)
    older = fallback.register(registry, old_candidate, old_metadata, shallow, VOCAB, {})
    assert fallback.wanted(registry, _decision(False, older), metadata, day)
    newer = fallback.register(registry, candidate, metadata, shallow, VOCAB, {})
    assert not fallback.wanted(registry, _decision(False, newer), old_metadata, old_day)  # never an older one
    assert not fallback.wanted(registry, _decision(False, None), registry.metadata(newer), day)  # nor a fallback
    row = fallback.decision(newer, {**_decision(False, older), "candidate": candidate})
    assert row["promoted"] and row["previous_champion"] == older and row["reason"].startswith(f"fallback {newer}")


def test_a_fallback_champion_has_nothing_to_warm_start_from(fitted, tmp_path, capsys):
    from jobs.core.errors import PipelineError
    from jobs.train import _warm_start_source

    shallow, _ = fitted
    registry = Registry(tmp_path)
    candidate, metadata = _candidate(registry, "2024-10-08")
    registry.set_champion(fallback.register(registry, candidate, metadata, shallow, VOCAB, {}), {"reason": "test"})
    config = {"vocabulary_size": VOCAB.size, "sequence_length": LENGTH, "d_model": 16, "encoder": "transformer"}
    assert _warm_start_source(registry, config, "auto") is None
    assert "is the shallow fallback (no network weights to fine-tune); training from scratch" in capsys.readouterr().out
    with pytest.raises(PipelineError, match="shallow fallback"):
        _warm_start_source(registry, config, "always")
