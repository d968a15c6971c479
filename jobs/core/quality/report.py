"""What one validation found, in the shape the command line and ``pipeline_runs`` need."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from jobs.core.errors import PipelineError


class DataQualityError(PipelineError):
    """Critical expectations failed: nothing was published. The message has one line per failure."""


@dataclass(frozen=True)
class Failure:
    expectation: str
    column: str | None
    severity: str
    observed: str
    expected: str

    def line(self) -> str:
        where = f" on {self.column}" if self.column else ""
        return f"{self.severity}: {self.expectation}{where}: observed {self.observed}; expected {self.expected}"


@dataclass
class ValidationReport:
    table: str
    run_date: dt.date
    evaluated: int = 0
    failures: list[Failure] = field(default_factory=list)
    docs_path: str | None = None
    category_divergence: float | None = None

    @property
    def critical(self) -> list[Failure]:
        return [f for f in self.failures if f.severity == "critical"]

    @property
    def warnings(self) -> list[Failure]:
        return [f for f in self.failures if f.severity != "critical"]

    @property
    def severity(self) -> str:
        """``critical``, ``warning`` or ``passed``: the worst failure."""
        return "critical" if self.critical else "warning" if self.warnings else "passed"

    def summary(self) -> dict:
        """For ``pipeline_runs.details``."""
        return {
            "table": self.table, "evaluated": self.evaluated, "failed": len(self.failures),
            "severity": self.severity, "failures": [f.line() for f in self.failures],
            "category_divergence": self.category_divergence, "data_docs": self.docs_path,
        }

    def raise_if_critical(self) -> None:
        if self.critical:
            lines = "\n".join(f"  {f.line()}" for f in self.critical)
            raise DataQualityError(
                f"{self.table} {self.run_date}: {len(self.critical)} critical expectation(s) failed; "
                f"nothing published\n{lines}\n  Data Docs: {self.docs_path}")
