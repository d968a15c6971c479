"""The behaviour-only ceiling: between a count of the user's own events and the oracle that knows their parameters."""
from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from jobs.generate.world import CATEGORIES
from models import ceiling, oracle
from models.metrics import ranking_metrics
from tests.models.simulation import simulate

SEED, USERS, HORIZON = 7, 1200, 3
DAYS = [dt.date(2024, 10, 1) + dt.timedelta(days=d) for d in range(17)]
CUTOFF = DAYS[14]


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    """Ground truth as the generator writes it, events before the cutoff, and who engaged with what after it."""
    truth = tmp_path_factory.mktemp("truth")
    ids, _, events, table = simulate(truth, SEED, USERS, DAYS)
    cutoff_us = int(dt.datetime.combine(CUTOFF, dt.time(), dt.timezone.utc).timestamp()) * 1_000_000
    end_us = cutoff_us + HORIZON * 86_400_000_000
    before = events.ts_us < cutoff_us
    after = (events.ts_us >= cutoff_us) & (events.ts_us < end_us)
    labels = np.zeros((USERS, len(CATEGORIES)))
    labels[events.user[after], events.category[after]] = 1
    counts = np.zeros((USERS, len(CATEGORIES)))
    np.add.at(counts, (events.user[before], events.category[before]), 1)
    return truth, ids, table.filter(pa.array(before)), labels, counts


@pytest.fixture(scope="module")
def whole_history(simulated):
    """The ceiling from every event since the generator's first day (about 10 ms per user)."""
    truth, ids, events, _, _ = simulated
    return ceiling.engagement_probabilities(truth, ids, events, CUTOFF, HORIZON)


def test_the_ceiling_lies_between_own_counts_and_the_oracle_that_knows_the_parameters(simulated, whole_history):
    truth, ids, events, labels, counts = simulated
    probabilities = whole_history
    assert probabilities.shape == labels.shape and (probabilities >= 0).all() and (probabilities <= 1).all()
    belief = oracle.filtered_focus(truth, ids, events, CUTOFF)
    knows_parameters, _ = oracle.engagement_probabilities(truth, ids, CUTOFF, HORIZON, focus_belief=belief)
    ndcg = {name: ranking_metrics(scores + 1e-9 * counts.sum(axis=0), labels)["ndcg@10"]
            for name, scores in (("counts", counts), ("ceiling", probabilities), ("parameters", knows_parameters))}
    assert ndcg["counts"] + 0.01 < ndcg["ceiling"] <= ndcg["parameters"] + 0.005, ndcg
    # Probabilities, not only a ranking: the expected number of engaged categories matches what happened.
    assert abs(probabilities.sum() / labels.sum() - 1) < 0.1, probabilities.sum() / labels.sum()


def test_a_user_without_events_gets_the_population_prior(simulated):
    truth, ids, events, _, _ = simulated
    others = events.filter(pc.invert(pc.is_in(events["user_id"], pa.array(ids[:2]))))
    probabilities = ceiling.engagement_probabilities(truth, ids[:2], others, CUTOFF, HORIZON)
    assert np.allclose(probabilities[0], probabilities[1]) and probabilities[0].max() < 0.3


def test_a_shorter_history_window_sees_less_and_ranks_worse(simulated, whole_history):
    truth, ids, events, labels, counts = simulated
    full = whole_history
    week = ceiling.engagement_probabilities(truth, ids, events, CUTOFF, HORIZON, history_days=7)
    start = pa.scalar(dt.datetime.combine(CUTOFF - dt.timedelta(days=7), dt.time(), dt.timezone.utc),
                      events["event_ts"].type)
    only_week = events.filter(pc.greater_equal(events["event_ts"], start))
    # The window is what it reads: the events before it change nothing.
    assert np.allclose(week, ceiling.engagement_probabilities(truth, ids, only_week, CUTOFF, HORIZON, history_days=7))
    ndcg = {name: ranking_metrics(scores, labels)["ndcg@10"] for name, scores in (("full", full), ("week", week))}
    assert ndcg["week"] < ndcg["full"] - 0.01, ndcg
