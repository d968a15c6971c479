"""The skeptic's baselines on hand-built histories whose right answer is known."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from models import baselines
from models.encoding import encode_sequences
from models.metrics import ranking_metrics
from models.shallow import fit_shallow
from models.vocabulary import Vocabulary

VOCAB = Vocabulary(("a", "b", "c", "d", "e"))
SIZE = VOCAB.size


def _table(users: list[dict]) -> pa.Table:
    """One row per user: ``steps`` is [(category, age bucket, starts a session)], oldest first; ``label`` a list."""
    def column(key, i):
        return [[step[i] for step in u["steps"]] for u in users]

    windows = []
    for u in users:
        counts: dict[str, int] = {}
        for category, _, _ in u["steps"]:
            counts[category] = counts.get(category, 0) + 1
        windows.append(sorted(counts.items()))
    return pa.table({
        "history_categories": column("c", 0), "history_event_types": [["view"] * len(u["steps"]) for u in users],
        "history_gap_buckets": [[1] * len(u["steps"]) for u in users], "history_age_buckets": column("a", 1),
        "history_session_starts": column("s", 2),
        "window_categories": [[c for c, _ in w] for w in windows],
        "window_category_events": [[n for _, n in w] for w in windows],
        "window_category_sessions": [[1 for _ in w] for w in windows],
        "window_category_days": [[1 for _ in w] for w in windows],
        "window_category_age_seconds": [[3600.0 for _ in w] for w in windows],
        "label_categories": pa.array([u["label"] for u in users], pa.list_(pa.string())),
        "has_new_category": [any(c not in dict(w) for c in u["label"]) for u, w in zip(users, windows)],
    })


def _encode(users):
    return encode_sequences(_table(users), VOCAB, length=6)


def _id(category: str) -> int:
    return VOCAB.index()[category]


def _exclude(encoded, seen: bool = False):
    out = np.zeros_like(encoded["seen"], dtype=bool)
    out[:, :2] = True
    return out | (encoded["window_events"] > 0) if seen else out


# An old habit (four "a" events two weeks ago) against one fresh "b" event an hour ago.
HABIT_THEN_FRESH = [("a", 7, True), ("a", 7, False), ("a", 7, False), ("a", 7, False), ("b", 0, True)]


def test_recency_ranks_the_fresh_category_first_and_an_infinite_decay_is_plain_frequency():
    encoded = _encode([{"steps": HABIT_THEN_FRESH, "label": ["b"]}])
    fit = baselines.fit_baselines(encoded, np.array([True]))
    short = baselines.recency_scores(encoded, fit, decay_days=1.0)
    assert np.argmax(short[0]) == _id("b")
    frequency = baselines.user_frequency_scores(encoded, fit)
    forever = baselines.recency_scores(encoded, fit, decay_days=float("inf"))
    assert np.argmax(forever[0]) == np.argmax(frequency[0]) == _id("a")
    np.testing.assert_allclose(forever, frequency)


def test_the_decay_is_chosen_by_what_validation_users_did():
    encoded = _encode([{"steps": HABIT_THEN_FRESH, "label": ["b"]}] * 3)
    fit = baselines.fit_baselines(encoded, np.ones(3, bool))
    relevant = encoded["label_categories"]
    chosen, results = baselines.choose_decay(encoded, fit, relevant, _exclude(encoded))
    assert chosen.decay_days < 14 and results[chosen.decay_days] == pytest.approx(1.0)
    habit = _encode([{"steps": HABIT_THEN_FRESH, "label": ["a"]}] * 3)
    chosen, _ = baselines.choose_decay(habit, fit, habit["label_categories"], _exclude(habit))
    assert chosen.decay_days >= 14


def test_markov_follows_the_last_category():
    train = _encode([{"steps": [("a", 3, True), ("c", 3, False), ("a", 2, True), ("c", 1, False)], "label": []}] * 2)
    fit = baselines.fit_baselines(train, np.ones(2, bool))
    test = _encode([{"steps": [("d", 1, True), ("a", 0, False)], "label": ["c"]}])
    assert np.argmax(baselines.markov_scores(test, fit)[0]) == _id("c")


def test_focus_transition_ranks_where_users_with_the_same_last_session_moved():
    # Training users whose last session was in "a" moved into "d", new to them; those in "b" moved into "e".
    train = _encode([{"steps": [("c", 5, True), ("a", 0, True)], "label": ["d"]}] * 4
                    + [{"steps": [("c", 5, True), ("b", 0, True)], "label": ["e"]}] * 2)
    fit = baselines.fit_baselines(train, np.ones(6, bool))
    # Popularity alone would say "d" for everyone; the user focused on "b" should get "e".
    test = _encode([{"steps": [("a", 6, True), ("b", 1, True), ("b", 0, False)], "label": ["e"]}])
    scores = baselines.focus_transition_scores(test, fit)
    scores[_exclude(test, seen=True)] = -np.inf
    assert np.argmax(scores[0]) == _id("e")


def test_the_shallow_model_learns_that_the_last_day_matters_more_than_the_window():
    rng = np.random.default_rng(3)
    users = []
    for _ in range(400):
        old, fresh = rng.choice(["a", "b", "c", "d", "e"], 2, replace=False)
        steps = [(old, 7, i == 0) for i in range(3)] + [(fresh, 0, True)]
        users.append({"steps": steps, "label": [fresh] if rng.random() < 0.8 else [old]})
    train, test = _encode(users[:300]), _encode(users[300:])
    fit = baselines.fit_baselines(train, np.ones(300, bool))
    shallow = fit_shallow(train, fit)
    exclude = _exclude(test)
    learned = ranking_metrics(shallow.scores(test), test["label_categories"], exclude)["ndcg@1"]
    frequency = ranking_metrics(baselines.user_frequency_scores(test, fit), test["label_categories"], exclude)["ndcg@1"]
    assert learned > 0.7 > frequency
