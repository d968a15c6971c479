"""Distributed training, evaluation and the registry on a tiny generated lake.

Real components throughout: the pipeline's own stages build the lake, two
TensorFlow worker processes train under MultiWorkerMirroredStrategy (the
local launcher here; the Spark barrier launcher runs in tests/test_cluster.py,
on two executors of a real cluster), a worker is killed mid-training and the
group resumes from its checkpoint, and evaluate writes the report and takes
the promotion decision. Training is kept tiny (a few hundred sequences).
"""
from __future__ import annotations

import io
import json
import os
import signal
import threading
import time
from contextlib import redirect_stdout
from pathlib import Path

import pytest

from tests.conftest import MODEL_AS_OF, TINY_TRAINING, run_jobs as run, run_jobs_isolated
from models.registry import Registry

AS_OF, TINY = MODEL_AS_OF, TINY_TRAINING


@pytest.fixture(scope="module")
def lake_root(model_lake) -> Path:
    return model_lake


@pytest.fixture(scope="module")
def trained(trained_version) -> str:
    return trained_version


def test_two_workers_train_a_registered_version(lake_root, trained):
    folder = Registry(lake_root).version_dir(trained)
    metadata = json.loads((folder / "metadata.json").read_text())
    assert metadata["training"]["workers"] == 2 and metadata["training"]["restarts"] == 0
    attempt = metadata["training"]["attempts"][-1]
    # Validation chose the epoch count (of at most 2), and the refit on train + validation ran that many.
    best = metadata["training"]["best_epoch"]
    assert 1 <= attempt["selection"]["epochs_run"] <= 2 and attempt["refit"]["epochs_run"] == best + 1
    assert [e["epoch"] for e in metadata["training"]["validation_by_epoch"]] == list(range(attempt["selection"]["epochs_run"]))
    assert metadata["training"]["validation_sequences"] > 0
    assert set(metadata["calibration"]) == {"category", "new_category"}
    assert metadata["training_window"]["labels_end"] > metadata["training_window"]["validation_cutoff"]
    assert (folder / "saved_model" / "saved_model.pb").is_file()
    assert json.loads((folder / "vocabulary.json").read_text())["categories"]
    assert metadata["code_version"] and metadata["training_window"]["horizon_days"] == 1
    # Both workers ran and joined the same cluster of two.
    logs = sorted((folder / "run" / "logs").glob("worker-*.attempt-0.log"))
    assert len(logs) == 2
    _tracked_in_mlflow_with_readable_training_curves(lake_root, trained, metadata)


