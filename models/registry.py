"""The model registry: versioned models in the lake, and the ``champion`` alias in MLflow.

Layout under ``<lake>/models``::

    versions/<version>/saved_model/      the TensorFlow SavedModel
    versions/<version>/vocabulary.json   category ids (0 pad, 1 out-of-vocabulary)
    versions/<version>/metadata.json     configuration, training window, code version, training summary,
                                         and the SHA-256 of every model file (``files``)
    versions/<version>/report/           metrics.json and report.html (written by evaluate)
    versions/<version>/tensorboard/      the training curves (tensorboard --logdir <lake>/models/versions)

and in MLflow (``models/tracking.py``; by default ``<lake>/mlflow``): each
version's run, its registered model version, and the ``champion`` alias, the
version scoring uses.

A version is named ``<as-of date>.<n>`` and ordered by date, then by ``n`` as a
number (``.10`` after ``.9``); any other name is refused before it becomes a
path. Every promotion decision, taken or not, is appended to the
``model_decisions`` Delta table, once per candidate, so "why is this the
champion" is a SQL query. Metadata is replaced atomically (a temporary file of
its own, fsynced, then renamed), so a reader never sees half of it, and the
alias moves in one MLflow transaction. A version's model files are hashed when
it is registered and checked before it is loaded (``verify_files``).
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

REPO = Path(__file__).resolve().parent.parent
MODEL_DECISIONS = "model_decisions"
VERSION_NAME = re.compile(r"^\d{4}-\d{2}-\d{2}\.[1-9]\d{0,5}$")
# The files that make a version's model: hashed at registration, checked before loading.
MODEL_FILES = ("saved_model", "vocabulary.json")
# The metadata key of a fallback champion (jobs/evaluate/fallback.py): the trained candidate it stands in for.
FALLBACK_FOR = "fallback_for"


class RegistryError(ValueError):
    """A version name that is not one, or a version whose files changed after registration."""
DECISIONS_SCHEMA = pa.schema([
    ("decided_at", pa.timestamp("us", tz="UTC")), ("candidate", pa.string()), ("previous_champion", pa.string()),
    ("promoted", pa.bool_()), ("metric", pa.string()), ("candidate_value", pa.float64()),
    ("champion_value", pa.float64()), ("best_baseline", pa.string()), ("best_baseline_value", pa.float64()),
    ("test_cutoff", pa.date32()), ("reason", pa.string()),
    # The rolling test origins, and the paired 95% intervals of the candidate minus the strongest baseline and
    # the champion (NDCG@10), and minus the strongest migration baseline (migration Recall@10): models/promotion.py.
    ("test_origins", pa.string()), ("baseline_difference", pa.float64()), ("baseline_low", pa.float64()),
    ("baseline_high", pa.float64()), ("champion_difference", pa.float64()), ("champion_low", pa.float64()),
    ("champion_high", pa.float64()), ("migration_baseline", pa.string()), ("migration_difference", pa.float64()),
    ("migration_low", pa.float64()), ("migration_high", pa.float64()),
])


@dataclass(frozen=True)
class Registry:
    lake: Path

    @property
    def root(self) -> Path:
        return self.lake / "models"

    def version_dir(self, version: str) -> Path:
        return self.root / "versions" / check_version_name(version)

    def versions(self) -> list[str]:
        """Registered versions, oldest first (by as-of date, then run number as a number)."""
        folder = self.root / "versions"
        found = [p.name for p in folder.iterdir() if VERSION_NAME.match(p.name) and (p / "metadata.json").exists()] \
            if folder.exists() else []
        return sorted(found, key=_version_order)

    def new_version(self, as_of: dt.date) -> str:
        """``<as_of>.<n>``: sortable, and a re-run for the same date gets the next n."""
        taken = [v for v in self._all_dirs() if v.startswith(f"{as_of.isoformat()}.")]
        number = 1 + max((int(v.rsplit(".", 1)[1]) for v in taken if v.rsplit(".", 1)[1].isdigit()), default=0)
        while True:  # another train of the same date may take a number between the listing and the mkdir
            version = f"{as_of.isoformat()}.{number}"
            try:
                self.version_dir(version).mkdir(parents=True)
                return version
            except FileExistsError:
                number += 1

    def _all_dirs(self) -> list[str]:
        folder = self.root / "versions"
        return [p.name for p in folder.iterdir()] if folder.exists() else []

    def metadata(self, version: str) -> dict:
        path = self.version_dir(version) / "metadata.json"
        if not path.exists():
            raise FileNotFoundError(f"no model version {version!r} under {self.root} (versions: "
                                    f"{', '.join(self.versions()) or 'none'})")
        return json.loads(path.read_text())

    def write_metadata(self, version: str, metadata: dict) -> None:
        atomic_write(self.version_dir(version) / "metadata.json", json.dumps(metadata, indent=1, default=str))

    def latest(self) -> str | None:
        """The newest trained version: by as-of date, then by run number (``.10`` after ``.9``). A fallback
        champion (``jobs/evaluate/fallback.py``) is fitted by evaluate, not trained: never the latest."""
        trained = [v for v in self.versions() if not is_fallback(self.metadata(v))]
        return trained[-1] if trained else None

    def file_hashes(self, version: str) -> dict[str, str]:
        return file_hashes(self.version_dir(version))

    def record_training_run(self, run_id: str, version: str) -> None:
        """Remember which version a pipeline run (an Airflow run id) trained, for its evaluate task."""
        atomic_write(self._run_path(run_id), json.dumps({"run_id": run_id, "version": version}))

    def trained_in_run(self, run_id: str) -> str:
        path = self._run_path(run_id)
        if not path.is_file():
            raise FileNotFoundError(f"run {run_id!r} trained no model version (no {path})")
        return json.loads(path.read_text())["version"]

    def _run_path(self, run_id: str) -> Path:
        return self.root / "runs" / f"{hashlib.sha256(run_id.encode()).hexdigest()[:24]}.json"

    def champion(self) -> str | None:
        """The version the registered model's ``champion`` alias points at, in MLflow (models/tracking.py)."""
        from models.tracking import Tracking

        return Tracking(self.lake).champion()

    def set_champion(self, version: str, decision: dict | None = None) -> None:
        """Move the ``champion`` alias to ``version``; the decision that moved it is in ``model_decisions``."""
        from models.tracking import Tracking

        Tracking(self.lake).set_champion(check_version_name(version))

    def clear_champion(self) -> None:
        """No champion: scoring refuses until evaluate promotes one (the alias is removed)."""
        from models.tracking import Tracking

        Tracking(self.lake).clear_champion()

    def decision_for(self, candidate: str) -> dict | None:
        """The promotion decision already recorded for ``candidate`` (one per candidate: a retried evaluate
        reuses it rather than deciding, and appending, again)."""
        from deltalake import DeltaTable
        from deltalake.exceptions import TableNotFoundError

        try:
            table = DeltaTable(str(self.lake / MODEL_DECISIONS))
        except TableNotFoundError:
            return None
        rows = table.to_pyarrow_table(filters=[("candidate", "=", check_version_name(candidate))]).to_pylist()
        return max(rows, key=lambda r: r["decided_at"]) if rows else None

    def record_decision(self, decision: dict) -> None:
        from deltalake import write_deltalake

        row = {name: [decision.get(name)] for name in DECISIONS_SCHEMA.names}
        write_deltalake(str(self.lake / MODEL_DECISIONS), pa.table(row, schema=DECISIONS_SCHEMA), mode="append",
                        schema_mode="merge")


