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
        _atomic_write(self.version_dir(version) / "metadata.json", json.dumps(metadata, indent=1, default=str))

    def latest(self) -> str | None:
        versions = self.versions()
        return versions[-1] if versions else None

    def champion(self) -> str | None:
        path = self.root / "champion.json"
        return json.loads(path.read_text())["version"] if path.exists() else None

    def set_champion(self, version: str, decision: dict) -> None:
        _atomic_write(self.root / "champion.json", json.dumps({"version": version, "decision": decision}, indent=1,
                                                               default=str))

    def record_decision(self, decision: dict) -> None:
        from deltalake import write_deltalake

        row = {name: [decision.get(name)] for name in DECISIONS_SCHEMA.names}
        write_deltalake(str(self.lake / MODEL_DECISIONS), pa.table(row, schema=DECISIONS_SCHEMA), mode="append",
                        schema_mode="merge")


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


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(path.suffix + ".tmp")
    temporary.write_text(text)
    os.replace(temporary, path)