def _tracked_in_mlflow_with_readable_training_curves(lake: Path, version: str, metadata: dict) -> None:
    """The version's MLflow run (parameters, one loss per epoch of each phase, the model and TensorBoard logs as
    artifacts), its registered model version, and TensorBoard curves that TensorBoard's own reader parses."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from models.tracking import REGISTERED_MODEL, VERSION_TAG, Tracking

    client = Tracking(lake).client
    run = client.get_run(metadata["mlflow"]["run_id"])
    assert run.info.status == "FINISHED" and run.data.tags[VERSION_TAG] == version
    assert run.data.params["training.workers"] == "2" and run.data.params["model.sequence_length"]
    attempt = metadata["training"]["attempts"][-1]
    for phase in ("selection", "refit"):
        history = client.get_metric_history(run.info.run_id, f"{phase}.loss")
        assert [m.value for m in history] == attempt[phase]["loss"]
    assert len(client.get_metric_history(run.info.run_id, "validation.ndcg_at_10")) == attempt["selection"]["epochs_run"]
    listed = {a.path for a in client.list_artifacts(run.info.run_id, "model")}
    assert {"model/saved_model", "model/metadata.json", "model/vocabulary.json"} <= listed
    registered = client.get_model_version(REGISTERED_MODEL, metadata["mlflow"]["model_version"])
    assert registered.tags[VERSION_TAG] == version and registered.run_id == run.info.run_id
    board = Registry(lake).version_dir(version) / "tensorboard"
    for phase, tag, count in (("refit", "epoch_loss", attempt["refit"]["epochs_run"]),
                              ("selection", "epoch_ndcg@10", attempt["selection"]["epochs_run"])):
        logs = next(p for p in board.glob(f"{phase}/*") if p.is_dir() and tag in _tensor_tags(EventAccumulator, p))
        assert len(EventAccumulator(str(logs), size_guidance={"tensors": 0}).Reload().Tensors(tag)) == count
    assert {a.path for a in client.list_artifacts(run.info.run_id, "tensorboard")} >= {"tensorboard/refit",
                                                                                      "tensorboard/selection"}


def _tensor_tags(accumulator, folder: Path) -> list[str]:
    return accumulator(str(folder), size_guidance={"tensors": 0}).Reload().Tags()["tensors"]


def test_evaluate_writes_the_report_and_records_the_promotion_decision(spark, lake_root, trained, connect_server):
    # evaluate runs TensorFlow inference in its own process, as it does in production (tests/isolated.py), a
    # client of the suite's Spark Connect server as `make run` runs it (no driver of its own to start, twice).
    code, out, err = run_jobs_isolated("evaluate", "--lake", str(lake_root), "--version", trained,
                                       remote=connect_server)
    assert code == 0, err
    report = Registry(lake_root).version_dir(trained) / "report"
    metrics = json.loads((report / "metrics.json").read_text())
    overall, migration = metrics["ranking"]["all"], metrics["ranking"]["migration"]
    assert len(metrics["test_cutoffs"]) == 3 and set(overall["per_origin"]) == set(metrics["test_cutoffs"])
    for method in ("model", "popularity", "user_frequency", "recency_frequency", "markov", "shallow",
                   "oracle_latent_focus", "oracle_user_parameters"):
        assert set(overall["pooled"][method]) >= {"recall@1", "ndcg@5", "hr@10"}
        if method != "model":
            interval = overall["intervals"][method]
            assert interval["low"] <= interval["difference"] <= interval["high"]
    assert {"popularity", "markov", "focus_transition", "shallow"} <= set(migration["pooled"])
    assert "user_frequency" not in migration["pooled"]
    assert 0 <= metrics["calibration"]["category"]["ece_acted_on"] <= 1
    assert 0 <= metrics["category"]["auc"] <= 1 and 0 <= metrics["new_category"]["f1"] <= 1
    for origin in metrics["test_cutoffs"]:
        assert set(metrics["inventory"][origin]) == {"model", "last_horizon"}
        assert 0 <= metrics["marketing"][origin]["model_share"] <= 1
    assert metrics["explanations"] and any("recent:" in e["explanation"] for e in metrics["explanations"])
    page = (report / "report.html").read_text()
    assert "<svg" in page and metrics["explanations"][0]["explanation"].split(" ")[0] in page
    decisions = spark.read.format("delta").load(str(lake_root / "model_decisions")).orderBy("decided_at").collect()
    own = decisions[0]
    assert own["candidate"] == trained and own["reason"]
    assert own["test_origins"] == ",".join(metrics["test_cutoffs"])
    assert own["baseline_low"] <= own["baseline_difference"] <= own["baseline_high"]
    registry = Registry(lake_root)
    if own["promoted"]:
        assert registry.champion() == trained and len(decisions) == 1
    else:
        # Not promoted, and no champion before: the shallow baseline fitted beside it is served instead
        # (jobs/evaluate/fallback.py), with a decision row of its own that names the candidate.
        backup = registry.champion()
        assert backup != trained and registry.metadata(backup)["fallback_for"] == trained
        assert [(d["candidate"], d["promoted"]) for d in decisions] == [(trained, False), (backup, True)]
        assert decisions[1]["reason"].startswith(f"fallback {backup}") and trained in decisions[1]["reason"]
        assert f"fallback {backup}" in out and registry.latest() == trained
    _evaluation_tracked_in_mlflow(lake_root, trained, metrics, registry.champion())
    # A retry of the same task: the recorded decisions stand, none is added, the pointer is where it was, and
    # the origins are not scored again.
    pointer = registry.champion()
    code, out, err = run_jobs_isolated("evaluate", "--lake", str(lake_root), "--version", trained,
                                       remote=connect_server)
    assert code == 0, err
    assert f"already decided on {metrics['as_of_date']}" in out and own["reason"] in out
    again = spark.read.format("delta").load(str(lake_root / "model_decisions"))
    assert again.count() == len(decisions) and registry.champion() == pointer


def _evaluation_tracked_in_mlflow(lake: Path, version: str, metrics: dict, champion: str) -> None:
    """Evaluate's test metrics, intervals against every baseline, decision and report on the version's run; the
    champion is the registered model's alias, and the alias is what Registry.champion() reads."""
    from models.tracking import CHAMPION_ALIAS, REGISTERED_MODEL, VERSION_TAG, Tracking

    client = Tracking(lake).client
    run = client.get_run(Registry(lake).metadata(version)["mlflow"]["run_id"])
    logged, overall = run.data.metrics, metrics["ranking"]["all"]
    assert logged["test.all.model.ndcg_at_10"] == pytest.approx(overall["pooled"]["model"]["ndcg@10"])
    for baseline, interval in overall["intervals"].items():
        assert logged[f"test.all.model_minus_{baseline}.low"] == pytest.approx(interval["low"])
    assert logged["test.category.auc"] == pytest.approx(metrics["category"]["auc"])
    assert {"test.new_category.f1", "test.new_category.recall", "test.category.calibration.ece"} <= set(logged)
    assert run.data.tags["im.promoted"] == str(metrics["promotion"]["promoted"])
    assert {"report/report.html", "report/metrics.json"} <= {a.path for a in client.list_artifacts(run.info.run_id,
                                                                                                "report")}
    links = json.loads(Path(client.download_artifacts(run.info.run_id, "links.json")).read_text())
    assert links["report"].endswith(f"{version}/report/report.html") and Path(links["report"]).is_file()
    alias = client.get_model_version_by_alias(REGISTERED_MODEL, CHAMPION_ALIAS)
    assert alias.tags[VERSION_TAG] == champion


