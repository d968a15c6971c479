"""The one way a producing stage publishes: prepare, validate exactly those rows, then commit or discard.

    with gated_write(lake, metrics, validate=config.validate_writes) as gate:
        events = gate.prepare(EVENTS, frame, {"event_date": [day]})
        gate.check(lambda: check_partition(lake, config, EVENTS, [date], events))

``gate.prepare`` writes the rows once, to immutable files no table version refers to yet (in the
table's folder, or a staging folder: ``delta_spark``), and returns a frame over them; ``gate.check`` runs a validation on such frames (when validation is
on), records its report and stops the stage on a critical failure. Only when
the block ends without an error are the prepared tables committed; on any error,
or a critical validation, every prepared write is discarded and each table keeps
its previous version. What the suites validated is what is committed: the
commit reads the same prepared files, never the producing plan again.

Several tables: Delta commits one table at a time, there is no transaction
across tables. They commit in the order they were prepared (or ``commit_order``), tables that
later ones point into first: sessions before the events that carry their ids,
the quarantine before the clean rows, the demand forecast and segments before
the predictions. Tables that do not point into each other may be named as a
group in ``commit_order``: they commit together, each on its own thread, and
the next table starts only when the whole group has committed. A Delta commit
through Spark is a few small jobs whatever the table's size (its snapshot,
the files it replaces, the new snapshot after it), and one table's driver-side
work leaves the cores to the other's.
A failure between two commits leaves the earlier tables new and the later
ones old; the stage then fails, and re-running it (every write replaces its
partitions) brings them level. The versions each commit made are recorded in
``pipeline_runs.details`` (``versions``), so a reader that needs the tables
of one run together can read them at those versions.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Mapping, Sequence

from pyspark.sql import DataFrame
from pyspark.sql.types import StructType

from jobs.core.lake.base import Lake, PreparedWrite, Replacement
from jobs.core.tables import PARTITIONS


class GatedWrite:
    """The prepared tables of one stage run, and the validations run on them."""

    def __init__(self, lake: Lake, validate: bool, metrics=None, commit_order: Sequence[str | Sequence[str]] = ()):
        self.lake, self.validate, self.metrics = lake, validate, metrics
        self.commit_order = tuple((item,) if isinstance(item, str) else tuple(item) for item in commit_order)
        self.prepared: list[tuple[str, PreparedWrite]] = []
        self.versions: dict[str, int] = {}

    def prepare(self, table: str, df: DataFrame, replace: Replacement,
              partition_by: Sequence[str] | None = None) -> DataFrame:
        """Stage ``df`` to replace ``replace``'s partitions of ``table``; returns the prepared rows."""
        partition_by = PARTITIONS[table] if partition_by is None else partition_by
        return self._add(table, self.lake.prepare_partitions(table, df, partition_by, replace))

    def prepare_files(self, table: str, folder: Path, schema: StructType, partition: Mapping[str, str]) -> DataFrame:
        """Stage a folder of Parquet files another writer made as the whole of one partition."""
        return self._add(table, self.lake.prepare_files(table, folder, schema, partition))

    def write_ahead(self, table: str) -> bool:
        """Write prepared ``table``'s data files now, invisible until the commit, when its lake can: run beside
        the suites, it leaves the commit only the log entry to write. False when it cannot (the commit
        writes them)."""
        return next(prepared for name, prepared in self.prepared if name == table).write_ahead()

    def check(self, validation: Callable[[], "object"]):
        """Run ``validation`` (returning a report with ``raise_if_critical``) when validation is on."""
        if not self.validate:
            return None
        report = validation()
        if self.metrics is not None:
            self.metrics.validations.append(report)
        report.raise_if_critical()
        return report

    def _add(self, table: str, prepared: PreparedWrite) -> DataFrame:
        if any(name == table for name, _ in self.prepared):
            prepared.discard()
            raise ValueError(f"{table!r} is prepared twice in one gated write")
        self.prepared.append((table, prepared))
        return prepared.frame

    def _commit(self) -> dict[str, int]:
        """``commit_order``'s tables first, in that order, each group's together; the rest one by one in the order
        they were prepared. When a table of a group fails, the others of the group still finish (committed or not,
        as each went) before the first error is raised, and nothing after the group starts."""
        rank = {table: i for i, group in enumerate(self.commit_order) for table in group}
        groups: dict[int, list[tuple[str, PreparedWrite]]] = {}
        for position, (table, prepared) in enumerate(self.prepared):
            groups.setdefault(rank.get(table, len(rank) + position), []).append((table, prepared))
        for _, group in sorted(groups.items()):
            if len(group) == 1:
                table, prepared = group[0]
                self.versions[table] = prepared.commit()
                continue
            with ThreadPoolExecutor(len(group), thread_name_prefix="commit") as pool:
                futures = [(table, pool.submit(prepared.commit)) for table, prepared in group]
            errors = [future.exception() for _, future in futures if future.exception() is not None]
            self.versions.update({table: future.result() for table, future in futures if future.exception() is None})
            if errors:
                raise errors[0]
        return self.versions

    def _discard(self) -> None:
        for _, prepared in self.prepared:
            prepared.discard()


@contextmanager
def gated_write(lake: Lake, metrics=None, validate: bool = True,
                commit_order: Sequence[str | Sequence[str]] = ()) -> Iterator[GatedWrite]:
    """Stage and check inside the block; commit everything prepared when it ends cleanly, else nothing.

    Tables commit in the order they were prepared, except that those named in ``commit_order`` go first (a
    group of names commits together, on threads).
    """
    gate = GatedWrite(lake, validate, metrics, commit_order)
    try:
        yield gate
        gate._commit()
    finally:
        gate._discard()
        if metrics is not None and gate.versions:
            metrics.details.setdefault("versions", {}).update(gate.versions)
