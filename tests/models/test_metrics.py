"""Metric functions against examples computed by hand."""
from __future__ import annotations

import math

import numpy as np
import pytest

from models.calibration import apply_platt, fit_platt
from models.intervals import paired_interval, verdict
from models.metrics import calibration, classification, per_user_ranking, ranking_metrics, roc_auc


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


def test_classification_view_by_hand():
    p = np.array([0.9, 0.6, 0.4, 0.2, 0.7])
    y = np.array([1, 0, 1, 0, 1])
    c = classification(p, y, threshold=0.5)
    # Predicted positive: 0.9, 0.6, 0.7 -> two of three right; two of three positives found.
    assert c["precision"] == pytest.approx(2 / 3) and c["recall"] == pytest.approx(2 / 3)
    assert c["f1"] == pytest.approx(2 / 3)
    # Positive/negative pairs ordered right: (0.9 > 0.6, 0.2), (0.4 < 0.6, > 0.2), (0.7 > 0.6, 0.2): 5 of 6.
    assert c["auc"] == pytest.approx(5 / 6)
    assert math.isnan(roc_auc(p, np.ones(5)))


def test_near_zero_cells_do_not_dilute_the_acted_on_calibration_error():
    # 10 cells predicted 0.5 of which none happened, and 990 trivially right near-zero cells.
    p = np.concatenate([np.full(10, 0.5), np.full(990, 0.001)])
    y = np.zeros(1000)
    c = calibration(p, y)
    assert c["ece"] < 0.01
    assert c["ece_acted_on"] == pytest.approx(0.5) and c["acted_on"] == 10


def test_per_user_values_average_to_the_reported_metrics():
    rng = np.random.default_rng(0)
    scores, relevant = rng.random((50, 12)), rng.random((50, 12)) < 0.15
    users, values = per_user_ranking(scores, relevant)
    summary = ranking_metrics(scores, relevant)
    assert summary["users"] == users.sum() == len(values["ndcg@10"])
    assert summary["ndcg@10"] == pytest.approx(values["ndcg@10"].mean())


def test_paired_interval_covers_a_known_difference_and_is_centred_on_zero_without_one():
    rng = np.random.default_rng(1)
    base = rng.random(2000)
    better = paired_interval(base + 0.05 + rng.normal(0, 0.01, 2000), base, np.arange(2000))
    assert better["low"] < 0.05 < better["high"] and verdict(better) == "better"
    same = paired_interval(base + rng.normal(0, 0.05, 2000), base, np.arange(2000))
    assert verdict(same) == "not significant" and same["low"] < 0 < same["high"]
    assert verdict(paired_interval(base, base + 0.05, np.arange(2000))) == "worse"


def test_a_user_counted_at_several_origins_is_resampled_as_one():
    # 40 users, each repeated at 3 origins with the same difference: 120 rows, but only 40 independent ones.
    rng = np.random.default_rng(2)
    per_user = rng.normal(0.0, 1.0, 40)
    rows, users = np.repeat(per_user, 3), np.repeat(np.arange(40), 3)
    clustered = paired_interval(rows, np.zeros(120), users)
    naive = paired_interval(rows, np.zeros(120), np.arange(120))
    assert clustered["clusters"] == 40 and clustered["rows"] == 120
    assert (clustered["high"] - clustered["low"]) > 1.4 * (naive["high"] - naive["low"])


def test_platt_scaling_repairs_an_overconfident_head():
    # Truth: P(y) = 0.2 wherever the head says 0.6, and 0.05 where it says 0.3.
    rng = np.random.default_rng(4)
    p = np.where(rng.random(40_000) < 0.5, 0.6, 0.3)
    y = rng.random(40_000) < np.where(p == 0.6, 0.2, 0.05)
    before = calibration(p, y)["ece"]
    fixed = apply_platt(p, fit_platt(p, y))
    assert before > 0.2 and calibration(fixed, y)["ece"] < 0.01
    assert fit_platt(p, np.zeros_like(y)) == (1.0, 0.0)  # nothing to fit: left as it is
    # A head whose higher probabilities come true less often: no scaling may invert its ranking.
    inverted = rng.random(40_000) < np.where(p == 0.6, 0.05, 0.2)
    assert fit_platt(p, inverted) == (1.0, 0.0)
