"""MLflow as the compose deployment runs it: a real ``mlflow server`` (configured by the same environment
variables as docker-compose.yml's, its artifacts served through it), and the pipeline a client of it through
``IM_MLFLOW_TRACKING_URI``. The lake's own store is covered by the training and registry tests."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from models.registry import Registry
from models.tracking import CHAMPION_ALIAS, REGISTERED_MODEL, VERSION_TAG, Tracking
from tests.conftest import free_port


@pytest.fixture(scope="module")
def tracking_server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    env = {**os.environ, "MLFLOW_BACKEND_STORE_URI": f"sqlite:///{folder / 'mlflow.db'}",
           "MLFLOW_ARTIFACTS_DESTINATION": str(folder / "artifacts"),
           "MLFLOW_SERVER_ALLOWED_HOSTS": f"127.0.0.1:{port},localhost:{port}"}
    log = open(folder / "server.log", "w")
    server = subprocess.Popen([str(Path(sys.executable).parent / "mlflow"), "server", "--host", "127.0.0.1",
                               "--port", str(port), "--serve-artifacts", "--workers", "1"],
                              env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    break
        except OSError:
            pass
        assert server.poll() is None and time.monotonic() < deadline, (folder / "server.log").read_text()[-3000:]
        time.sleep(0.5)
    yield url, folder / "artifacts"
    server.terminate()
    server.wait(timeout=30)
    log.close()


def _a_version(lake: Path, version: str) -> Path:
    """A registered version's folder as train leaves it (its files' contents do not matter to tracking)."""
    registry = Registry(lake)
    folder = registry.version_dir(version)
    folder.mkdir(parents=True)
    (folder / "saved_model").mkdir()
    (folder / "saved_model" / "saved_model.pb").write_bytes(b"\x08\x01")
    (folder / "vocabulary.json").write_text(json.dumps({"categories": ["a", "b"]}))
    (folder / "tensorboard" / "refit").mkdir(parents=True)
    (folder / "tensorboard" / "refit" / "events.out.tfevents.1").write_bytes(b"curve")
    return folder


def test_a_tracking_server_holds_the_runs_the_artifacts_and_the_champion_alias(tracking_server, tmp_path,
                                                                               monkeypatch):
    url, artifacts = tracking_server
    monkeypatch.setenv("IM_MLFLOW_TRACKING_URI", url)
    lake = tmp_path / "lake"
    metadata = {"version": "2024-11-19.1", "as_of_date": "2024-11-19", "status": "trained",
                "model": {"encoder": "transformer", "d_model": 16},
                "training": {"workers": 2, "validation_by_epoch": [{"epoch": 0, "ndcg@10": 0.5}],
                             "attempts": [{"selection": {"first_epoch": 0, "loss": [0.9, 0.7]},
                                           "refit": {"first_epoch": 0, "loss": [0.8]}}]}}
    folder = _a_version(lake, "2024-11-19.1")
    ids = Tracking(lake).log_training("2024-11-19.1", folder, metadata, folder / "tensorboard")
    Registry(lake).write_metadata("2024-11-19.1", {**metadata, "mlflow": ids})
    Registry(lake).set_champion("2024-11-19.1")
    assert Registry(lake).champion() == "2024-11-19.1"
    client = Tracking(lake).client
    run = client.get_run(ids["run_id"])
    assert [m.value for m in client.get_metric_history(run.info.run_id, "selection.loss")] == [0.9, 0.7]
    assert run.info.artifact_uri.startswith("mlflow-artifacts:")  # uploaded through the server
    alias = client.get_model_version_by_alias(REGISTERED_MODEL, CHAMPION_ALIAS)
    assert alias.version == ids["model_version"] and alias.tags[VERSION_TAG] == "2024-11-19.1"
    # The files are on the server's artifact volume, and nothing of MLflow's is in the lake.
    stored = [p.relative_to(artifacts).as_posix() for p in artifacts.rglob("*") if p.is_file()]
    for name in ("model/saved_model/saved_model.pb", "model/metadata.json", "model/vocabulary.json",
                 "tensorboard/refit/events.out.tfevents.1"):
        assert any(path.endswith(f"{ids['run_id']}/artifacts/{name}") for path in stored), (name, stored)
    assert not (lake / "mlflow").exists()
    # Evaluation lands on the same run.
    Tracking(lake).log_evaluation("2024-11-19.1", ids["run_id"], {
        "ranking": {"all": {"pooled": {"model": {"ndcg@10": 0.61}},
                            "intervals": {"shallow": {"difference": 0.01, "low": -0.002, "high": 0.02}}}},
        "promotion": {"promoted": False, "reason": "kept"}}, None, None)
    assert "links.json" in {a.path for a in client.list_artifacts(ids["run_id"])}
    logged = client.get_run(ids["run_id"]).data
    assert logged.metrics["test.all.model.ndcg_at_10"] == 0.61
    assert logged.metrics["test.all.model_minus_shallow.low"] == -0.002 and logged.tags["im.promoted"] == "False"


def test_an_old_lakes_pointer_is_adopted_on_a_server_and_another_lake_never_gets_its_versions(
        tracking_server, tmp_path, monkeypatch):
    """A version with no run (from before tracking) is registered through a run of its own, which the server
    accepts; a second lake under the same MLflow name is refused one line instead of being served the first
    lake's version of the same name; under a name of its own it is independent."""
    from models.registry import atomic_write
    from models.tracking import TrackingError

    url, _ = tracking_server
    monkeypatch.setenv("IM_MLFLOW_TRACKING_URI", url)
    monkeypatch.setenv("IM_MLFLOW_NAME", "adoption_test")
    first, second = tmp_path / "first", tmp_path / "second"
    _a_version(first, "2024-11-02.1")
    Registry(first).write_metadata("2024-11-02.1", {"version": "2024-11-02.1", "as_of_date": "2024-11-02"})
    atomic_write(Registry(first).root / "champion.json", json.dumps({"version": "2024-11-02.1"}))
    assert Registry(first).champion() == "2024-11-02.1"
    assert (Registry(first).root / "champion.json.adopted").is_file()
    with pytest.raises(TrackingError, match="belongs to the lake at .*first.*IM_MLFLOW_NAME"):
        Registry(second).champion()
    with pytest.raises(TrackingError, match="belongs to the lake"):
        Registry(second).set_champion("2024-11-02.1")
    monkeypatch.setenv("IM_MLFLOW_NAME", "adoption_test_second")
    assert Registry(second).champion() is None


def test_a_tracking_server_that_is_down_is_an_error_never_no_champion(monkeypatch, tmp_path):
    """Were it "no champion", the night would skip scoring and succeed, and evaluate would decide as if there
    were none (and let a fallback replace a trained champion)."""
    from jobs.core.errors import PipelineError

    monkeypatch.setenv("IM_MLFLOW_TRACKING_URI", f"http://127.0.0.1:{free_port()}")  # nothing listens there
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "3")
    with pytest.raises(PipelineError, match=r"^MLflow at http://127\.0\.0\.1:\d+ failed") as raised:
        Registry(tmp_path).champion()
    assert "\n" not in str(raised.value)
