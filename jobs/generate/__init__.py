"""``python -m jobs generate``: realistic synthetic event logs with known ground truth.

Writes, under ``--out`` (default: the lake's ``raw/`` landing zone):
- ``events/ingest_date=YYYY-MM-DD/part-NNNNN.jsonl.gz``: one file per chunk of users and day;
- ``catalog/items.csv`` and ``catalog/categories.csv``;
and under ``<lake>/ground_truth/``: every user's latent focus path, their
parameters and the world's transition structure, for evaluation.

Users are simulated in fixed-size chunks, each from its own seed derived from
``--seed`` and the chunk number, so output is byte-for-byte reproducible and
memory stays flat however many events are asked for.
"""
from jobs.generate.main import add_arguments, run

__all__ = ["add_arguments", "run"]
