"""``python -m jobs evaluate --date D``: a model version against skeptical baselines and the champion.

On the rolling test origins of ``user_sequences`` as of D (``models.cutoffs``):
Recall/NDCG/HR@1,5,10 over all users and over the migration subset (new
categories only, seen ones not ranked), each method against the model with a
paired bootstrap interval; the classification view and calibration of both
heads; the inventory forecast and marketing segments against naive ones
(``models.evaluation``); on generated data, two oracles named for what they
know. The baselines are fitted on the training cutoffs and tuned on the
validation cutoff (``models.baselines``, ``models.shallow``). Writes
``metrics.json`` and ``report.html`` into the version's ``report/`` folder,
then (unless ``--no-promote``) applies ``models.promotion``'s gate; every
decision goes to ``model_decisions``. A candidate that is not promoted, with no
champion (or an older fallback one), leaves the shallow baseline fitted beside
it as the fallback champion (``jobs/evaluate/fallback.py``).

Which version: ``--version``, or the one a pipeline run trained
(``--run-id``, as the DAG passes it), or the newest trained.
"""
from __future__ import annotations

import argparse

from jobs.core.config import PipelineConfig

MAX_USERS = 50_000


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--version", help="model version to evaluate (default: --run-id's, else the newest)")
    parser.add_argument("--run-id", help="evaluate the version this pipeline run trained (the DAG's run id)")
    parser.add_argument("--max-users", type=int, default=MAX_USERS,
                        help=f"evaluate a stable sample of at most this many users per cutoff (default {MAX_USERS})")
    parser.add_argument("--promote", action=argparse.BooleanOptionalAction, default=True,
                        help="move the champion pointer when the candidate wins (default on)")
    parser.add_argument("--ceiling", action="store_true",
                        help="on generated data, also score oracle_generator_process, the behaviour-only ceiling over "
                             "the model's history window (models/ceiling.py; about 10 ms per test user, so use it "
                             "with --max-users)")


def run(args: argparse.Namespace, config: PipelineConfig) -> dict:
    """NumPy, Spark and the models are imported here, when the stage runs, not for its ``--help``."""
    from jobs.evaluate.main import run as evaluate

    return evaluate(args, config)
