"""The model registry: versioned models in the lake and a ``champion`` pointer.

Layout under ``<lake>/models``::

    versions/<version>/saved_model/      the TensorFlow SavedModel
    versions/<version>/vocabulary.json   category ids (0 pad, 1 out-of-vocabulary)
    versions/<version>/metadata.json     configuration, training window, code version, training summary
    versions/<version>/report/           metrics.json and report.html (written by evaluate)
    champion.json                        the version scoring uses, and the decision that put it there

Every promotion decision, taken or not, is appended to the ``model_decisions``
Delta table, so "why is this the champion" is a SQL query. The pointer is
replaced atomically (write then rename), so a reader never sees half of it.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

REPO = Path(__file__).resolve().parent.parent
MODEL_DECISIONS = "model_decisions"
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
        return self.root / "versions" / version

    def versions(self) -> list[str]:
        folder = self.root / "versions"
        return sorted(p.name for p in folder.iterdir() if (p / "metadata.json").exists()) if folder.exists() else []

    def new_version(self, as_of: dt.date) -> str:
        """``<as_of>.<n>``: sortable, and a re-run for the same date gets the next n."""
        taken = [v for v in self._all_dirs() if v.startswith(f"{as_of.isoformat()}.")]
        number = 1 + max((int(v.rsplit(".", 1)[1]) for v in taken if v.rsplit(".", 1)[1].isdigit()), default=0)
        version = f"{as_of.isoformat()}.{number}"
        self.version_dir(version).mkdir(parents=True)
        return version

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
        """The newest trained version: by as-of date, then by run number (``.10`` after ``.9``)."""
        versions = self.versions()
        return max(versions, key=_version_order) if versions else None

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
        path = self.root / "champion.json"
        return json.loads(path.read_text())["version"] if path.exists() else None

    def set_champion(self, version: str, decision: dict) -> None:
        atomic_write(self.root / "champion.json", json.dumps({"version": version, "decision": decision}, indent=1,
                                                               default=str))

    def record_decision(self, decision: dict) -> None:
        from deltalake import write_deltalake

        row = {name: [decision.get(name)] for name in DECISIONS_SCHEMA.names}
        write_deltalake(str(self.lake / MODEL_DECISIONS), pa.table(row, schema=DECISIONS_SCHEMA), mode="append",
                        schema_mode="merge")


def _version_order(version: str) -> tuple[str, int]:
    day, _, number = version.rpartition(".")
    return (day, int(number)) if number.isdigit() else (version, -1)


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
    """Write then rename: a writer killed mid-write leaves the previous file, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(path.suffix + ".tmp")
    temporary.write_text(text)
    os.replace(temporary, path)
