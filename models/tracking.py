"""MLflow for the training runs and the model registry: where ML engineers compare versions.

- Each trained version is an MLflow **run** (experiment ``interest_migration``)
  with its parameters, per-epoch metrics (training loss of the selection and
  refit phases, validation NDCG@10), the model's files and its TensorBoard
  logs as artifacts. ``evaluate`` adds the test metrics, each baseline's, the
  paired 95% intervals against them, the promotion decision as tags, and the
  report and Data Docs as artifacts.
- Each version (trained, or the fallback evaluate fits) is a **registered
  model version** of ``interest_migration``, tagged with the pipeline's
  version name, and the champion is the registered model's ``champion``
  **alias**: evaluate's promotion gate moves it, scoring resolves it. The
  ``model_decisions`` Delta table stays the SQL record of every decision.

The model files stay where the registry keeps them (``<lake>/models/versions``,
hashed at registration and checked before every load); MLflow holds a copy as
the run's artifacts, which is what its UI lists and downloads.

The store: ``IM_MLFLOW_TRACKING_URI`` (the compose deployment's tracking
server), else a SQLite database and an artifact folder inside the lake
(``<lake>/mlflow``), so the embedded default needs no server. A lake copied
or moved keeps its runs, versions and alias, and writes new artifacts only
under its own folder (``experiment_id``). MLflow is imported only when
something is tracked.
"""
from __future__ import annotations

import json
import math
import re
from functools import lru_cache
from pathlib import Path

EXPERIMENT = "interest_migration"
REGISTERED_MODEL = "interest_migration"
CHAMPION_ALIAS = "champion"
VERSION_TAG = "im.version"
# An older lake's champion pointer, adopted once into the alias (models/registry.py wrote it before MLflow).
LEGACY_POINTER = "champion.json"


def store_folder(lake: Path) -> Path:
    return lake / "mlflow"


def configured_uri() -> str:
    """``IM_MLFLOW_TRACKING_URI`` (jobs/core/config.py), empty for the lake's own store."""
    from jobs.core.config import PipelineConfig

    return PipelineConfig().mlflow_tracking_uri.strip()


def tracking_uri(lake: Path) -> str:
    """``IM_MLFLOW_TRACKING_URI``, or the lake's own SQLite store."""
    return configured_uri() or f"sqlite:///{store_folder(lake.resolve()) / 'mlflow.db'}"


@lru_cache(maxsize=8)
def _client(uri: str):
    from mlflow import MlflowClient

    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


