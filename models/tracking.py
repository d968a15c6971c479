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
import time
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

from jobs.core.errors import PipelineError

# The default names (IM_MLFLOW_NAME): the experiment, and the registered model whose alias is the champion.
EXPERIMENT = "interest_migration"
REGISTERED_MODEL = "interest_migration"
CHAMPION_ALIAS = "champion"
VERSION_TAG = "im.version"
# On a tracking server, the lake a run or model version belongs to: another lake's version is never served.
LAKE_TAG = "im.lake"


class TrackingError(PipelineError):
    """MLflow failed (unreachable, refused, locked), or its registry names another lake's version: one line, and
    never mistaken for "no champion"."""
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


def _mlflow_error(error) -> str:
    return getattr(error, "error_code", "")


def _absent(error) -> bool:
    """MLflow saying there is no such registered model or alias (it calls a missing alias an invalid parameter),
    as opposed to failing."""
    code, text = _mlflow_error(error), str(error)
    return code == "RESOURCE_DOES_NOT_EXIST" or (code == "INVALID_PARAMETER_VALUE" and "alias" in text
                                                 and "not found" in text)


@contextmanager
def _one_line(uri: str):
    """An MLflow failure as a TrackingError naming the store (its exception is pages of text)."""
    from mlflow.exceptions import MlflowException

    try:
        yield
    except MlflowException as error:
        first = (str(error).strip().splitlines() or [""])[0][:300]
        raise TrackingError(f"MLflow at {uri} failed ({_mlflow_error(error) or type(error).__name__}): "
                            f"{first}") from error


