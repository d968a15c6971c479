"""What `make run` prints after the nightly runs: the champion's metrics against the baselines.

(Rows per stage, quarantine reasons and the queries go through `python -m jobs sql`.)
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from models.registry import FALLBACK_FOR, Registry


def main(lake: str) -> int:
    registry = Registry(Path(lake))
    champion = registry.champion()
    if champion is None:
        trained = registry.versions()
        print(f"no champion yet: none of the {len(trained)} trained versions beat the baselines by more than noise "
              "(model_decisions above)" if trained else
              "no champion yet: the lake was too young to train on (see choose_training in the DAG's logs)")
        return 0
    judged = registry.metadata(champion).get(FALLBACK_FOR)
    if judged:
        # A fallback champion (jobs/evaluate/fallback.py) has no report of its own: the candidate's, in which it
        # is the "shallow" row, says why it is served.
        print(f"champion {champion}: the shallow baseline, served because trained candidate {judged} did not beat "
              "it by more than noise; that evaluation (model = the candidate):")
    report = registry.version_dir(judged or champion) / "report" / "metrics.json"
    metrics = json.loads(report.read_text())
    print(f"{'evaluated' if judged else 'champion'} {judged or champion}: "
          f"test origins {', '.join(metrics['test_cutoffs'])}, horizon "
          f"{metrics['horizon_days']} days, {sum(metrics['test_users'].values()):,} user-origins, "
          f"{sum(metrics['migrating_users'].values()):,} moving into a new category")
    for group, label in (("all", "NDCG@10"), ("migration", "migration Recall@10")):
        ranking = metrics["ranking"][group]
        pooled = {name: values[ranking["metric"]] for name, values in ranking["pooled"].items()}
        line = "  ".join(f"{name} {value:.3f}" for name, value in sorted(pooled.items(), key=lambda kv: -kv[1]))
        print(f"  {label:20} {line}")
        intervals = ranking["intervals"]
        print(f"  {'model minus':20} " + "  ".join(
            f"{name} {i['difference']:+.3f} [{i['low']:+.3f}, {i['high']:+.3f}]" for name, i in intervals.items()))
    print(f"  report: {report.parent / 'report.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