def is_fallback(metadata: dict) -> bool:
    """A version fitted by evaluate as the fallback champion, not trained."""
    return FALLBACK_FOR in metadata


def file_hashes(folder: Path) -> dict[str, str]:
    """SHA-256 of every model file in a version's folder, by path inside it: recorded at registration."""
    files = [p for name in MODEL_FILES
             for p in (sorted((folder / name).rglob("*")) if (folder / name).is_dir() else [folder / name])
             if p.is_file()]
    return {str(p.relative_to(folder)): _sha256(p) for p in files}


def verify_files(folder: Path, metadata: dict) -> None:
    """Refuse to load a version whose model files differ from those hashed when it was registered."""
    version, recorded = metadata.get("version", folder.name), metadata.get("files")
    if recorded is None:
        raise RegistryError(f"model version {version} has no file hashes in its metadata (registered before they "
                            "were recorded, or not by train): train a new version")
    found = file_hashes(folder)
    changed = sorted((set(recorded) ^ set(found)) | {p for p in recorded.keys() & found.keys()
                                                      if recorded[p] != found[p]})
    if changed:
        raise RegistryError(f"model version {version}: {len(changed)} file(s) differ from registration "
                            f"({', '.join(changed[:3])}); it is not loaded")


def check_version_name(version: str) -> str:
    """``version`` when it is a version name (``YYYY-MM-DD.n``), so it can never name a path elsewhere."""
    if not isinstance(version, str) or not VERSION_NAME.match(version):
        raise RegistryError(f"{version!r} is not a model version name (YYYY-MM-DD.n, e.g. 2024-11-02.3)")
    return version


def _version_order(version: str) -> tuple[str, int]:
    day, _, number = version.rpartition(".")
    return day, int(number)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def code_version() -> str:
    """The git commit when the code is a checkout, plus a hash of the model code itself (always)."""
    digest = hashlib.sha256()
    for path in sorted([*(REPO / "models").glob("*.py"), REPO / "jobs" / "features.py"]):
        digest.update(path.read_bytes())
    try:
        commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short=12", "HEAD"], capture_output=True,
                                text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return f"{commit or 'no-git'}+models-{digest.hexdigest()[:12]}"


def atomic_write(path: Path, text: str) -> None:
    """Write a temporary file of this writer's own, fsync it, rename it over ``path``, fsync the folder.

    A writer killed mid-write leaves the previous file, never half of one; two
    writers at once each rename a whole file of their own (the last rename
    wins), where a shared temporary name let one truncate the other's; the
    fsyncs make the new file survive a crash of the machine once this returns.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(temporary, 0o644)  # readable like a file written the usual way (mkstemp makes it private)
        with os.fdopen(descriptor, "w") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)
