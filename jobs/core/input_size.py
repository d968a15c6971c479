"""How much a stage will read, measured before its JVM starts, so that it can choose how that JVM compiles.

A driver of its own compiles Spark's generated code and the Parquet and Delta
code paths while the stage runs. On a tiny partition the full JIT's second
compiler (C2) spends seconds of the two cores on code that runs a few times;
on a large one it pays for itself (``jobs.core.spark.build_spark`` chooses).
The sizes here only choose that: they are estimates (``driver_jit_options``
takes any failure to size as "unknown", the full JIT).

- Landing files: their size on disk (gzip'd JSON lines and a table's Parquet
  files hold an event in a similar number of bytes, about 40; uncompressed
  lines hold more, so those err towards the full JIT).
- A Delta table: the data files its log lists in the partitions a stage reads,
  by delta-rs (the log only: no JVM, no data file opened). Small side reads
  (a stage's quality gate reading the trailing week's row counts) are left out.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Mapping, Sequence


def files_bytes(files: Iterable[Path | str]) -> int:
    """Bytes on disk of ``files`` (a file gone since it was listed counts 0)."""
    total = 0
    for file in files:
        try:
            total += Path(file).stat().st_size
        except OSError:
            pass
    return total


def table_bytes(table: Path, partitions: Mapping[str, Sequence[str]] | None = None) -> int | None:
    """Bytes of the data files of Delta ``table`` in ``partitions`` (every file when None): 0 when there is no
    table (nothing to read), None when unknown (a log delta-rs cannot read)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    from deltalake import DeltaTable
    from deltalake.exceptions import DeltaError

    if not (table / "_delta_log").is_dir():
        return 0
    try:
        actions = pa.table(DeltaTable(str(table)).get_add_actions(flatten=True))
    except (DeltaError, OSError, ValueError):
        return None
    keep = pa.array([True] * actions.num_rows, pa.bool_())
    for column, values in (partitions or {}).items():
        key = f"partition.{column}"
        if key not in actions.column_names:
            return None
        keep = pc.and_(keep, pc.is_in(pc.cast(actions[key], pa.string()),
                                      value_set=pa.array([str(v) for v in values], pa.string())))
    return int(pc.sum(actions.filter(keep)["size_bytes"]).as_py() or 0)


def tables_bytes(lake: Path, reads: Mapping[str, Mapping[str, Sequence[str]] | None]) -> int | None:
    """The sum of ``table_bytes`` over ``reads`` ({table: partitions}); None when any of them is unknown."""
    sizes = [table_bytes(lake / table, partitions) for table, partitions in reads.items()]
    return None if any(size is None for size in sizes) else sum(sizes)