class Tracking:
    """The lake's MLflow experiment and registered model."""

    def __init__(self, lake: Path):
        from jobs.core.config import PipelineConfig

        self.lake = Path(lake)
        self.uri = tracking_uri(self.lake)
        self.name = PipelineConfig().mlflow_name

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

        with _one_line(self.uri):
            found = self.client.get_experiment_by_name(self.name)
            location = self.artifact_location()
            if found is not None and (location is None or found.artifact_location == location):
                return found.experiment_id
            if found is not None:
                stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
                self.client.rename_experiment(found.experiment_id,
                                              f"{self.name} (at {found.artifact_location}, until {stamp})")
            try:
                return self.client.create_experiment(self.name, artifact_location=location,
                                                     tags={LAKE_TAG: str(self.lake.resolve())})
            except MlflowException as error:  # created meanwhile by another process
                if _mlflow_error(error) != "RESOURCE_ALREADY_EXISTS":
                    raise
                return self.client.get_experiment_by_name(self.name).experiment_id

    # --- training -------------------------------------------------------------------------------------------

    def log_training(self, version: str, folder: Path, metadata: dict, tensorboard: Path | None,
                     test_metrics: dict | None = None) -> dict:
        """The version's training run and registered model version; returns their ids (kept in its metadata).
        ``test_metrics``: a fallback's pooled test metrics (it is fitted by evaluate, whose run is the candidate's)."""
        with _one_line(self.uri):
            return self._log_training(version, folder, metadata, tensorboard, test_metrics)

    def _log_training(self, version: str, folder: Path, metadata: dict, tensorboard: Path | None,
                      test_metrics: dict | None) -> dict:
        client = self.client
        run = client.create_run(self.experiment_id(), run_name=version,
                                tags={VERSION_TAG: version, LAKE_TAG: str(self.lake.resolve()),
                                      "im.as_of_date": metadata.get("as_of_date", ""),
                                      "im.code_version": metadata.get("code_version", ""),
                                      "im.kind": metadata.get("status", "trained")})
        run_id = run.info.run_id
        try:
            params = {**_flat("model", metadata.get("model", {})),
                      **_flat("training", {k: v for k, v in (metadata.get("training") or {}).items()
                                           if not isinstance(v, (list, dict))}),
                      **_flat("window", metadata.get("training_window", {}))}
            from mlflow.entities import Metric, Param

            now = _now_ms()
            epochs = [Metric(k, v, now, step) for k, step, v in _epoch_metrics(metadata)]
            tests = [Metric(_key(f"test.{k}"), float(v), now, 0) for k, v in (test_metrics or {}).items()
                     if isinstance(v, (int, float)) and math.isfinite(v)]
            client.log_batch(run_id, params=[Param(k, str(v)[:6000]) for k, v in params.items()],
                             metrics=epochs + tests)
            client.log_dict(run_id, metadata, "model/metadata.json")
            # What the folder has: a version registered before tracking may lack files, and is still listed.
            if (folder / "vocabulary.json").is_file():
                client.log_artifact(run_id, str(folder / "vocabulary.json"), "model")
            if (folder / "saved_model").is_dir():
                client.log_artifacts(run_id, str(folder / "saved_model"), "model/saved_model")
            if tensorboard is not None and tensorboard.is_dir():
                client.log_artifacts(run_id, str(tensorboard), "tensorboard")
            registered = self._register(version, run_id)
        except BaseException:
            client.set_terminated(run_id, "FAILED")
            raise
        client.set_terminated(run_id, "FINISHED")
        return {"run_id": run_id, "model_version": registered}

    def register(self, version: str) -> str:
        """The registered model version of ``version`` (made once): its number in MLflow. A version with no run
        yet (registered before tracking, or a test's) gets one with the files its folder has, so a tracking
        server, which refuses a model version whose source is not a run's artifacts, takes it too."""
        with _one_line(self.uri):
            existing = self._model_version(version)
            if existing is not None:
                return existing.version
            from models.registry import Registry

            registry = Registry(self.lake)
            folder = registry.version_dir(version)
            try:
                metadata = registry.metadata(version)
            except FileNotFoundError:
                metadata = {"version": version}
            return self._log_training(version, folder, metadata, None, None)["model_version"]

    def _register(self, version: str, run_id: str) -> str:
        from mlflow.exceptions import MlflowException

        client = self.client
        existing = self._model_version(version)
        if existing is not None:
            return existing.version
        try:
            client.create_registered_model(self.name, description="Interest migration: each user's next "
                                           "categories. Alias 'champion': the version nightly scoring uses.")
        except MlflowException as error:
            if _mlflow_error(error) != "RESOURCE_ALREADY_EXISTS":
                raise
        created = client.create_model_version(self.name, source=f"{client.get_run(run_id).info.artifact_uri}/model",
                                              run_id=run_id, tags={VERSION_TAG: version,
                                                                   LAKE_TAG: str(self.lake.resolve())})
        return created.version

    def _writes_here(self, run_id: str) -> bool:
        """Whether the run's artifacts are this lake's (a copied lake's earlier runs are another's)."""
        from mlflow.exceptions import MlflowException

        try:
            artifacts = self.client.get_run(run_id).info.artifact_uri
        except MlflowException as error:
            if _mlflow_error(error) != "RESOURCE_DOES_NOT_EXIST":
                raise
            return False
        location = self.artifact_location()
        return location is None or artifacts.startswith(location + "/")

    def _model_version(self, version: str):
        """The registered model version of ``version`` (its name is checked, so it can be put in the filter)."""
        found = self.client.search_model_versions(f"name = '{_quote(self.name)}' and tag.`{VERSION_TAG}` = "
                                                  f"'{_check(version)}'")
        if not found:
            return None
        self._same_lake(found[0])
        return found[0]

    def _same_lake(self, model_version) -> None:
        """On a tracking server, refuse another lake's version (a staging lake, a copy) under the same name."""
        if self.local:
            return  # the store is inside the lake: nothing else writes to it
        theirs, ours = model_version.tags.get(LAKE_TAG), str(self.lake.resolve())
        if theirs != ours:
            raise TrackingError(f"version {model_version.version} of registered model {self.name!r} belongs to the "
                                f"lake at {theirs}, not {ours}: give each lake its own IM_MLFLOW_NAME")

    # --- evaluation -----------------------------------------------------------------------------------------

    def log_evaluation(self, version: str, run_id: str | None, metrics: dict, report: Path | None,
                       data_docs: str | None) -> None:
        """Test metrics, intervals and the decision on the version's run (a run of its own if it has none)."""
        with _one_line(self.uri):
            self._log_evaluation(version, run_id, metrics, report, data_docs)

    def evaluated(self, run_id: str | None) -> bool:
        """Whether ``log_evaluation`` completed on the run (a retried evaluate logs only what is missing)."""
        if run_id is None:
            return False
        with _one_line(self.uri):
            return "im.promoted" in self.client.get_run(run_id).data.tags

    def _log_evaluation(self, version: str, run_id: str | None, metrics: dict, report: Path | None,
                        data_docs: str | None) -> None:
        client = self.client
        if run_id is None or not self._writes_here(run_id):
            run_id = client.create_run(self.experiment_id(), run_name=version,
                                       tags={VERSION_TAG: version, LAKE_TAG: str(self.lake.resolve())}).info.run_id
        from mlflow.entities import Metric

        values, now = _evaluation_metrics(metrics), _now_ms()
        client.log_batch(run_id, metrics=[Metric(k, v, now, 0) for k, v in values.items()])
        decision = metrics.get("promotion") or {}
        tags = {"im.decision": str(decision.get("reason", ""))[:5000],
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
        # Last: the mark a retried evaluate looks for (evaluated()).
        client.set_tag(run_id, "im.promoted", str(decision.get("promoted")))
        client.set_terminated(run_id, "FINISHED")

    # --- the champion -----------------------------------------------------------------------------------------

    def champion(self) -> str | None:
        """The version the ``champion`` alias points at; None only when MLflow says there is no such alias or
        model. Anything else MLflow raises (a server down, a locked database) is a TrackingError: a night that
        cannot read its champion must fail, not score nothing and report success, nor let evaluate decide as
        if there were no champion."""
        from mlflow.exceptions import MlflowException

        self._adopt_legacy_pointer()
        with _one_line(self.uri):
            try:
                found = self.client.get_model_version_by_alias(self.name, CHAMPION_ALIAS)
            except MlflowException as error:
                if _absent(error):
                    return None
                raise
        self._same_lake(found)
        return _check(found.tags.get(VERSION_TAG, ""))

    def set_champion(self, version: str) -> None:
        """Move the alias to ``version`` (registered first if it is not yet: a version older than tracking)."""
        number = self.register(_check(version))
        with _one_line(self.uri):
            self.client.set_registered_model_alias(self.name, CHAMPION_ALIAS, number)

    def clear_champion(self) -> None:
        from mlflow.exceptions import MlflowException

        self._adopt_legacy_pointer()
        with _one_line(self.uri):
            try:
                self.client.delete_registered_model_alias(self.name, CHAMPION_ALIAS)
            except MlflowException as error:
                if not _absent(error):
                    raise  # no registered model, or no alias, is no champion either way

    def _adopt_legacy_pointer(self) -> None:
        """A lake from before MLflow: its ``champion.json`` becomes the alias once, then is renamed aside."""
        pointer = self.lake / "models" / LEGACY_POINTER
        if pointer.is_file():
            try:
                version = json.loads(pointer.read_text())["version"]
            except FileNotFoundError:
                return  # another reader adopted it meanwhile
            self.set_champion(version)
            try:
                pointer.rename(pointer.with_suffix(".json.adopted"))
            except FileNotFoundError:
                pass


def _now_ms() -> int:
    return int(time.time() * 1000)


def _quote(name: str) -> str:
    """A name inside a single-quoted MLflow search filter."""
    if "'" in name or "\\" in name:
        raise TrackingError(f"{name!r} cannot be an MLflow model name here (no quotes or backslashes)")
    return name


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
