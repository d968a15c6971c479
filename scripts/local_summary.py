"""What `make run` prints after the nightly runs: the champion's metrics against the baselines.

(Rows per stage, quarantine reasons and the queries go through `python -m jobs sql`.)
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from models.registry import Registry


def main(lake: str) -> int:
    registry = Registry(Path(lake))
    champion = registry.champion()
    if champion is None:
        print("no champion yet: the lake was too young to train on (see choose_training in the DAG's logs)")
        return 0
    report = registry.version_dir(champion) / "report" / "metrics.json"
    metrics = json.loads(report.read_text())
    print(f"champion {champion}: test cutoff {metrics['test_cutoff']}, horizon {metrics['horizon_days']} days, "
          f"{metrics['test_users']:,} test users, {metrics['migrating_users']:,} moving into a new category")
    for group, metric in (("all", "ndcg@10"), ("all", "recall@10"), ("migration", "recall@10")):
        scores = {name: values.get(metric) for name, values in metrics["ranking"][group].items()
                  if isinstance(values, dict) and values.get(metric) is not None}
        line = "  ".join(f"{name} {value:.3f}" for name, value in sorted(scores.items(), key=lambda kv: -kv[1]))
        print(f"  {group:9} {metric:9}  {line}")
    print(f"  report: {report.parent / 'report.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