class Tracking:
    """The lake's MLflow experiment and registered model."""

    def __init__(self, lake: Path):
        self.lake = Path(lake)
        self.uri = tracking_uri(self.lake)

    @property
    def client(self):
        return _client(self.uri)

    @property
    def local(self) -> bool:
        """The lake's own store (not a tracking server)."""
        return not configured_uri()

    def artifact_location(self) -> str | None:
        """Where a local store keeps artifacts: beside its database. A tracking server decides for itself."""
        return (store_folder(self.lake.resolve()) / "artifacts").as_uri() if self.local else None

    def experiment_id(self) -> str:
        """The experiment's id. MLflow records an experiment's artifact folder as an absolute path: in a lake that
        was copied or moved, the old experiment is renamed aside (its runs stay listed) and a new one is made
        here, so nothing is ever written into the lake it came from."""
        from mlflow.exceptions import MlflowException

        found = self.client.get_experiment_by_name(EXPERIMENT)
        location = self.artifact_location()
        if found is not None and (location is None or found.artifact_location == location):
            return found.experiment_id
        if found is not None:
            self.client.rename_experiment(found.experiment_id, f"{EXPERIMENT} (at {found.artifact_location})")

        try:
            return self.client.create_experiment(EXPERIMENT, artifact_location=location)
        except MlflowException:  # created meanwhile by another process
            return self.client.get_experiment_by_name(EXPERIMENT).experiment_id

    # --- training -------------------------------------------------------------------------------------------

    def log_training(self, version: str, folder: Path, metadata: dict, tensorboard: Path | None,
                     test_metrics: dict | None = None) -> dict:
        """The version's training run and registered model version; returns their ids (kept in its metadata).
        ``test_metrics``: a fallback's pooled test metrics (it is fitted by evaluate, whose run is the candidate's)."""
        client = self.client
        run = client.create_run(self.experiment_id(), run_name=version,
                                tags={VERSION_TAG: version, "im.as_of_date": metadata.get("as_of_date", ""),
                                      "im.code_version": metadata.get("code_version", ""),
                                      "im.kind": metadata.get("status", "trained")})
        run_id = run.info.run_id
        try:
            params = {**_flat("model", metadata.get("model", {})),
                      **_flat("training", {k: v for k, v in (metadata.get("training") or {}).items()
                                           if not isinstance(v, (list, dict))}),
                      **_flat("window", metadata.get("training_window", {}))}
            from mlflow.entities import Metric, Param

            epochs = [Metric(k, v, 0, step) for k, step, v in _epoch_metrics(metadata)]
            tests = [Metric(_key(f"test.{k}"), float(v), 0, 0) for k, v in (test_metrics or {}).items()
                     if isinstance(v, (int, float)) and math.isfinite(v)]
            client.log_batch(run_id, params=[Param(k, str(v)[:6000]) for k, v in params.items()],
                             metrics=epochs + tests)
            client.log_dict(run_id, metadata, "model/metadata.json")
            client.log_artifact(run_id, str(folder / "vocabulary.json"), "model")
            client.log_artifacts(run_id, str(folder / "saved_model"), "model/saved_model")
            if tensorboard is not None and tensorboard.is_dir():
                client.log_artifacts(run_id, str(tensorboard), "tensorboard")
            registered = self.register(version, run_id)
        except BaseException:
            client.set_terminated(run_id, "FAILED")
            raise
        client.set_terminated(run_id, "FINISHED")
        return {"run_id": run_id, "model_version": registered}

    def register(self, version: str, run_id: str | None = None) -> str:
        """The registered model version of ``version`` (made once): its number in MLflow."""
        client = self.client
        existing = self._model_version(version)
        if existing is not None:
            return existing.version
        from mlflow.exceptions import MlflowException

        try:
            client.create_registered_model(REGISTERED_MODEL, description="Interest migration: each user's next "
                                           "categories. Alias 'champion': the version nightly scoring uses.")
        except MlflowException:
            pass  # already there
        source = (f"{client.get_run(run_id).info.artifact_uri}/model" if run_id
                  else (self.lake / "models" / "versions" / version).resolve().as_uri())
        created = client.create_model_version(REGISTERED_MODEL, source=source, run_id=run_id,
                                              tags={VERSION_TAG: version})
        return created.version

    def _writes_here(self, run_id: str) -> bool:
        """Whether the run's artifacts are this lake's (a copied lake's earlier runs are another's)."""
        from mlflow.exceptions import MlflowException

        try:
            artifacts = self.client.get_run(run_id).info.artifact_uri
        except MlflowException:
            return False
        location = self.artifact_location()
        return location is None or artifacts.startswith(location + "/")

    def _model_version(self, version: str):
        from mlflow.exceptions import MlflowException

        try:
            found = self.client.search_model_versions(f"name = '{REGISTERED_MODEL}' and tag.`{VERSION_TAG}` = "
                                                      f"'{_check(version)}'")
        except MlflowException:
            return None
        return found[0] if found else None

    # --- evaluation -----------------------------------------------------------------------------------------

    def log_evaluation(self, version: str, run_id: str | None, metrics: dict, report: Path | None,
                       data_docs: str | None) -> None:
        """Test metrics, intervals and the decision on the version's run (a run of its own if it has none)."""
        client = self.client
        if run_id is None or not self._writes_here(run_id):
            run_id = client.create_run(self.experiment_id(), run_name=version, tags={VERSION_TAG: version}).info.run_id
        from mlflow.entities import Metric

        values = _evaluation_metrics(metrics)
        client.log_batch(run_id, metrics=[Metric(k, v, 0, 0) for k, v in values.items()])
        decision = metrics.get("promotion") or {}
        tags = {"im.promoted": str(decision.get("promoted")), "im.decision": str(decision.get("reason", ""))[:5000],
                "im.test_cutoffs": ",".join(metrics.get("test_cutoffs", []))}
        if data_docs:
            tags["im.data_docs"] = data_docs
        for key, value in tags.items():
            client.set_tag(run_id, key, value)
        # Where the full report and the validations of the data it was judged on live, beside the copies.
        client.log_dict(run_id, {"report": str(report / "report.html") if report is not None else None,
                                 "data_docs": data_docs}, "links.json")
        if report is not None and report.is_dir():
            client.log_artifacts(run_id, str(report), "report")
        client.set_terminated(run_id, "FINISHED")

    # --- the champion -----------------------------------------------------------------------------------------

    def champion(self) -> str | None:
        """The version the ``champion`` alias points at, or None."""
        from mlflow.exceptions import MlflowException

        self._adopt_legacy_pointer()
        try:
            found = self.client.get_model_version_by_alias(REGISTERED_MODEL, CHAMPION_ALIAS)
        except MlflowException:
            return None
        return _check(found.tags.get(VERSION_TAG, ""))

    def set_champion(self, version: str) -> None:
        """Move the alias to ``version`` (registered first if it is not yet: a version older than tracking)."""
        self.client.set_registered_model_alias(REGISTERED_MODEL, CHAMPION_ALIAS, self.register(_check(version)))

    def clear_champion(self) -> None:
        from mlflow.exceptions import MlflowException

        self._adopt_legacy_pointer()
        try:
            self.client.delete_registered_model_alias(REGISTERED_MODEL, CHAMPION_ALIAS)
        except MlflowException:
            pass  # no registered model, or no alias: no champion either way

    def _adopt_legacy_pointer(self) -> None:
        """A lake from before MLflow: its ``champion.json`` becomes the alias once, then is renamed aside."""
        pointer = self.lake / "models" / LEGACY_POINTER
        if pointer.is_file():
            self.set_champion(json.loads(pointer.read_text())["version"])
            pointer.rename(pointer.with_suffix(".json.adopted"))


