"""The promotion gate: a candidate replaces the champion only when it wins by more than noise.

Promote when, pooled over the rolling test origins,

- the lower bound of the 95% paired interval of the candidate's NDCG@10 minus
  the strongest baseline's (by pooled NDCG@10) is above zero;
- the same holds against the champion, on the origins whose labels the
  champion never trained on (none left: no promotion, the two cannot be
  compared fairly);
- its migration Recall@10 is not significantly worse (the interval's upper
  bound is not below zero) than the strongest migration baseline's or the
  champion's.

A first candidate that only ties the baselines is not promoted: its
predictions are no better than counting. What is served then is the learned
shallow baseline itself, as a fallback champion (``jobs/evaluate/fallback.py``). Pure Python: ``jobs/evaluate/main.py``
records the decision and moves the pointer.
"""
from __future__ import annotations

import datetime as dt

from models.evaluation import BASELINES, MIGRATION_BASELINES

CHAMPION = "champion"


def decide(version: str, champion: str | None, ranking: dict, test_cutoffs: list[dt.date]) -> dict:
    """The decision record for ``model_decisions`` (``ranking`` is ``models.evaluation.ranking``'s result)."""
    overall, migration = ranking["all"], ranking["migration"]
    metric = overall["metric"]
    best = _strongest(overall["pooled"], BASELINES, metric)
    best_migration = _strongest(migration["pooled"], MIGRATION_BASELINES, migration["metric"])
    against_baseline = overall["intervals"][best]
    reasons, promoted = [], True
    # "not low > 0" rather than "low <= 0": an interval over no rows is NaN, and NaN proves nothing.
    if not against_baseline.get("rows") or not against_baseline["low"] > 0:
        promoted = False
        reasons.append(f"its lead over {best} is not significant: NDCG@10 {_interval(against_baseline)}")
    migration_interval = migration["intervals"].get(best_migration)
    if migration_interval and migration_interval.get("rows") and migration_interval["high"] < 0:
        promoted = False
        reasons.append(f"its migration Recall@10 is below {best_migration}'s: {_interval(migration_interval)}")
    against_champion = overall["intervals"].get(CHAMPION)
    champion_migration = migration["intervals"].get(CHAMPION)
    if champion == version:
        promoted = False
        reasons = [f"{version} is already the champion"]
    elif champion is not None:
        if against_champion is None or not against_champion.get("rows"):
            promoted = False
            reasons.append(f"no test origin is free of champion {champion}'s training labels")
        elif not against_champion["low"] > 0:
            promoted = False
            reasons.append(f"its lead over champion {champion} is not significant: NDCG@10 {_interval(against_champion)}")
        if champion_migration and champion_migration.get("rows") and champion_migration["high"] < 0:
            promoted = False
            reasons.append(f"its migration Recall@10 is below champion {champion}'s: {_interval(champion_migration)}")
    value = overall["pooled"]["model"][metric]
    if promoted:
        reason = (f"promoted {version}: NDCG@10 {value:.4f}, {_interval(against_baseline)} over {best}"
                  + (f" and {_interval(against_champion)} over champion {champion}" if champion else
                     "; no champion before"))
    else:
        reason = f"kept {champion or 'no champion'}: " + "; ".join(reasons)
    champion_pooled = overall["pooled"].get(CHAMPION, {}).get(metric)
    return {
        "decided_at": dt.datetime.now(dt.timezone.utc), "candidate": version, "previous_champion": champion,
        "promoted": promoted, "metric": metric, "candidate_value": value, "champion_value": champion_pooled,
        "best_baseline": best, "best_baseline_value": overall["pooled"][best][metric],
        "test_cutoff": max(test_cutoffs), "reason": reason,
        "test_origins": ",".join(str(c) for c in sorted(test_cutoffs)),
        "baseline_difference": against_baseline["difference"], "baseline_low": against_baseline["low"],
        "baseline_high": against_baseline["high"],
        "champion_difference": (against_champion or {}).get("difference"),
        "champion_low": (against_champion or {}).get("low"), "champion_high": (against_champion or {}).get("high"),
        "migration_baseline": best_migration,
        "migration_difference": (migration_interval or {}).get("difference"),
        "migration_low": (migration_interval or {}).get("low"), "migration_high": (migration_interval or {}).get("high"),
    }


def _strongest(pooled: dict, names: tuple[str, ...], metric: str) -> str:
    present = [n for n in names if n in pooled]
    return max(present, key=lambda n: pooled[n][metric])


def _interval(interval: dict) -> str:
    return f"{interval['difference']:+.4f} [{interval['low']:+.4f}, {interval['high']:+.4f}]"
