"""Metric functions against examples computed by hand."""
from __future__ import annotations

import math

import numpy as np
import pytest

from models.metrics import calibration, ranking_metrics


def test_ranking_metrics_match_a_hand_computed_example():
    # Columns 0..4. User 1 engaged with {1, 3}, ranked [3, 0, 1, 2, 4]: hits at ranks 1 and 3.
    # User 2 engaged with {4}, ranked [0, 1, 2, 3, 4]: hit at rank 5. User 3 engaged with nothing: left out.
    scores = np.array([[0.8, 0.5, 0.2, 0.9, 0.1], [0.9, 0.8, 0.7, 0.6, 0.5], [0.9, 0.8, 0.7, 0.6, 0.5]])
    relevant = np.array([[0, 1, 0, 1, 0], [0, 0, 0, 0, 1], [0, 0, 0, 0, 0]])
    m = ranking_metrics(scores, relevant, ks=(1, 5))
    assert m["users"] == 2
    assert m["recall@1"] == pytest.approx((1 / 2 + 0) / 2)
    assert m["hr@1"] == pytest.approx(0.5)
    assert m["recall@5"] == pytest.approx(1.0)
    ndcg_user1 = (1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3))
    ndcg_user2 = (1 / math.log2(6)) / 1
    assert m["ndcg@5"] == pytest.approx((ndcg_user1 + ndcg_user2) / 2)
    assert m["ndcg@1"] == pytest.approx((1 + 0) / 2)


def test_excluded_columns_are_never_ranked_but_still_count_as_relevant():
    # Column 0 (say, out-of-vocabulary) is relevant but excluded: recall can reach 1/2 at most.
    scores = np.array([[0.9, 0.1, 0.5]])
    relevant = np.array([[1, 1, 0]])
    exclude = np.array([[True, False, False]])
    m = ranking_metrics(scores, relevant, exclude, ks=(1, 2))
    assert m["recall@1"] == 0.0 and m["recall@2"] == pytest.approx(0.5)
    assert m["ndcg@2"] == pytest.approx((1 / math.log2(3)) / (1 + 1 / math.log2(3)))


def test_calibration_ece_and_brier_by_hand():
    p = np.array([0.05, 0.05, 0.95, 0.95, 0.55])
    y = np.array([0, 1, 1, 1, 0])
    c = calibration(p, y, bins=10)
    # bin 0: mean 0.05 vs 0.5 (2 rows); bin 9: 0.95 vs 1.0 (2 rows); bin 5: 0.55 vs 0 (1 row).
    assert c["ece"] == pytest.approx((2 * 0.45 + 2 * 0.05 + 1 * 0.55) / 5)
    assert c["brier"] == pytest.approx((0.05**2 + 0.95**2 + 0.05**2 + 0.05**2 + 0.55**2) / 5)
    assert [r["count"] for r in c["reliability"]] == [2, 0, 0, 0, 0, 1, 0, 0, 0, 2]


def test_a_perfectly_calibrated_constant_has_zero_ece():
    y = np.array([1, 0, 0, 0] * 25)
    assert calibration(np.full(100, 0.25), y)["ece"] == pytest.approx(0.0)