def _check(version: str) -> str:
    from models.registry import check_version_name

    return check_version_name(version)


def _key(name: str) -> str:
    """An MLflow metric or parameter name: ``@`` and other characters it refuses become ``_``."""
    return re.sub(r"[^A-Za-z0-9_\-. /:]", "_", name.replace("@", "_at_"))


def _flat(prefix: str, values: dict) -> dict:
    out = {}
    for key, value in values.items():
        name = _key(f"{prefix}.{key}")
        if isinstance(value, dict):
            out.update(_flat(name, value))
        else:
            out[name] = value
    return out


def _epoch_metrics(metadata: dict) -> list[tuple[str, int, float]]:
    """(name, epoch, value): each phase's training loss and the selection's validation NDCG@10, per epoch."""
    training = metadata.get("training") or {}
    final = (training.get("attempts") or [{}])[-1]
    rows = []
    for phase in ("selection", "refit"):
        first = (final.get(phase) or {}).get("first_epoch") or 0
        rows += [(f"{phase}.loss", first + i, float(v)) for i, v in enumerate((final.get(phase) or {}).get("loss", []))]
    rows += [("validation.ndcg_at_10", int(e["epoch"]), float(e["ndcg@10"]))
             for e in training.get("validation_by_epoch", [])]
    return [r for r in rows if math.isfinite(r[2])]


def _evaluation_metrics(metrics: dict) -> dict[str, float]:
    """Pooled test metrics of the model and every baseline, and the paired intervals of the model minus each."""
    out = {}
    for subset, results in (metrics.get("ranking") or {}).items():
        for name, values in results.get("pooled", {}).items():
            out.update({_key(f"test.{subset}.{name}.{m}"): v for m, v in values.items()})
        for name, interval in results.get("intervals", {}).items():
            out.update({_key(f"test.{subset}.model_minus_{name}.{k}"): interval.get(k)
                        for k in ("difference", "low", "high")})
    # Accuracy-type views of the two binary tasks (precision, recall, F1, AUC) and their calibration.
    for view in ("category", "new_category"):
        out.update(_flat(f"test.{view}", {k: v for k, v in (metrics.get(view) or {}).items()
                                           if not isinstance(v, (list, dict))}))
        out.update(_flat(f"test.{view}.calibration", {k: v for k, v in
                                                      ((metrics.get("calibration") or {}).get(view) or {}).items()
                                                      if not isinstance(v, (list, dict))}))
    return {k: float(v) for k, v in out.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}
