"""The two oracles on the generator's own simulation: true focus, and the behaviour-only HMM filter."""
from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pytest

from jobs.generate.world import CATEGORIES
from models import oracle
from tests.models.simulation import simulate

SEED, USERS = 11, 1500
DAYS = [dt.date(2024, 10, 1) + dt.timedelta(days=d) for d in range(14)]
CUTOFF = DAYS[-1] + dt.timedelta(days=1)


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    """Ground truth written as the generator writes it, and the users' events as the lake holds them."""
    truth = tmp_path_factory.mktemp("truth")
    ids, users, _, table = simulate(truth, SEED, USERS, DAYS)
    return truth, ids, users, table


def test_the_filter_recovers_the_latent_focus_from_behaviour(simulated):
    truth, ids, users, events = simulated
    belief = oracle.filtered_focus(truth, ids, events, CUTOFF)
    assert belief.shape == (USERS, len(CATEGORIES)) and np.allclose(belief.sum(axis=1), 1)
    last_focus = users.focus[:, -1]
    accuracy = (belief.argmax(axis=1) == last_focus).mean()
    # A behaviour-only guess: the user's most frequent category over all their events.
    index = {c: i for i, c in enumerate(CATEGORIES)}
    counts = np.zeros((USERS, len(CATEGORIES)))
    np.add.at(counts, (np.array([int(u[1:]) for u in events["user_id"].to_pylist()]),
                       np.array([index[c] for c in events["category"].to_pylist()])), 1)
    active = counts.sum(axis=1) > 0
    frequent = (counts.argmax(axis=1) == last_focus)[active].mean()
    assert accuracy > 0.6 and accuracy > frequent + 0.05, (accuracy, frequent)
    # The posterior is calibrated: its mean confidence matches its accuracy.
    assert abs(belief.max(axis=1).mean() - accuracy) < 0.05


def test_a_certain_belief_reproduces_the_true_focus_oracle(simulated):
    truth, ids, users, _ = simulated
    exact, known = oracle.engagement_probabilities(truth, ids[:50], CUTOFF, 3)
    certain = np.eye(len(CATEGORIES))[users.focus[:50, -1]]
    from_belief, _ = oracle.engagement_probabilities(truth, ids[:50], CUTOFF, 3, focus_belief=certain)
    assert known.all() and np.allclose(exact, from_belief)


def test_without_events_the_belief_is_the_prior_and_other_users_do_not_move_it(simulated):
    import pyarrow.compute as pc

    truth, ids, _, events = simulated
    none = oracle.filtered_focus(truth, ids[:3], events.slice(0, 0), CUTOFF)
    others = oracle.filtered_focus(truth, ids[:3], events.filter(pc.invert(pc.is_in(events["user_id"], pa.array(ids[:3])))), CUTOFF)
    assert np.allclose(none, others) and np.allclose(none.sum(axis=1), 1) and none.max() < 0.2
