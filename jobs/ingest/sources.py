"""Which landing files a batch reads, and how many lines each holds, counted from the files themselves.

The line counts are ingest's reconciliation: they are taken here, in plain
Python over the raw bytes, independently of Spark's reader and of the
classification, and every run must then account for each line as exactly one
clean or quarantined row (``main.reconcile``). A line ends at LF, CR or CRLF,
as in Spark's text reader (Hadoop's ``LineReader``); a last line without an
end counts.

Files a batch does not read, listed with the reason rather than read:

- anything under a folder or with a name starting with ``.`` or ``_`` (Spark's
  and Hadoop's own convention for hidden, temporary and staging output:
  ``_temporary``, ``.staging``, ``_SUCCESS``), or a name ending as an
  unfinished copy does (``.tmp``, ``.part``, ``._COPYING_``...);
- links whose target is outside the source folder (a landing must not become
  a way to read the rest of the machine), and links to folders.

A compressed file that cannot be read to its end (a truncated or corrupt gzip)
fails the whole batch with the file's name before anything is written: a part
of a delivery is not a delivery, and the tables keep their previous state until
it is sent again. Compressions other than gzip and bzip2 are refused the same
way rather than read as text.
"""
from __future__ import annotations

import bz2
import gzip
import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from jobs.core.errors import PipelineError

UNFINISHED_SUFFIXES = (".tmp", ".temp", ".part", ".partial", "._COPYING_", ".crdownload", ".inprogress")
UNSUPPORTED_COMPRESSION = (".zst", ".lz4", ".snappy", ".deflate", ".xz", ".zip", ".7z", ".br")
CHUNK_BYTES = 8 << 20


@dataclass
class SourceFiles:
    """The files a batch reads, and the ones it leaves, each with a reason."""

    files: list[Path] = field(default_factory=list)
    skipped: dict[str, list[str]] = field(default_factory=dict)

    def skip(self, path: Path, reason: str) -> None:
        self.skipped.setdefault(reason, []).append(str(path))


def find_source_files(source: Path) -> SourceFiles:
    """Every readable event file at ``source`` (a file, or a folder searched recursively, links not followed)."""
    if not source.exists() and not source.is_symlink():
        raise PipelineError(f"no input at {source}: nothing to ingest")
    root = source.resolve()
    found = SourceFiles()
    if source.is_file():
        found.files.append(root)
        return found
    for folder, subfolders, names in os.walk(root, followlinks=False):
        here = Path(folder)
        for name in sorted(subfolders):
            if (here / name).is_symlink():
                found.skip(here / name, "link_to_folder")
            elif name.startswith((".", "_")):
                found.skip(here / name, "hidden_or_temporary_folder")
        subfolders[:] = sorted(d for d in subfolders if not d.startswith((".", "_")) and not (here / d).is_symlink())
        for name in sorted(names):
            path = here / name
            reason = _skip_reason(path, root)
            if reason:
                found.skip(path, reason)
            elif path.is_file():
                found.files.append(path)
    if not found.files:
        raise PipelineError(f"{source} holds no files to ingest" + (f" (skipped: {_summary(found.skipped)})"
                                                                    if found.skipped else ""))
    return found


def _skip_reason(path: Path, root: Path) -> str | None:
    if path.name.startswith((".", "_")) or path.name.endswith(UNFINISHED_SUFFIXES):
        return "hidden_or_temporary_file"
    if path.is_symlink():
        target = path.resolve()
        if not target.is_relative_to(root):
            return "link_outside_source"
        if not target.is_file():
            return "broken_link"
    return None


def _summary(skipped: dict[str, list[str]]) -> str:
    return ", ".join(f"{len(paths)} {reason}" for reason, paths in sorted(skipped.items()))


def count_lines(path: Path) -> int:
    """Lines in one file as Spark's text reader splits them (LF, CR or CRLF; gzip and bzip2 decompressed)."""
    if path.name.endswith(UNSUPPORTED_COMPRESSION):
        raise PipelineError(f"{path}: compression {path.suffix} is not supported; send it uncompressed, gzip or bzip2")
    opener = gzip.open if path.name.endswith(".gz") else bz2.open if path.name.endswith(".bz2") else open
    lines, previous = 0, b""
    try:
        with opener(path, "rb") as stream:
            while chunk := stream.read(CHUNK_BYTES):
                if previous == b"\r" and chunk.startswith(b"\n"):
                    chunk = chunk[1:]  # the LF of a CRLF split across two chunks: one line end, already counted
                    if not chunk:
                        previous = b"\n"
                        continue
                lines += chunk.count(b"\n") + chunk.count(b"\r") - chunk.count(b"\r\n")
                previous = chunk[-1:]
    except (OSError, EOFError, zlib.error) as error:
        raise PipelineError(f"{path}: cannot be read to its end ({error}); the batch is not ingested, every table "
                            "is as it was: send the file again") from None
    if previous not in (b"", b"\n", b"\r"):
        lines += 1  # a last line without a line end
    return lines