def _train_killing_worker_1_at_epoch_3(lake: Path, *args: str) -> tuple[str, tuple[int, str, str]]:
    """``train ARGS`` on ``lake`` with two workers; worker 1 is killed once the chief has begun epoch 3 of 4 of the selection
    phase. The new version and the run's (code, stdout, stderr)."""
    registry = Registry(lake)
    before = set(registry.versions())
    result = {}

    def train():
        result["run"] = run("train", "--lake", str(lake), "--date", AS_OF.isoformat(), "--workers", "2",
                            *args)

    thread = threading.Thread(target=train)
    thread.start()
    killed = False
    deadline = time.time() + 400
    while thread.is_alive() and time.time() < deadline and not killed:
        for folder in (registry.root / "versions").iterdir():
            log = folder / "run" / "logs" / "worker-0.attempt-0.log"
            pids = folder / "run" / "workers.json"
            if folder.name not in before and log.exists() and "Epoch 3/4" in log.read_text() and pids.exists():
                os.kill(json.loads(pids.read_text())["pids"][1], signal.SIGKILL)
                killed = True
        time.sleep(0.2)
    thread.join(timeout=400)
    assert killed, f"worker never reached epoch 3: {result.get('run')}"
    return (set(registry.versions()) - before).pop(), result["run"]


def test_a_warm_started_version_fine_tunes_the_champion_and_a_killed_worker_resumes_from_the_checkpoint(
        lake_root, trained, connect_server):
    """One training run proves both (each costs a two-worker TensorFlow group): it starts from the champion's
    weights, worker 1 is killed in epoch 3 of 4 of the selection phase (patience 4: validation must not stop the
    run before), and the restarted group resumes from its checkpoint, not from epoch 1."""
    registry = Registry(lake_root)
    before = registry.champion()
    registry.set_champion(trained, {"reason": "set by the warm-start test"})
    try:
        version, (code, out, err) = _train_killing_worker_1_at_epoch_3(
            lake_root, "--warm-start", "--epochs", "4", "--patience", "4", "--batch-size", "64", "--d-model", "16",
            "--blocks", "1", "--checkpoint-every", "2")
        assert code == 0, err + out
        training = registry.metadata(version)["training"]
        assert training["restarts"] == 1
        # The restarted group began the selection phase at epoch 3 or later (index >= 2), not at epoch 1.
        assert training["attempts"][-1]["selection"]["first_epoch"] >= 2
        assert training["attempts"][-1]["selection"]["epochs_run"] <= 2
        assert version != trained and training["warm_start_from"] == trained
        log = (registry.version_dir(version) / "run" / "logs" / "worker-0.attempt-0.log").read_text()
        assert f"warm start from {trained}" in log
        # Judged against the champion on sequences built as scoring builds them for it: here a history one
        # day shorter than this lake's cutoffs (as on a young lake, where each night's is a day longer).
        metadata = registry.metadata(trained)
        shorter = {**metadata, "training_window": {**metadata["training_window"], "history_days": 1}}
        registry.write_metadata(trained, shorter)
        try:
            code, out, err = run_jobs_isolated("evaluate", "--lake", str(lake_root), "--version", version,
                                               "--no-promote", remote=connect_server)
        finally:
            registry.write_metadata(trained, metadata)
        assert code == 0, err
        metrics = json.loads((registry.version_dir(version) / "report" / "metrics.json").read_text())
        champion = metrics["ranking"]["all"]["intervals"]["champion"]
        assert champion["rows"] > 0 and champion["origins"] == metrics["test_cutoffs"]
        folders = sorted((registry.root / "versions").iterdir())
        code, out, err = run("train", "--lake", str(lake_root), "--date", AS_OF.isoformat(), "--warm-start",
                             "--encoder", "lstm", *TINY)
        assert code == 1 and "another architecture encoder transformer (here lstm)" in err
        assert sorted((registry.root / "versions").iterdir()) == folders  # refused before any folder or shard
        # auto: the same mismatch trains from scratch instead (no champion to start from), and says so. The
        # choice is train's own function; what a from-scratch run does is the rest of this module's subject.
        from jobs.train import _warm_start_source

        lstm = {**registry.metadata(trained)["model"], "encoder": "lstm"}
        printed = io.StringIO()
        with redirect_stdout(printed):
            assert _warm_start_source(registry, lstm, "auto") is None
        assert "another architecture encoder transformer (here lstm); training from scratch" in printed.getvalue()
        assert _warm_start_source(registry, registry.metadata(trained)["model"], "auto")["version"] == trained
    finally:
        if before is None:
            registry.clear_champion()
        else:
            registry.set_champion(before)
